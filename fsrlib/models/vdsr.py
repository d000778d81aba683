"""VDSR (Kim et al., CVPR 2016): ``depth`` = 20 3x3 conv layers of ``ch`` = 64 filters with ReLU,
and a global residual: ``sr = x + net(x)``.

Input: the **bicubic-upsampled** LR (``lr_up``), RGB in [0, 1]; any scale (4, 8, 16). Choices:
RGB in and out (the paper: Y only), zero padding, He (Kaiming normal) init with zero biases
[PAPER]; the paper's gradient clipping and high learning rate belong to the training config.

Demo (CPU) configuration: ``{"depth": 8, "ch": 16}`` (~0.08 s per Adam step, batch 8, 2 cores).
"""
from __future__ import annotations

import torch.nn as nn

from ..registry import MODELS
from .common import FSRModel, conv


@MODELS.register("vdsr")
class VDSR(FSRModel):
    input_kind = "upsampled"
    slim = {"depth": 4, "ch": 4}

    def __init__(self, scale: int = 8, depth: int = 20, ch: int = 64):
        super().__init__(scale)
        if depth < 2:
            raise ValueError("VDSR needs depth >= 2")
        layers = [conv(3, ch), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [conv(ch, ch), nn.ReLU(inplace=True)]
        layers.append(conv(ch, 3))
        self.body = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def _forward(self, x, prior=None):
        return {"sr": x + self.body(x)}
