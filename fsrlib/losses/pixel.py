"""Pixel losses: L1 / L2 (MSE) / Charbonnier, optionally masked, and their presets."""
from __future__ import annotations

import torch

from ..registry import LOSSES
from .base import Loss, check_shapes, elementwise, masked_mean

__all__ = ["PixelLoss"]


@LOSSES.register("pixel")
class PixelLoss(Loss):
    """Pixel loss, mean over all elements (the 1/N and 1/CHW of the papers' equations).

    ``criterion``: ``l1`` (SPARNet code, SPARNetHD eq. 6, FishFSRNet eq. 21, AMINet eq. 17),
    ``l2``/``mse`` (SPARNet paper eq. 1, W-Net eq. 24, thesis eqs. 3.5/3.7),
    ``charbonnier`` (``sqrt(d^2 + eps^2)``). With ``mask`` the mean runs over the masked
    elements only (area-normalised)."""

    supports_mask = True

    def __init__(self, criterion: str, weight: float = 1.0, pred: str = "sr", target: str = "hr",
                 mask: str | None = None, eps: float = 1e-3):
        super().__init__(weight, pred, target, mask)
        elementwise(criterion, torch.zeros(1), torch.zeros(1))  # validate early
        self.criterion, self.eps = criterion, float(eps)

    def value(self, out, batch, gan=None):
        p, t = self._pred(out), self._batch(batch, self.target)
        check_shapes(self.name, p, t)
        err = elementwise(self.criterion, p.float(), t.float(), self.eps)
        return masked_mean(err, self._batch(batch, self.mask) if self.mask else None)

    def extra_repr(self):
        return f"criterion={self.criterion!r}, " + super().extra_repr()


LOSSES.register_preset("l1", "pixel", criterion="l1")
LOSSES.register_preset("mse", "pixel", criterion="l2")
LOSSES.register_preset("charbonnier", "pixel", criterion="charbonnier")
# SPARNet eq. (1): L2 in the paper (default); the released code uses L1 (criterion: l1).
LOSSES.register_preset("sparnet_pix", "pixel", criterion="l2")
