"""ParsingNet: the LR-face parsing estimator of FishFSRNet (Wang et al., T-BIOM 2023), step 1.

Spec: ``specs/001_fishfsrnet.md`` §2.1. Paper Eq. (1): ``P = f_ParsingNet(I_LR)``.

Architecture ([PAPER] "two convolutional layers and eight Resblocks"; widths from [CODE]
``parsing/parsingnet.py``)::

    Conv3x3(3 -> 64) -> 8 x ResBlock(64, res_scale 0.2) -> Conv3x3(64 -> Cp)

No global skip, no up-sampling, no output activation, no clamp.

Input / output conventions
--------------------------
- ``input_kind = "lr"``: the **raw** LR face (32x32 at x4, 16x16 at x8, 8x8 at x16), RGB in
  [0, 1]. The network is fully convolutional and has no scale-dependent part; ``scale`` is
  only recorded (one model is trained per scale, as in the paper).
- Output P: ``Cp x h x w`` at **LR size** (``parsing_channels`` Cp in {1, 3}, default 3 as in
  the code, where the binary skin map is stored as a 3-channel image). Target: the binary
  skin map (1 = skin) bicubic-downsampled to LR size (batch key ``skin_lr``), L1 loss.
- P is **not clamped** (the trained map can leave [0, 1]). Consumers clamp it to [0, 1]:
  the official code saves P as an 8-bit PNG (``torchvision.utils.save_image`` clamps and
  quantises) before FishFSRNet reads it, and :class:`fsrlib.models.fishfsrnet.FishFSRNet`
  clamps its ``prior`` input in its forward.
- ParsingNet has **no "sr" output**: ``forward(x)`` returns P, ``forward_maps(x)`` returns
  ``{"parsing": P}``.

Official parameter count 594,371 (Cp = 3); 593,217 with Cp = 1. MACs per image: 0.608 G
(32x32, x4), 0.152 G (16x16, x8), 0.038 G (8x8, x16).

Demo (CPU) configuration: the full config is already cheap. One Adam step at batch 8 on
2 cores took ~0.10 s (x4), ~0.03 s (x8), ~0.013 s (x16) (measured on a shared, lightly
loaded box, where the SRCNN/VDSR demos took 0.06-0.08 s). ``{"n_feats": 32,
"n_resblocks": 4}`` (75.7 K params) is ~0.02 s at x4.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import MODELS
from .common import FSRModel, ResBlock, conv


@MODELS.register("parsingnet")
class ParsingNet(FSRModel):
    """LR face -> binary skin-parsing map at LR size (see the module docstring).

    Args:
        scale: 4, 8 or 16; recorded only (the network is scale-agnostic).
        n_feats: width (64 in the code; the paper gives none).
        n_resblocks: 8 [PAPER].
        res_scale: residual scaling of the ResBlocks, 0.2 ([CODE] ``option.py``).
        parsing_channels: Cp, 3 (code parity, default) or 1.
    """

    input_kind = "lr"
    slim = {"n_feats": 8, "n_resblocks": 1}
    outputs_sr = False  # evaluated by parsing accuracy, not PSNR
    maps = ("parsing",)

    def __init__(self, scale: int = 8, n_feats: int = 64, n_resblocks: int = 8,
                 res_scale: float = 0.2, parsing_channels: int = 3):
        super().__init__(scale)
        if parsing_channels not in (1, 3):
            raise ValueError(f"parsing_channels must be 1 or 3, got {parsing_channels}")
        self.parsing_channels = parsing_channels
        self.head = conv(3, n_feats, 3)
        self.body = nn.Sequential(*[ResBlock(n_feats, act="relu", res_scale=res_scale)
                                    for _ in range(n_resblocks)])
        self.tail = conv(n_feats, parsing_channels, 3)

    def _forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> dict:
        return {"parsing": self.tail(self.body(self.head(x)))}

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """Return the (unclamped) parsing map P, ``Cp x h x w`` at the input's size."""
        return self.forward_maps(x, prior)["parsing"]
