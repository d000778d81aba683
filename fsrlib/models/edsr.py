"""EDSR baseline (Lim et al., CVPRW 2017): head conv, ``n_blocks`` = 16 residual blocks
(conv-ReLU-conv, no BN, ``res_scale`` 1) of ``ch`` = 64, body conv, long skip, then
log2(scale) x (conv 64 -> 256, PixelShuffle 2) and a 3x3 output conv.

Input: the **raw LR** (``lr``, 128/scale px), RGB in [0, 1]; scales 4, 8, 16 (powers of two).
``mean_shift`` (default on, as the official code): subtract the DIV2K RGB mean at the input
and add it back at the output (fixed buffers, not parameters; the code's 1x1-conv MeanShift
would add 24 frozen parameters). PyTorch default init, as the official code.

Demo (CPU) configuration: ``{"ch": 16, "n_blocks": 4}`` (~0.03 s per Adam step, batch 8, x8, 2 cores).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import MODELS
from .common import FSRModel, ResBlock, conv, upsampler

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


@MODELS.register("edsr")
class EDSR(FSRModel):
    input_kind = "lr"
    slim = {"ch": 4, "n_blocks": 2}

    def __init__(self, scale: int = 8, ch: int = 64, n_blocks: int = 16, res_scale: float = 1.0,
                 mean_shift: bool = True,
                 global_residual: bool = False):
        super().__init__(scale)
        self.global_residual = bool(global_residual)  # + the upsampled input (not in the paper; demo switch)
        mean = torch.tensor(DIV2K_MEAN if mean_shift else (0.0, 0.0, 0.0)).view(1, 3, 1, 1)
        self.register_buffer("rgb_mean", mean)
        self.head = conv(3, ch)
        self.body = nn.Sequential(*[ResBlock(ch, act="relu", res_scale=res_scale) for _ in range(n_blocks)],
                                  conv(ch, ch))
        self.tail = nn.Sequential(upsampler(scale, ch), conv(ch, 3))

    def _forward(self, x, prior=None):
        h = self.head(x - self.rgb_mean)
        out = self.tail(h + self.body(h))
        # with the demo's global residual the net predicts the residual over bicubic(LR), so the
        # mean is not added back (it is already in the bicubic image)
        return {"sr": out if self.global_residual else out + self.rgb_mean}
