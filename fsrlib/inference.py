"""Trained runs: the model file, checkpoint loading and inference (prior chain included).

The trainer writes ``runs/{run}/model.pt`` (format :data:`MODEL_FILE_FORMAT`:
``{"format", "model" (model config incl. scale), "state_dict" (EMA weights when the run used
EMA), "weights", "run_config", "iteration", "params", "input_kind", "prior" (the frozen prior
net's config + weights for two-stage runs, or null)}``). Everything that *uses* a trained
run reads it through this module: the evaluate, downstream and report stages, ``fsr
evaluate`` / ``fsr upscale``, and the trainer itself (``init_from``, ``prior_from``). It sits
above :mod:`fsrlib.models` and below training, evaluation and the report, so evaluation
never imports training code.

- :func:`load_run_model` / :class:`RunPredictor`: a run's final model, and inference on a
  batch of the dataset's dicts (``lr`` / ``lr_up``), the frozen prior network of a
  two-stage run (FishFSRNet on ParsingNet) included;
- :class:`PriorNet`: a frozen prior network (``forward_maps(x)[key].clamp(0, 1)``);
- :func:`input_key`: the batch key a model reads;
- :func:`model_complexity`: parameters and MACs of a run's inference on one face;
- :func:`resolve_device`, :func:`torch_threads`: where and on how many threads to run.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from . import models as _models  # noqa: F401  (registers the model zoo)
from .models.common import count_macs, count_params
from .registry import MODELS

__all__ = ["MODEL_FILE_FORMAT", "input_key", "resolve_model_file", "build_from_file", "load_run_model", "PriorNet",
           "RunPredictor", "model_complexity", "resolve_device", "torch_threads"]

MODEL_FILE_FORMAT = "fsrlib-model/1"


def input_key(model: nn.Module) -> str:
    """Batch key of a model's input: ``lr`` or ``lr_up`` (``input_kind == "upsampled"``)."""
    kind = getattr(model, "input_kind", "lr")
    if kind not in ("lr", "upsampled"):
        raise ValueError(f"unknown input_kind {kind!r}")
    return "lr_up" if kind == "upsampled" else "lr"


def resolve_device(device: str | None) -> str:
    """``None`` / ``"auto"``: CUDA when available, else the CPU; anything else as given."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Run small inferences on ``n`` intra-op threads (restored afterwards): on a busy 2-core
    machine, torch's 2-thread pool made a one-face forward pass ten times slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


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
    """The model of a model-file blob (``{"model": config, "state_dict": ...}``) with its weights."""
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


def model_complexity(run: str | Path, runs_root: str | Path = "runs", size: int = 128) -> dict:
    """Parameters and MACs of a run's inference on one ``size``-px face (the prior network of a
    two-stage run included): ``{"params_M", "macs_G", "input"}``. MACs:
    :func:`fsrlib.models.common.count_macs`, on the ``meta`` device (shapes only, no arithmetic)
    and on the CPU when an operation has no meta implementation."""
    pred = RunPredictor.from_run(run, runs_root, "cpu")
    model = pred.model
    n_params = count_params(model) + (count_params(pred.prior.model) if pred.prior is not None else 0)
    s = int(model.scale)
    up = int(model.expected_input_size()) if getattr(model, "input_kind", "lr") == "upsampled" else size

    def count(device: str) -> float:
        model.to(device)
        if pred.prior is not None:
            pred.prior.to(device)
        batch = {"lr": torch.rand(1, 3, size // s, size // s, device=device),
                 "lr_up": torch.rand(1, 3, up, up, device=device)}
        if pred.prior_gt:
            batch[pred.prior_gt] = torch.rand(1, 3, size, size, device=device)
        return count_macs(pred.maps, batch) / 1e9

    try:
        macs = count("meta")
    except Exception:  # noqa: BLE001 - an op without a meta kernel: count on real tensors
        pred = RunPredictor.from_run(run, runs_root, "cpu")
        model = pred.model
        macs = count("cpu")
    return {"params_M": n_params / 1e6, "macs_G": macs,
            "input": f"{pred.input_key} {size // s if pred.input_key == 'lr' else up} px"}
