"""Bicubic baseline: returns its input, the LR face upsampled with MATLAB ``imresize`` bicubic
(antialiased, a = -0.5) by the degrade stage (``lr_up``). Input ``upsampled`` in [0, 1]; any
scale (4, 8, 16). No weights: nothing to train; a trainer must skip optimisation when
``count_params(model) == 0`` (an optimizer over no parameters raises).

It holds one zero-size, non-persistent buffer ``_anchor`` so that ``model.to(device)`` and
``next(model.buffers()).device`` work; it is not in the state dict. Demo config: ``{}``.
"""
from __future__ import annotations

import torch

from ..registry import MODELS
from .common import FSRModel


@MODELS.register("bicubic")
class Bicubic(FSRModel):
    input_kind = "upsampled"

    def __init__(self, scale: int = 8):
        super().__init__(scale)
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    def _forward(self, x, prior=None):
        return {"sr": x.clone()}
