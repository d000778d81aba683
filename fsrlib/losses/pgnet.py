"""The thesis' (PGNet) content loss, eqs. 3.5-3.8."""
from __future__ import annotations

import torch

from ..registry import LOSSES
from .base import Loss, check_shapes, elementwise

__all__ = ["PGNetContentLoss"]


@LOSSES.register("pgnet_content")
class PGNetContentLoss(Loss):
    """The thesis' content loss (eqs. 3.5-3.8): ``L_content = coarse_weight * MSE(coarse,
    HR) + parsing_weight * MSE(parsing, parts11) + final_weight * MSE(SR, HR)`` (all 1 in
    the thesis), each a mean over B, C, H, W (the thesis' 1/(r^2 WH) up to a constant).
    ``criterion`` (default ``l2``) applies to all three terms."""

    def __init__(self, weight: float = 1.0, pred: str = "sr", target: str = "hr", mask: str | None = None,
                 coarse: str = "coarse", parsing: str = "parsing", parsing_target: str = "parts11",
                 coarse_weight: float = 1.0, parsing_weight: float = 1.0, final_weight: float = 1.0,
                 criterion: str = "l2"):
        super().__init__(weight, pred, target, mask)
        elementwise(criterion, torch.zeros(1), torch.zeros(1))
        self.coarse, self.parsing, self.parsing_target = coarse, parsing, parsing_target
        self.w = {"coarse": float(coarse_weight), "parsing": float(parsing_weight), "final": float(final_weight)}
        self.criterion = criterion

    def pred_keys(self):
        return [k for k, w in ((self.coarse, self.w["coarse"]), (self.parsing, self.w["parsing"]),
                               (self.pred, self.w["final"])) if w]

    def batch_keys(self):
        return [self.target] + ([self.parsing_target] if self.w["parsing"] else [])

    def _term(self, p, t):
        check_shapes(self.name, p, t)
        return elementwise(self.criterion, p.float(), t.float()).mean()

    def value(self, out, batch, gan=None):
        hr = self._batch(batch, self.target)
        total = 0.0
        for name, pk, tgt in (("coarse", self.coarse, hr), ("parsing", self.parsing, None), ("final", self.pred, hr)):
            if not self.w[name]:
                continue
            t = self._batch(batch, self.parsing_target) if tgt is None else tgt
            v = self._term(self._pred(out, pk), t)
            self.terms[name] = v.detach()
            total = total + self.w[name] * v
        return total
