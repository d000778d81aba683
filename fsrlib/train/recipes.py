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
  validation and (through :class:`RunPredictor`) testing alike, never the ground-truth map.

:func:`load_run_model` / :class:`RunPredictor` read ``runs/{run}/model.pt`` (written by
the trainer) for the evaluation stage, including the embedded prior network.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

from ..losses import split_d_output
from ..registry import MODELS

MODEL_FILE_FORMAT = "fsrlib-model/1"


# ====================================================================== helpers
def input_key(model: nn.Module) -> str:
    """Batch key of a model's input: ``lr`` or ``lr_up`` (``input_kind == "upsampled"``)."""
    kind = getattr(model, "input_kind", "lr")
    if kind not in ("lr", "upsampled"):
        raise ValueError(f"unknown input_kind {kind!r}")
    return "lr_up" if kind == "upsampled" else "lr"


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


# ====================================================================== trained runs
def resolve_model_file(run: str | Path, runs_root: str | Path = "runs") -> Path:
    """``run`` = a run name (``runs_root/run/model.pt``), a run directory or a file."""
    p = Path(run)
    for cand in (p, p / "model.pt", Path(runs_root) / str(run) / "model.pt"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"no trained model for {run!r}: looked for {p}, {p / 'model.pt'} and "
                            f"{Path(runs_root) / str(run) / 'model.pt'} (train that run first)")


def build_from_file(blob: Mapping) -> nn.Module:
    import fsrlib.models  # noqa: F401  (registers the model zoo)

    model = MODELS.build(dict(blob["model"]))
    model.load_state_dict(blob["state_dict"])
    return model


def load_run_model(run: str | Path, runs_root: str | Path = "runs", device="cpu",
                   frozen: bool = True) -> tuple[nn.Module, dict]:
    """Build a trained run's final model (EMA weights when the run used EMA) from its
    ``model.pt``; returns ``(model, blob)`` with the model in eval mode."""
    path = resolve_model_file(run, runs_root)
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if blob.get("format") != MODEL_FILE_FORMAT:
        raise ValueError(f"{path} is not an fsrlib model file (format {blob.get('format')!r})")
    model = build_from_file(blob).to(device).eval()
    if frozen:
        model.requires_grad_(False)
    return model, blob


class PriorNet:
    """A frozen prior network: ``__call__(batch) -> forward_maps(x)[key].clamp(0, 1)``."""

    def __init__(self, model: nn.Module, key: str = "parsing", clamp=(0.0, 1.0)):
        self.model, self.key, self.clamp = model.eval().requires_grad_(False), key, clamp
        self.input_key = input_key(model)

    @torch.no_grad()
    def __call__(self, batch: Mapping) -> torch.Tensor:
        out = self.model.forward_maps(batch[self.input_key])
        if self.key not in out:
            raise KeyError(f"prior network output has no {self.key!r} (it has {sorted(out)}); set prior_key")
        p = out[self.key].float()
        return p.clamp(*self.clamp) if self.clamp else p

    def to(self, device):
        self.model.to(device)
        return self


class RunPredictor:
    """Inference for a trained run, prior chain included (the evaluation stage's entry).

    >>> pred = RunPredictor.from_run("fishfsrnet-x8")   # doctest: +SKIP
    >>> sr = pred(batch)            # batch with "lr" / "lr_up" like the dataset's
    """

    def __init__(self, model: nn.Module, prior: PriorNet | None = None, prior_gt: str | None = None,
                 output_key: str = "sr"):
        self.model, self.prior, self.prior_gt, self.output_key = model, prior, prior_gt, output_key
        self.input_key = input_key(model)

    @classmethod
    def from_run(cls, run, runs_root="runs", device="cpu") -> "RunPredictor":
        model, blob = load_run_model(run, runs_root, device)
        prior = None
        if blob.get("prior"):
            pb = blob["prior"]
            prior = PriorNet(build_from_file(pb).to(device), pb.get("key", "parsing"))
        cfg = blob.get("run_config") or {}
        return cls(model, prior, cfg.get("prior_gt"))

    @torch.no_grad()
    def maps(self, batch: Mapping) -> dict:
        prior = None
        if self.prior is not None:
            prior = self.prior(batch)
        elif self.prior_gt:
            prior = batch[self.prior_gt]
        return self.model.forward_maps(batch[self.input_key], prior)

    def __call__(self, batch: Mapping) -> torch.Tensor:
        return self.maps(batch)[self.output_key]
