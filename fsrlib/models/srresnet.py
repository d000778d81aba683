"""SRResNet (Ledig et al., CVPR 2017), the SRGAN generator and the thesis' baseline (spec 004
section 2.6): 9x9 conv + PReLU, ``n_blocks`` = 16 residual blocks (conv-BN-PReLU-conv-BN +
identity) of ``ch`` = 64, 3x3 conv + BN, global skip from the head, log2(scale) x (conv
64 -> 256, PixelShuffle 2, PReLU), 9x9 output conv.

Input: the **raw LR** (``lr``, 128/scale px), RGB in [0, 1]; scales 4, 8, 16 (powers of two).
Choices: PReLU per channel (the paper does not say; many ports use one slope), linear output
in [0, 1] (the paper scales HR to [-1, 1]; a tanh is not in its figure), PyTorch default init.

Demo (CPU) configuration: ``{"ch": 16, "n_blocks": 4}`` (~0.09-0.10 s per Adam step, batch 8, x8,
2 cores).
"""
from __future__ import annotations

import torch.nn as nn

from ..registry import MODELS
from .common import FSRModel, ResBlock, conv, make_act, make_norm, upsampler


@MODELS.register("srresnet")
class SRResNet(FSRModel):
    input_kind = "lr"
    slim = {"ch": 4, "n_blocks": 2}

    def __init__(self, scale: int = 8, ch: int = 64, n_blocks: int = 16, act: str = "prelu",
                 global_residual: bool = False):
        super().__init__(scale)
        self.global_residual = bool(global_residual)  # + the upsampled input (not in the paper; demo switch)
        self.head = nn.Sequential(conv(3, ch, 9), make_act(act, ch))
        self.body = nn.Sequential(*[ResBlock(ch, act=act, norm="bn") for _ in range(n_blocks)],
                                  conv(ch, ch), make_norm("bn", ch))
        self.tail = nn.Sequential(upsampler(scale, ch, act=act), conv(ch, 3, 9))

    def _forward(self, x, prior=None):
        h = self.head(x)
        return {"sr": self.tail(h + self.body(h))}
