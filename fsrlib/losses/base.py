"""The loss base class and the helpers every loss file uses (the contract is in :mod:`fsrlib.losses`)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

from ..registry import ConfigError

__all__ = ["Loss", "EPS", "elementwise", "union_mask", "masked_mean", "check_shapes"]

EPS = 1e-8


class Loss(nn.Module):
    """Base class: holds ``weight``, ``pred``, ``target``, ``mask``; ``forward`` returns the
    weighted value. Subclasses implement :meth:`value`."""

    needs_discriminator = False
    supports_mask = False

    def __init__(self, weight: float = 1.0, pred: str = "sr", target: str = "hr", mask: str | None = None):
        super().__init__()
        self.weight = float(weight)
        self.pred = pred
        self.target = target
        self.mask = mask
        self.name = type(self).__name__
        self.terms: dict[str, torch.Tensor] = {}
        if mask is not None and not self.supports_mask:
            raise ConfigError(f"{type(self).__name__} does not support mask={mask!r}")

    def pred_keys(self) -> list[str]:
        """The model outputs this loss reads (the trainer checks them before the first step)."""
        return [self.pred]

    def batch_keys(self) -> list[str]:
        """The batch keys this loss reads: ``target`` and ``mask``; a loss that reads more says so
        here (PGNet's content loss adds ``parsing_target``). The one way the train stage finds
        what the dataset must compute (:func:`fsrlib.losses.batch_keys`)."""
        return [self.target] + ([self.mask] if self.mask else [])

    def _pred(self, out: Mapping[str, Any], key: str | None = None) -> torch.Tensor:
        key = key or self.pred
        if key not in out:
            raise KeyError(f"loss {self.name!r}: the model output has no {key!r} "
                           f"(it has {sorted(out)}); set pred: to one of them")
        return out[key]

    def _batch(self, batch: Mapping[str, Any], key: str) -> torch.Tensor:
        if key not in batch:
            raise KeyError(f"loss {self.name!r}: the batch has no {key!r} (it has {sorted(batch)})")
        return batch[key]

    def value(self, out, batch, gan=None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, out, batch, gan=None) -> torch.Tensor:
        self.terms = {}
        return self.weight * self.value(out, batch, gan)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, pred={self.pred!r}, target={self.target!r}, mask={self.mask!r}"


def elementwise(criterion: str, x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    d = x - y
    if criterion == "l1":
        return d.abs()
    if criterion in ("l2", "mse"):
        return d * d
    if criterion == "charbonnier":
        return torch.sqrt(d * d + eps * eps)
    raise ConfigError(f"unknown criterion {criterion!r}; use l1, l2 (mse) or charbonnier")


def union_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Mask as (B, 1 or C, H, W) float broadcastable to ``like``."""
    mask = mask.to(like.dtype)
    if mask.dim() == 3:
        mask = mask[:, None]
    if mask.shape[1] not in (1, like.shape[1]):
        mask = mask.amax(1, keepdim=True)
    return mask


def masked_mean(err: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return err.mean()
    m = union_mask(mask, err).expand_as(err)
    return (err * m).sum() / m.sum().clamp_min(EPS)


def check_shapes(name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"loss {name!r}: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
