"""SRCNN (Dong et al., TPAMI 2015), the 9-5-5 setting with 64/32 filters.

Input: the **bicubic-upsampled** LR (``lr_up``), RGB in [0, 1]; any scale (4, 8, 16), the
network does not depend on it. Choices vs the paper: RGB in and out (the paper's main model
works on Y only); zero "same" padding so the output keeps 128x128 (the paper uses valid
convolutions and a smaller target); PyTorch default init (the paper: N(0, 0.001) and SGD).

Demo (CPU) configuration: ``{"widths": [16, 8]}`` (~0.05-0.07 s per Adam step, batch 8, 2 cores).
"""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from ..registry import MODELS
from .common import FSRModel, conv


@MODELS.register("srcnn")
class SRCNN(FSRModel):
    input_kind = "upsampled"
    slim = {"widths": (8, 4)}

    def __init__(self, scale: int = 8, widths: Sequence[int] = (64, 32), kernels: Sequence[int] = (9, 5, 5),
                 global_residual: bool = False):
        super().__init__(scale)
        self.global_residual = bool(global_residual)  # + the upsampled input (not in the paper; demo switch)
        n1, n2 = widths
        f1, f2, f3 = kernels
        self.body = nn.Sequential(conv(3, n1, f1), nn.ReLU(inplace=True),
                                  conv(n1, n2, f2), nn.ReLU(inplace=True), conv(n2, 3, f3))

    def _forward(self, x, prior=None):
        return {"sr": self.body(x)}
