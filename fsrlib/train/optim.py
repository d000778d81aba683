"""Optimisers of the run config: ``{type: adam|adamw|rmsprop|sgd, lr, ...}`` -> a torch optimiser.

The keys each type may have: :data:`fsrlib.train.schema.OPTIMIZER_KEYS` (torch defaults where absent).
"""
from __future__ import annotations

from typing import Mapping

import torch

from .schema import OPTIMIZER_KEYS

__all__ = ["OPTIMIZERS", "build_optimizer"]

OPTIMIZERS: dict[str, type] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}
assert set(OPTIMIZERS) == set(OPTIMIZER_KEYS)


def build_optimizer(o: Mapping, params) -> torch.optim.Optimizer:
    cls = OPTIMIZERS[o["type"]]
    kw = {k: (tuple(float(b) for b in v) if k == "betas" else _num(v)) for k, v in o.items() if k != "type"}
    return cls(params, **kw)


def _num(v):
    """PyYAML reads ``1e-4`` (no dot) as a string: turn numeric strings into floats."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v
