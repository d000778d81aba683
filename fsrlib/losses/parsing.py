"""Parsing-map losses (W-Net eq. 25, FishFSRNet's ParsingNet eq. 2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .base import Loss, check_shapes, elementwise

__all__ = ["ParsingMapLoss"]


@LOSSES.register("parsing_map")
class ParsingMapLoss(Loss):
    """Loss between a predicted parsing map and a batch map.

    - ``resize``: when sizes differ, resize the *target* to the prediction's size with this
      mode (``bicubic``, ``bilinear``, ``nearest``, ``area``; result clamped to [0, 1]);
      ``null`` makes a size mismatch an error.
    - A 1-channel prediction against the 3-channel replicated skin map compares with the
      target's channel mean.
    Presets: ``wnet_parsing`` (W-Net eq. 25: MSE of the Parsing Block output ``parsing`` vs
    the HR binary map ``skin``; spec option: ``target: skin_lr, resize: bicubic``) and
    ``parsingnet_l1`` (FishFSRNet eq. 2: L1 of ``parsing`` vs ``skin_lr``)."""

    def __init__(self, criterion: str = "l2", weight: float = 1.0, pred: str = "parsing",
                 target: str = "skin", mask: str | None = None, resize: str | None = None):
        super().__init__(weight, pred, target, mask)
        elementwise(criterion, torch.zeros(1), torch.zeros(1))
        self.criterion, self.resize = criterion, resize

    def value(self, out, batch, gan=None):
        p, t = self._pred(out).float(), self._batch(batch, self.target).float()
        if t.dim() == 3:
            t = t[:, None]
        if p.shape[1] == 1 and t.shape[1] != 1:
            t = t.mean(1, keepdim=True)
        if p.shape[-2:] != t.shape[-2:]:
            if self.resize is None:
                raise ValueError(f"loss {self.name!r}: pred {tuple(p.shape)} vs target {tuple(t.shape)}; "
                                 "set resize: to compare at the prediction's size")
            kw = {} if self.resize in ("nearest", "area") else {"align_corners": False}
            t = F.interpolate(t, size=p.shape[-2:], mode=self.resize, **kw).clamp(0, 1)
        check_shapes(self.name, p, t)
        return elementwise(self.criterion, p, t).mean()


LOSSES.register_preset("wnet_parsing", "parsing_map", criterion="l2", pred="parsing", target="skin")
LOSSES.register_preset("parsingnet_l1", "parsing_map", criterion="l1", pred="parsing", target="skin_lr")
