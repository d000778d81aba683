"""W-Net: a facial-feature-guided face SR network (Liu, Yang, Liu; "W-Net 2024").

Spec: ``specs/000_wnet.md`` §2 (Eqs. 2-23). Tags: [S] stated, [A] ambiguous (both readings
in the spec), [G] our guess. There is **no official code**: every unstated width, kernel
and activation below is the spec's [G] default.

Input / output conventions
--------------------------
- ``input_mode="bicubic128"`` (default, [G] spec §2.0): ``input_kind = "upsampled"``, the
  LR face **bicubic-upsampled back to 128x128** (batch key ``lr_up``), RGB in [0, 1]. Only
  this reading makes the paper's sizes hold (W-stage up to 1024^2 and back to 128^2, encoder
  parsing maps 64/32/16/8). The network shapes do not depend on the scale: x4 and x8 (and
  x16) are separate trained models of the same architecture.
- ``input_mode="native"``: ``input_kind = "lr"``, the raw LR (32^2 at x4, 16^2 at x8); the
  W-stage and encoder follow the LR size, and a [G] tail of log2(scale) PixelShuffle x2
  steps (common.upsampler) before the output conv brings the decoder output to 128^2.
  It cannot reproduce the paper's "1024x1024"; ``enc_levels`` / ``hg_depth`` must fit the
  LR size (2^levels must divide it).
- Output: SR 3x128x128 in [0, 1] (no output activation; optional ``global_residual``).
  ``forward_maps`` returns ``{"sr", "parsing"}``, "parsing" = the Parsing Block output
  (3 channels at the input size: 128^2 by default), trained with an MSE to the binary skin
  map (batch key ``skin``), Eq. 25. It is not clamped ([G], ``parsing_act`` to change).

Architecture (C = ``n_feats`` = 64 [S])
---------------------------------------
- Parsing Block (Eqs. 2-8, Fig. 2): Conv3x3(3->C) -> ``n_resblocks`` ResBlocks ([G] 3) ->
  Newell hourglass (depth 4 [S], one hourglass and one ResBlock per branch [G]) -> the
  multi-scale unit y1 = ReLU(1x1, C->C/2), y2 = ReLU(3x3, C->C/2), y3 = ReLU(3x3, C->C/2)
  (Eq. 4 as written: y2 and y3 both 3x3), y4 = ReLU(3x3, 3C/2 -> C) ("doubled"), y5 =
  ReLU(3x3 on y3, C/2 -> C/4) ("halved"; input y3 as in Eq. 5, not the text's "original
  feature map"), y6 = CA(cat) + SA(cat) on cat(y2, y4, y5) (7C/4 channels), y7 = 1x1 -> C,
  + F_Deep, Conv3x3(C->3). CA = RCAN-style (avg pool, reduction 16, hidden >= 4), SA =
  CBAM-style 7x7 (common.ChannelAttention / SpatialAttention).
- LPF (Eqs. 9-11, Fig. 3), F = image features (C), Pm = parsing map (3 ch) at the same size::

      F1 = conv3(F), F2 = conv3(F), Pp = conv3(Pm)               (3->C)
      F_att   = conv3(CA(F1) + SA(F1))
      sigma   = sigmoid(conv1(F2 + Pp))                          (pixel attention PA)
      F_pixel = sigma * F2 + (1 - sigma) * Pp
      F_fuse1 = conv3(cat(F_att, Pp))                            (2C->C)
      F_fuse2 = conv1(F_pixel + F + Pp)     [A] the paper adds the raw 3-ch map here, which
                                            cannot be added to C channels: Pp is used ([G])
      out     = F_fuse1 + F_fuse2 + F2 + Pp
- W-stage (Eqs. 12-19): F = cat(I, P) (6 ch); ``w_scales`` times
  F = LPF(Up(conv3(F)), NN(P, x2^i)); then ``w_scales`` times F = LPF(Down(conv3(F)), NN(P))
  back to the input size. Up = Conv3x3(C->4C) -> PixelShuffle(2) -> BN -> ReLU, Down =
  PixelUnshuffle(2) -> Conv3x3(4C->C) -> BN -> ReLU ([S] "PixelShuffle/invPixelShuffle and
  BatchNorm"; the channel convs and ReLU are [G]). Default 3 steps (128 -> 1024 -> 128).
- Encoder (Eq. 22, order [G]): ``enc_levels`` x [Down -> 2 x SCAB -> LPF(NN-downsampled P)]
  (128 -> 8). Decoder (Eq. 23): ``enc_levels`` x [Up -> 2 x SCAB], no skips, no LPF.
  Output Conv3x3(C->3).
- SCAB = RCAB (x + CA(conv3(ReLU(conv3(x)))), CA reduction 16) followed by
  x + MDTA(x): common.ChannelSelfAttention(order="dw_pw", 4 heads [S], learnable
  temperature over L2-normalised Q/K [G], bias-free as in Restormer [G]). [A] The attention
  axis: channel ("transposed") attention, since spatial attention at 128^2 is infeasible.
  Eq. 20 has one depthwise conv per projection; the shared-layer version applies one
  depthwise conv to the input and a 1x1 to 3C (the same receptive field, 2 x 9C fewer
  weights).

Ablations (paper Table 3, CelebA x4, Mode II): three switches
``parsing_block`` in {"parsing_block", "convblock"}, ``fusion`` in {"lpf", "cascade"},
``block`` in {"scab", "rcab"}. The table's check marks were lost in the text extraction;
the rows below are the spec's [A] reconstruction (the 8 rows = all 2^3 combinations):

=====  =============  =======  =====  ===============
Exp.   parsing_block  fusion   block  PSNR / SSIM
=====  =============  =======  =====  ===============
A      convblock      cascade  rcab   28.69 / 0.8358
B      parsing_block  cascade  rcab   28.98 / 0.8438
C      convblock      lpf      rcab   31.01 / 0.8903
D      convblock      cascade  scab   31.10 / 0.8956
E      parsing_block  cascade  scab   31.21 / 0.8965
F      parsing_block  lpf      rcab   31.36 / 0.8977
G      convblock      lpf      scab   31.37 / 0.8973
H      parsing_block  lpf      scab   31.63 / 0.9029 (full W-Net)
=====  =============  =======  =====  ===============

(Presets ``wnet_expA`` ... ``wnet_expH``.) "convblock" = the "standard ConvBlock" [G]:
Conv3x3(3->C) -> ReLU -> Conv3x3(C->C) -> ReLU -> Conv3x3(C->3), still producing a 3-channel
map (Fig. 8 shows maps "without the Parsing Block"). "cascade" = cat(F, Pm) ->
Conv3x3(C+3 -> C) at every LPF position [G]. "rcab" = SCAB without the self-attention.

Parameter count (full config): 6,967,606 (spec estimate "about 7.0 M"): Parsing Block
1,293,229; 10 LPFs 1,953,670; 16 SCABs 1,462,400; 14 Up/Down 2,068,416; 6 W-stage pre-convs
188,160; output conv 1,731. Activations at 1024^2 are 256 MiB per 64-channel tensor per
sample (fp32): never run the full config on a CPU. MACs: 514.2 G per 128x128 output (the
spec's estimate; 334 G of it in the 256-1024^2 W-stage). On one H100, a full-config Adam
step took 0.12 s at batch 1 (6.2 GiB peak), 0.32 s at batch 4 fp32 (24.4 GiB), 0.23 s at
batch 4 with bf16 autocast (12.4 GiB).

Demo (CPU) configuration (params.yaml ``methods.wnet.model``): ``{"input_mode": "native", "n_feats": 16,
"w_scales": 1, "enc_levels": 2, "hg_depth": 2, "n_resblocks": 1}`` (231 K params at x8):
the same blocks (Parsing Block with a depth-2 hourglass, LPF, SCAB, W-stage of one up/down
step at 2x the LR size, 2-level encoder/decoder), on the raw LR plus the x``scale``
PixelShuffle tail. One Adam step at batch 8 on 2 cores: ~0.13 s (x4), ~0.09 s (x8), ~0.08 s
(x16). Anything that runs at 128^2 in the default ``bicubic128`` mode is far slower on a
CPU: the slimmest faithful-reading config ``{"n_feats": 8, "w_scales": 1, "n_resblocks":
1}`` (89 K params) takes ~1.0 s per step at batch 8.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS
from .common import (
    ChannelAttention,
    ChannelSelfAttention,
    FSRModel,
    NewellHourglass,
    PixelShuffleUp,
    PixelUnshuffleDown,
    ResBlock,
    SpatialAttention,
    conv,
    make_norm,
    upsampler,
)

PARSERS = ("parsing_block", "convblock")
FUSIONS = ("lpf", "cascade")
BLOCKS = ("scab", "rcab")


def rcan_ca(ch: int) -> ChannelAttention:
    """RCAN channel attention: avg pool -> 1x1 (C -> C/16, at least 4) -> ReLU -> 1x1 -> sigmoid."""
    return ChannelAttention(ch, reduction=16, pools=("avg",), min_hidden=4)


class ParsingBlock(nn.Module):
    """W-Net's Parsing Block, Eqs. 2-8 (widths in the module docstring)."""

    def __init__(self, ch: int = 64, n_resblocks: int = 3, hg_depth: int = 4, out_ch: int = 3):
        super().__init__()
        h, q = ch // 2, ch // 4
        relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
        self.shallow = conv(3, ch, 3)                                           # Eq. 2
        self.res = nn.Sequential(*[ResBlock(ch, act="relu") for _ in range(n_resblocks)])
        self.hg = NewellHourglass(ch, depth=hg_depth, n_res=1) if hg_depth > 0 else nn.Identity()  # Eq. 3
        self.y1 = nn.Sequential(conv(ch, h, 1), relu())                         # Eq. 4
        self.y2 = nn.Sequential(conv(ch, h, 3), relu())
        self.y3 = nn.Sequential(conv(ch, h, 3), relu())
        self.y4 = nn.Sequential(conv(3 * h, ch, 3), relu())                     # Eq. 5
        self.y5 = nn.Sequential(conv(h, q, 3), relu())
        cat_ch = h + ch + q
        self.ca = rcan_ca(cat_ch)                                               # Eq. 6
        self.sa = SpatialAttention(7)
        self.y7 = conv(cat_ch, ch, 1)                                           # Eq. 7
        self.out = conv(ch, out_ch, 3)                                          # Eq. 8

    def forward(self, x):
        deep = self.hg(self.res(self.shallow(x)))
        y1, y2, y3 = self.y1(deep), self.y2(deep), self.y3(deep)
        y4 = self.y4(torch.cat([y1, y2, y3], 1))
        y5 = self.y5(y3)
        c = torch.cat([y2, y4, y5], 1)
        y6 = self.ca(c) + self.sa(c)
        return self.out(self.y7(y6) + deep)


class ConvBlockParser(nn.Sequential):
    """Ablation stand-in for the Parsing Block (Exp. A/C/D/G), a "standard ConvBlock" [G]."""

    def __init__(self, ch: int = 64, out_ch: int = 3):
        super().__init__(conv(3, ch, 3), nn.ReLU(inplace=True), conv(ch, ch, 3), nn.ReLU(inplace=True),
                         conv(ch, out_ch, 3))


class LPF(nn.Module):
    """LR-Parsing-map Fusion module, Eqs. 9-11. ``forward(f, p)``: f C-channel features, p the
    parsing map (``p_ch`` channels) at the same size."""

    def __init__(self, ch: int = 64, p_ch: int = 3):
        super().__init__()
        self.c1, self.c2, self.cp = conv(ch, ch, 3), conv(ch, ch, 3), conv(p_ch, ch, 3)  # Eq. 9
        self.ca, self.sa = rcan_ca(ch), SpatialAttention(7)
        self.att_conv = conv(ch, ch, 3)
        self.pa = nn.Conv2d(ch, ch, 1)             # pixel attention (PAN-style) [G]
        self.fuse1 = conv(2 * ch, ch, 3)
        self.fuse2 = nn.Conv2d(ch, ch, 1)

    def forward(self, f, p):
        f1, f2, pp = self.c1(f), self.c2(f), self.cp(p)
        f_att = self.att_conv(self.ca(f1) + self.sa(f1))
        sigma = torch.sigmoid(self.pa(f2 + pp))
        f_pixel = sigma * f2 + (1 - sigma) * pp
        fuse1 = self.fuse1(torch.cat([f_att, pp], 1))       # Eq. 10
        fuse2 = self.fuse2(f_pixel + f + pp)
        return fuse1 + fuse2 + f2 + pp                      # Eq. 11


class CascadeFusion(nn.Module):
    """Ablation stand-in for LPF ("a basic cascade"): Conv3x3(cat(f, p)) [G]."""

    def __init__(self, ch: int = 64, p_ch: int = 3):
        super().__init__()
        self.conv = conv(ch + p_ch, ch, 3)

    def forward(self, f, p):
        return self.conv(torch.cat([f, p], 1))


class SCAB(nn.Module):
    """RCAB (+ channel self-attention when ``attention=True``, i.e. W-Net's SCAB, Eqs. 20-21).
    ``attention=False`` is the plain RCAB of the ablations."""

    def __init__(self, ch: int = 64, attention: bool = True, heads: int = 4,
                 attn_scale: str = "temperature", attn_norm: str = "none"):
        super().__init__()
        self.body = nn.Sequential(conv(ch, ch, 3), nn.ReLU(inplace=True), conv(ch, ch, 3), rcan_ca(ch))
        if attention:
            self.norm = make_norm(attn_norm, ch)
            self.attn = ChannelSelfAttention(ch, heads=heads, bias=False, scale=attn_scale, order="dw_pw")
        else:
            self.attn = None

    def forward(self, x):
        x = x + self.body(x)
        if self.attn is not None:
            x = x + self.attn(self.norm(x))
        return x


@MODELS.register("wnet")
class WNet(FSRModel):
    """W-Net (see the module docstring).

    Args:
        scale: 4 or 8 in the paper (x16 also builds); only the native mode depends on it.
        input_mode: ``"bicubic128"`` (default; ``lr_up`` input) or ``"native"`` (raw LR).
        w_scales: x2 up steps of the W-stage (3 = 128 -> 1024 -> 128, the paper).
        n_feats: width C (64 [S]).
        enc_levels: encoder down steps = decoder up steps (4: 128 -> 8).
        parsing_block / fusion / block: Table 3 switches (see the table above).
        n_resblocks, hg_depth: Parsing Block ResBlocks ([G] 3) and hourglass depth (4 [S]).
        heads, attn_scale, attn_norm: SCAB self-attention (4 heads [S]; temperature [G];
            ``attn_norm="ln"`` adds the optional channel LayerNorm before it [G]).
        updown_norm, updown_act: Up/Down modules' norm ("bn" [S]) and activation (relu [G]).
        parsing_act: ``"none"`` (default [G]) | ``"sigmoid"`` | ``"clamp"`` on the parsing map.
        global_residual: add the bicubic input to the output ([G], off).
    """

    input_kind = "upsampled"
    slim = {"n_feats": 8, "w_scales": 1, "n_resblocks": 1, "enc_levels": 2, "hg_depth": 2}
    maps = ("parsing",)

    def __init__(self, scale: int = 8, input_mode: str = "bicubic128", w_scales: int = 3,
                 n_feats: int = 64, enc_levels: int = 4, parsing_block: str = "parsing_block",
                 fusion: str = "lpf", block: str = "scab", n_resblocks: int = 3, hg_depth: int = 4,
                 heads: int = 4, attn_scale: str = "temperature", attn_norm: str = "none",
                 updown_norm: str = "bn", updown_act: str = "relu", parsing_act: str = "none",
                 global_residual: bool = False):
        super().__init__(scale)
        for name, val, allowed in (("parsing_block", parsing_block, PARSERS), ("fusion", fusion, FUSIONS),
                                   ("block", block, BLOCKS), ("input_mode", input_mode, ("bicubic128", "native")),
                                   ("parsing_act", parsing_act, ("none", "sigmoid", "clamp"))):
            if val not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {val!r}")
        if w_scales < 1:
            raise ValueError("w_scales must be >= 1 (the W-stage needs at least one up/down step)")
        self.input_mode, self.w_scales, self.enc_levels = input_mode, w_scales, enc_levels
        self.parsing_act, self.global_residual = parsing_act, global_residual
        self.input_kind = "upsampled" if input_mode == "bicubic128" else "lr"
        in_size = self.hr_size if input_mode == "bicubic128" else self.hr_size // scale
        need = 2 ** max(enc_levels, hg_depth if parsing_block == "parsing_block" else 0)
        if in_size % need:
            raise ValueError(f"input size {in_size} is not divisible by 2^max(enc_levels, hg_depth) = {need}; "
                             "reduce enc_levels / hg_depth (native mode at high scales)")
        C, P = n_feats, 3
        up = lambda: PixelShuffleUp(C, C, norm=updown_norm, act=updown_act)      # noqa: E731
        down = lambda: PixelUnshuffleDown(C, C, norm=updown_norm, act=updown_act)  # noqa: E731
        fuse = (lambda: LPF(C, P)) if fusion == "lpf" else (lambda: CascadeFusion(C, P))  # noqa: E731
        blk = lambda: SCAB(C, attention=block == "scab", heads=heads, attn_scale=attn_scale,  # noqa: E731
                           attn_norm=attn_norm)

        self.parser = ParsingBlock(C, n_resblocks, hg_depth, P) if parsing_block == "parsing_block" \
            else ConvBlockParser(C, P)
        # W-stage, Eqs. 12-19: pre-conv f_3x3,64 + Up/Down + fusion at every step
        self.w_pre = nn.ModuleList([conv(2 * P if i == 0 else C, C, 3) for i in range(2 * w_scales)])
        self.w_resample = nn.ModuleList([up() for _ in range(w_scales)] + [down() for _ in range(w_scales)])
        self.w_fuse = nn.ModuleList([fuse() for _ in range(2 * w_scales)])
        # encoder (Eq. 22) and decoder (Eq. 23)
        self.enc_down = nn.ModuleList([down() for _ in range(enc_levels)])
        self.enc_blocks = nn.ModuleList([nn.Sequential(blk(), blk()) for _ in range(enc_levels)])
        self.enc_fuse = nn.ModuleList([fuse() for _ in range(enc_levels)])
        self.dec_up = nn.ModuleList([up() for _ in range(enc_levels)])
        self.dec_blocks = nn.ModuleList([nn.Sequential(blk(), blk()) for _ in range(enc_levels)])
        self.sr_up = upsampler(scale, C) if input_mode == "native" else nn.Identity()
        self.out = conv(C, 3, 3)

    def _parse(self, x):
        p = self.parser(x)
        if self.parsing_act == "sigmoid":
            p = torch.sigmoid(p)
        elif self.parsing_act == "clamp":
            p = p.clamp(0.0, 1.0)
        return p

    def _forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> dict:
        p = self._parse(x)                                   # Parsing^L, input size
        k = self.w_scales
        f = torch.cat([x, p], 1)                             # Eq. 12 (fusion 1)
        levels = list(range(1, k + 1)) + list(range(k - 1, -1, -1))
        for i, lvl in enumerate(levels):                     # Eqs. 13-19
            f = self.w_resample[i](self.w_pre[i](f))
            p_s = p if lvl == 0 else F.interpolate(p, scale_factor=2 ** lvl, mode="nearest")
            f = self.w_fuse[i](f, p_s)
        for d, b, fu in zip(self.enc_down, self.enc_blocks, self.enc_fuse):  # Eq. 22
            f = b(d(f))
            f = fu(f, F.interpolate(p, size=f.shape[-2:], mode="nearest"))
        for u, b in zip(self.dec_up, self.dec_blocks):      # Eq. 23
            f = b(u(f))
        sr = self.out(self.sr_up(f))
        return {"sr": sr, "parsing": p}  # + the bicubic input in FSRModel.forward_maps if global_residual


# Table 3 ablation rows ([A] reconstruction, see the module docstring); H = full W-Net.
_EXPS = {
    "A": ("convblock", "cascade", "rcab"), "B": ("parsing_block", "cascade", "rcab"),
    "C": ("convblock", "lpf", "rcab"), "D": ("convblock", "cascade", "scab"),
    "E": ("parsing_block", "cascade", "scab"), "F": ("parsing_block", "lpf", "rcab"),
    "G": ("convblock", "lpf", "scab"), "H": ("parsing_block", "lpf", "scab"),
}
for _k, (_pb, _fu, _bl) in _EXPS.items():
    MODELS.register_preset(f"wnet_exp{_k}", "wnet", parsing_block=_pb, fusion=_fu, block=_bl)

__all__ = ["WNet", "ParsingBlock", "LPF", "SCAB", "CascadeFusion", "ConvBlockParser"]
