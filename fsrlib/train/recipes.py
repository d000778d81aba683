"""Training recipes (one optimisation step each) and loading trained runs.

- ``pixel``: one generator step on the configured losses (pixel losses and auxiliary
  outputs alike: a loss picks its model output with ``pred:`` and its batch key with
  ``target:``).
- ``gan``: a generator step (losses may include ``adversarial`` / ``feature_matching``,
  which see the discriminator through :class:`GanContext`, with D frozen), then one
  discriminator step on the ``d_losses`` (D(HR) vs D(SR.detach())). G first, then D
  (SPARNetHD's code order); one D step per G step.
- ``two_stage``: the ``pixel`` step for a model that ``needs_prior`` (FishFSRNet), whose
  prior is the prediction of a *frozen, trained* ParsingNet loaded from the run
  ``prior_from`` (``forward_maps(lr)[prior_key]``, clamped to [0, 1]) -- in training,
  validation and (through :class:`fsrlib.inference.RunPredictor`) testing alike, never the
  ground-truth map.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

from ..losses import split_d_output

__all__ = ["MapsForward", "compute_losses", "GanContext", "optimizer_step", "pixel_step", "gan_step", "RECIPES"]


# ====================================================================== helpers
class MapsForward(nn.Module):
    """``forward(x, prior) = model.forward_maps(x, prior)``, so that DDP / torch.compile
    wrap the call the trainer actually makes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, prior=None):
        return self.model.forward_maps(x, prior)


def compute_losses(losses, out, batch, gan=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of ``losses`` and a dict of detached, *unweighted* terms for logging."""
    total = None
    logs: dict[str, torch.Tensor] = {}
    for loss in losses:
        v = loss(out, batch, gan)
        logs[loss.name] = (v / loss.weight).detach()
        for k, t in loss.terms.items():
            logs[f"{loss.name}_{k}"] = t  # flat: dvclive nests "/" and a metric cannot also be a folder
        total = v if total is None else total + v
    if total is None:
        raise ValueError("no loss with a non-zero weight")
    logs["loss"] = total.detach()
    return total, logs


class GanContext:
    """What the generator-side GAN losses see: ``fake(key)`` = split D output on the model
    output ``key`` (graph to G, D frozen by the caller), ``real(key)`` = split D output on
    the batch ``key`` (no grad). Each is computed once per step. Discriminators take [0, 1]
    images and map them to their own range (``fsrlib.models.discriminators``)."""

    def __init__(self, d: Callable, out: Mapping, batch: Mapping):
        self.d, self.out, self.batch = d, out, batch
        self._fake: dict[str, Any] = {}
        self._real: dict[str, Any] = {}

    def fake(self, key: str):
        if key not in self._fake:
            self._fake[key] = split_d_output(self.d(self.out[key]))
        return self._fake[key]

    def real(self, key: str):
        if key not in self._real:
            with torch.no_grad():
                self._real[key] = split_d_output(self.d(self.batch[key]))
        return self._real[key]


# ====================================================================== steps
def optimizer_step(tr, loss: torch.Tensor, opt: torch.optim.Optimizer, scaler, module: nn.Module) -> None:
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if tr.grad_clip:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(module.parameters(), tr.grad_clip)
    scaler.step(opt)
    scaler.update()


def pixel_step(tr, batch: dict) -> dict[str, torch.Tensor]:
    """One generator step (recipes ``pixel`` and ``two_stage``)."""
    x, prior = batch[tr.input_key], tr.get_prior(batch)
    with tr.autocast():
        out = tr.g_forward(x, prior)
        total, logs = compute_losses(tr.losses, out, batch)
    optimizer_step(tr, total, tr.opt_g, tr.scaler_g, tr.model)
    return logs


def gan_step(tr, batch: dict) -> dict[str, torch.Tensor]:
    """Generator step (D frozen), then discriminator step on D(HR) vs D(SR.detach())."""
    d = tr.d_model
    x, prior = batch[tr.input_key], tr.get_prior(batch)
    d.requires_grad_(False)
    with tr.autocast():
        out = tr.g_forward(x, prior)
        # raw D in the G step: no D gradients are wanted, so DDP's reducer stays out of it
        ctx = GanContext(d, out, batch)
        total, logs = compute_losses(tr.losses, out, batch, gan=ctx)
    optimizer_step(tr, total, tr.opt_g, tr.scaler_g, tr.model)

    d.requires_grad_(True)
    d_total = None
    with tr.autocast():
        cache: dict[tuple[str, str], tuple] = {}
        for dl in tr.d_losses:
            key = (dl.pred, dl.target)
            if key not in cache:
                real = tr.d_forward(batch[dl.target])
                fake = tr.d_forward(out[dl.pred].detach())
                cache[key] = (real, fake)
            v = dl.weight * dl.d_value(*cache[key])
            logs[f"d/{dl.name}"] = (v / dl.weight).detach()
            d_total = v if d_total is None else d_total + v
    optimizer_step(tr, d_total, tr.opt_d, tr.scaler_d, d)
    logs["d_loss"] = d_total.detach()
    return logs


RECIPES: dict[str, Callable] = {"pixel": pixel_step, "two_stage": pixel_step, "gan": gan_step}
