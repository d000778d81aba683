"""Training losses, registered in :data:`fsrlib.registry.LOSSES`.

One file per family, scanned like :mod:`fsrlib.models` (a new file here is registered on
import): ``base`` (the :class:`Loss` contract), ``pixel``, ``perceptual`` (its network:
``vgg``), ``adversarial``, and the method-specific ``wnet``, ``parsing``, ``pgnet``.

Every loss is built from one config entry ``{type, weight, pred, target, mask, ...}``
(``docs/conventions.md``):

- ``weight``: the lambda in front of the term. An entry with ``weight: 0`` is **not built
  at all** by :func:`build_losses` (so a perceptual term switched off never needs VGG19
  weights on an offline machine).
- ``pred``: a key of the model's ``forward_maps`` output (default ``"sr"``).
- ``target``: a batch key (default ``"hr"``).
- ``mask``: an optional batch key (e.g. ``"regions"``) for losses that support masking; a
  mask with a different channel count than the prediction is reduced to its union
  (max over channels).
- ``name``: optional label for logging (default: the ``type``), popped before building.

Calling a loss: ``loss(out, batch, gan=None)`` returns ``weight * value`` (a scalar);
``loss.value(...)`` is the unweighted term and ``loss.terms`` holds detached sub-terms
of the last call for logging. Losses that need a discriminator
(``needs_discriminator = True``: ``adversarial``, ``feature_matching``) read it through
the ``gan`` context the trainer passes (:class:`fsrlib.train.recipes.GanContext`, any
object with ``fake(pred_key)`` and ``real(target_key)`` returning :func:`split_d_output`
lists works). The discriminator side of ``adversarial`` is :meth:`AdversarialLoss.d_value`.

Discriminator outputs (the contract with ``fsrlib.models.discriminators``): a tensor
(logit / score map, e.g. ``srgan_d``, ``patchgan``), a list of tensors (one scale: the
features, last item = the score map), or a list of such lists (multi-scale, e.g.
``patchgan_ms``). :func:`split_d_output` normalises all three to
``[(features, score), ...]`` per scale.

Registered types (paper-vs-code choices are parameters; the sources are in each docstring):

==================  ========================================================================
``pixel``           L1 / L2 (MSE) / Charbonnier on ``pred`` vs ``target``, optional mask
``l1``, ``mse``,    presets of ``pixel``; ``sparnet_pix`` = ``pixel`` with ``criterion: l2``
``charbonnier``     (SPARNet paper eq. 1; the released code uses ``l1``)
``perceptual``      VGG19 feature loss (SPARNetHD eq. 11, AMIGAN eq. 19, W-Net eq. 26,
                    thesis eq. 3.11)
``adversarial``     vanilla (BCE, non-saturating) / lsgan / hinge, G and D sides
``feature_matching`` discriminator feature matching (SPARNetHD eq. 10)
``wnet_key_region`` W-Net eqs. 27-28: masked MSE + masked perceptual on 4 regions
``parsing_map``     parsing-map loss; presets ``wnet_parsing`` (W-Net eq. 25, MSE of
                    ``parsing`` vs ``skin``) and ``parsingnet_l1`` (FishFSRNet eq. 2, L1 of
                    ``parsing`` vs ``skin_lr``)
``pgnet_content``   the thesis' L_content = L_c + L_p + L_f (eqs. 3.5-3.8)
==================  ========================================================================
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Iterable, Mapping

import torch.nn as nn

from ..registry import LOSSES
from .adversarial import AdversarialLoss, FeatureMatchingLoss, split_d_output
from .base import Loss
from .parsing import ParsingMapLoss
from .perceptual import PerceptualLoss
from .pgnet import PGNetContentLoss
from .pixel import PixelLoss
from .wnet import KeyRegionLoss

for _m in pkgutil.iter_modules(__path__):  # every loss file registers its losses on import
    if not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = [
    "Loss", "PixelLoss", "PerceptualLoss", "AdversarialLoss", "FeatureMatchingLoss",
    "KeyRegionLoss", "ParsingMapLoss", "PGNetContentLoss", "build_loss", "build_losses",
    "validate_loss_config", "batch_keys", "split_d_output", "LOSSES",
]


def build_loss(cfg: Mapping[str, Any] | str) -> Loss | None:
    """Build one loss; ``None`` when its weight is 0 (nothing is built or loaded)."""
    cfg = {"type": cfg} if isinstance(cfg, str) else dict(cfg)
    name = cfg.pop("name", None) or cfg.get("type")
    if float(cfg.get("weight", 1.0)) == 0.0:
        return None
    loss = LOSSES.build(cfg)
    loss.name = name
    return loss


def build_losses(cfgs: Iterable[Mapping[str, Any] | str] | None) -> nn.ModuleList:
    """Build a list of losses, skipping weight-0 entries; duplicate names get ``_2, _3``."""
    out, seen = nn.ModuleList(), {}
    for cfg in cfgs or []:
        loss = build_loss(cfg)
        if loss is None:
            continue
        n = seen.get(loss.name, 0) + 1
        seen[loss.name] = n
        if n > 1:
            loss.name = f"{loss.name}_{n}"
        out.append(loss)
    return out


def validate_loss_config(cfg: Mapping[str, Any] | str) -> None:
    """Check type and keywords without building (no weights are touched)."""
    cfg = {"type": cfg} if isinstance(cfg, str) else dict(cfg)
    cfg.pop("name", None)
    LOSSES.validate(cfg)


def batch_keys(losses: Iterable[Loss]) -> set[str]:
    """The batch keys a set of built losses reads (the union of :meth:`Loss.batch_keys`): the
    one way the trainer and the train stage find what the dataset must compute."""
    return {k for loss in losses for k in loss.batch_keys()}
