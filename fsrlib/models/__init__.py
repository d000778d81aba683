"""The model zoo. Importing this package registers every model file's classes in
:data:`fsrlib.registry.MODELS`; build one with :func:`build_model`.

One file per method: ``bicubic``, ``srcnn``, ``vdsr``, ``edsr``, ``srresnet``, ``sparnet``,
``parsingnet``, ``fishfsrnet``, ``wnet``, ``aminet``, ``pgnet`` (the thesis),
``discriminators``. Shared layers live in :mod:`fsrlib.models.common`.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..registry import MODELS
from .common import FSRModel, count_macs, count_params

_SKIP = {"common"}
for _m in pkgutil.iter_modules(__path__):
    if _m.name not in _SKIP and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

from .official import load_official, to_official  # noqa: E402  (the authors' released checkpoints)


def build_model(cfg, **overrides):
    """``build_model({"type": "sparnet", "act": "leakyrelu"}, scale=8)``."""
    return MODELS.build(cfg, **overrides)


__all__ = ["MODELS", "FSRModel", "build_model", "count_macs", "count_params", "load_official", "to_official"]
