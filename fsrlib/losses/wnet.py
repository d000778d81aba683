"""W-Net's key-region loss (eqs. 27-28)."""
from __future__ import annotations

from typing import Sequence

import torch

from ..registry import LOSSES, ConfigError
from .base import EPS, Loss, check_shapes
from .perceptual import PerceptualLoss
from .vgg import VGG19_SHA256

__all__ = ["KeyRegionLoss"]


@LOSSES.register("wnet_key_region")
class KeyRegionLoss(Loss):
    """W-Net key-region loss, eqs. 27-28: ``L_key = sum_r w_r (mse_weight * L^r_mse +
    per_weight * L^r_per)`` over the channels of ``mask`` (batch key ``regions``: eyes,
    brows, nose, mouth). Paper: ``weight`` (lambda_key) 0.5, all region weights 1.

    - ``L^r_mse`` per image: ``sum(M_r (SR - HR)^2) / (C sum(M_r))`` (``mse_norm: area``,
      spec default: every region counts equally whatever its size) or ``/ (C H W)``
      (``mse_norm: full``, eq. 24's normalisation).
    - ``L^r_per`` per image: eq. 26 on ``M_r * SR`` vs ``M_r * HR`` (VGG19 ``layers``,
      default relu2_2; ``criterion`` l2 = ||.||^2 / (C_k H_k W_k)).
    - A region that is empty in an image contributes 0 for that image; the batch value is
      the mean over images. ``per_weight: 0`` builds no VGG (no weights needed).
    """

    supports_mask = True

    def __init__(self, weight: float = 1.0, pred: str = "sr", target: str = "hr", mask: str = "regions",
                 mse_weight: float = 1.0, per_weight: float = 1.0, mse_norm: str = "area",
                 region_weights: Sequence[float] | None = None, layers: Sequence[str] = ("relu2_2",),
                 criterion: str = "l2", input_range: Sequence[float] = (0.0, 1.0),
                 weights_path: str | None = None, weights_sha256: str | None = VGG19_SHA256):
        super().__init__(weight, pred, target, mask)
        if mse_norm not in ("area", "full"):
            raise ConfigError(f"mse_norm must be area or full, got {mse_norm!r}")
        if not mask:
            raise ConfigError("wnet_key_region needs mask: (the regions batch key)")
        self.mse_weight, self.per_weight, self.mse_norm = float(mse_weight), float(per_weight), mse_norm
        self.region_weights = None if region_weights is None else [float(w) for w in region_weights]
        self.per = None
        if self.weight != 0 and self.per_weight != 0:
            self.per = PerceptualLoss(1.0, pred, target, None, layers=layers, criterion=criterion,
                                      input_range=input_range, weights_path=weights_path,
                                      weights_sha256=weights_sha256)

    def value(self, out, batch, gan=None):
        sr, hr = self._pred(out).float(), self._batch(batch, self.target).float()
        check_shapes(self.name, sr, hr)
        masks = self._batch(batch, self.mask).to(sr.dtype)  # B x R x H x W
        b, r = masks.shape[:2]
        c = sr.shape[1]
        w = torch.tensor(self.region_weights or [1.0] * r, dtype=sr.dtype, device=sr.device)
        if w.numel() != r:
            raise ValueError(f"region_weights has {w.numel()} entries for {r} regions")
        area = masks.flatten(2).sum(-1)  # B x R
        present = area > 0
        err = (sr - hr) ** 2  # B x C x H x W
        num = torch.einsum("brhw,bchw->br", masks, err)
        den = c * area if self.mse_norm == "area" else torch.full_like(area, float(c * sr.shape[-2] * sr.shape[-1]))
        mse = torch.where(present, num / den.clamp_min(EPS), torch.zeros_like(num))  # B x R
        mse_term = (mse * w).sum(1).mean()
        total = self.mse_weight * mse_term
        self.terms = {"mse": mse_term.detach()}
        if self.per is not None:
            per = torch.zeros_like(mse)
            bi, ri = present.nonzero(as_tuple=True)
            if bi.numel():
                m = masks[bi, ri][:, None]  # N x 1 x H x W
                per[bi, ri] = self.per.per_image(sr[bi] * m, hr[bi] * m)
            per_term = (per * w).sum(1).mean()
            total = total + self.per_weight * per_term
            self.terms["per"] = per_term.detach()
        return total
