"""The thesis' prior-guided attention network, method 1 (Y. Liu, "A Prior-Guided Face Image
Super-Resolution Network Based on Attention Mechanism", Waseda master's thesis 2023 /
IWAIT 2023). Spec: ``../shared/specs/004_thesis.md`` sections 2.0-2.4.

Method 2 (the GAN) uses this network unchanged as its generator, with the SRGAN
discriminator (``srgan_d`` in :mod:`fsrlib.models.discriminators`).

Input convention
----------------
``input_kind = "lr"``: the raw LR face (16x16 at x8). Values in **[0, 1]** (no output
activation; [U]). The thesis only does x8; ``scale`` 4 and 16 change the number of
PixelShuffle stages (log2(scale)) and nothing else. The prior branch bicubic-upsamples the
LR internally with the differentiable torch helper :func:`~fsrlib.models.common.bicubic_up`
(PyTorch's a = -0.75 kernel, not MATLAB's) when ``prior_input="bicubic_up"``.

Dataflow (spec section 2.0, [S])::

    I_LR -> SR branch    -> I_coarse (3 x 128 x 128)  --+
    I_LR -> prior branch -> P_pred  (11 x 128 x 128)  --+-> concat (14) -> fusing module -> I_final

Both branches are trained jointly with ``L_c + L_p + L_f`` (MSE each; the losses live in
the trainer config: ``pred: coarse`` / ``pred: parsing, target: parts11`` / ``pred: sr``).
Nothing is detached before fusion by default (``detach_fusion_inputs``).

Choices ([S] stated, [A] ambiguous, [U] unstated -> our default)
---------------------------------------------------------------
Basic block (Fig. 3.3, Eqs. 3.1-3.4), :class:`AttentionBasicBlock`:
``F' = Conv3x3(x) + Conv"5x5"(x)`` [S] with the "5x5" a 3x3 conv of dilation 2 [A,
``multiscale_impl="dilated"``; ``"plain5x5"`` = a real 5x5 conv]; SE-style channel
attention (GAP -> FC -> ReLU -> FC [U: ReLU, reduction 16] -> **softmax** over channels
[S]; ``attn_act="sigmoid"`` = SENet) via :class:`~fsrlib.models.common.ChannelAttention`
(1x1 convs = FC layers); ``out = Conv3x3(ReLU(F' * w))`` [S]; identity skip ``x + out``
[U, ``block_skip``]; no BN [U, ``use_bn``]. 111,364 parameters per block at 64 channels.
Note: softmax weights average 1/64, so the attended features are ~64x smaller than with a
sigmoid; the block skip keeps the signal path (spec note 9.2).

SR branch (Fig. 3.2, Table 3.1): SRResNet layout [S]: Conv(3 -> 64, ``head_kernel`` 9 [U]) +
PReLU -> 16 basic blocks [S] -> Conv3x3 [S] (+ global skip from the head [U,
``global_skip``]) -> 3 x (Conv 64 -> 256, PixelShuffle 2, PReLU) [S] -> Conv(64 -> 3,
``head_kernel``) [U: the row was lost] = coarse SR. ~2.29 M parameters.

Prior branch (lost in the text, all [U]; spec section 2.3 default):
``bicubic_up`` (x scale) -> Conv3x3(3 -> 64) + BN + ReLU -> 3 residual blocks (conv-BN-ReLU-
conv-BN + skip) -> 1 Newell hourglass (depth 4, one residual block per step, BN, ReLU) ->
Conv1x1(64 -> 11) [the leaked "conv2" row], no activation (MSE regression to {0, 1} masks;
``parsing_sigmoid=True`` adds one). ``prior_input="lr"``: the head and residual blocks run
at LR size, then log2(scale) PixelShuffle stages bring the features to 128 before the
hourglass.

Fusing module (Fig. 3.8, Table 3.3): concat(coarse, parsing) (14 ch) [S] -> Conv3x3(14 -> 64)
+ ReLU [U act] -> residual block [S] -> Conv3x3(64 -> 3) [S]; ``fusion_residual=True`` adds
the coarse image (off by default [U]).

Init: PyTorch defaults [U].

Capacity (measured; the thesis reports none): 3.566 M parameters = SR branch 2.293 M
(16 x 111,364 in the basic blocks) + prior branch 1.188 M + fusing module 0.084 M;
8.96 G MACs for one 16x16 input (FlopCounterMode / 2), 6.0 G of them in the prior branch
and 1.4 G in the fusing module, which run 64 channels at 128x128. ``prior_input="lr"``:
4.01 M / 6.15 G.

CPU demo (params.yaml ``methods.pgnet.model``): n_feats 16, 16 blocks, reduction 4, 3x3 head/tail,
prior_ch 8 with 1 residual block, fusion_ch 8, NHWC (``channels_last``): 0.16 M params,
~0.13 s per Adam step at batch 8 on 2 CPU threads.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..registry import MODELS
from .common import (
    ChannelAttention,
    FSRModel,
    NewellHourglass,
    ResBlock,
    bicubic_up,
    conv,
    make_act,
    make_norm,
    upsampler,
)


class AttentionBasicBlock(nn.Module):
    """Thesis Fig. 3.3: multi-scale conv sum -> SE channel attention (softmax) -> ReLU -> conv,
    plus the identity skip."""

    def __init__(self, ch: int = 64, reduction: int = 16, attn_act: str = "softmax",
                 multiscale_impl: str = "dilated", block_skip: bool = True, use_bn: bool = False):
        super().__init__()
        if attn_act not in ("softmax", "sigmoid"):
            raise ValueError(f"attn_act must be softmax or sigmoid, got {attn_act!r}")
        self.c3 = conv(ch, ch, 3)
        if multiscale_impl == "dilated":
            self.c5 = conv(ch, ch, 3, dilation=2)
        elif multiscale_impl == "plain5x5":
            self.c5 = conv(ch, ch, 5)
        else:
            raise ValueError(f"unknown multiscale_impl {multiscale_impl!r}")
        self.bn1 = make_norm("bn" if use_bn else "none", ch)
        self.attn = ChannelAttention(ch, reduction, pools=("avg",), gate=attn_act)
        self.conv = conv(ch, ch, 3)
        self.bn2 = make_norm("bn" if use_bn else "none", ch)
        self.block_skip = block_skip

    def forward(self, x):
        f = self.bn1(self.c3(x) + self.c5(x))                       # Eq. 3.1
        out = self.bn2(self.conv(torch.relu(self.attn(f))))        # Eqs. 3.2-3.4
        return x + out if self.block_skip else out


class SRBranch(nn.Module):
    """SRResNet with its residual blocks replaced by :class:`AttentionBasicBlock`; returns
    the coarse SR image."""

    def __init__(self, scale: int, n_feats: int = 64, n_blocks: int = 16, head_kernel: int = 9,
                 global_skip: bool = True, act: str = "prelu", body_bn: bool = False, **block_kwargs):
        super().__init__()
        self.head = nn.Sequential(conv(3, n_feats, head_kernel), make_act(act, n_feats))
        self.body = nn.Sequential(*[AttentionBasicBlock(n_feats, **block_kwargs) for _ in range(n_blocks)])
        self.body_tail = nn.Sequential(conv(n_feats, n_feats, 3), make_norm("bn" if body_bn else "none", n_feats))
        self.up = upsampler(scale, n_feats, act=act)
        self.out = conv(n_feats, 3, head_kernel)
        self.global_skip = global_skip

    def forward(self, x):
        h = self.head(x)
        f = self.body_tail(self.body(h))
        return self.out(self.up(f + h if self.global_skip else f))


class PriorBranch(nn.Module):
    """Parsing-map predictor (spec section 2.3 default design; the thesis' section was lost)."""

    def __init__(self, scale: int, ch: int = 64, n_res: int = 3, n_hg: int = 1, hg_depth: int = 4,
                 n_maps: int = 11, prior_input: str = "bicubic_up", act: str = "relu", norm: str = "bn",
                 parsing_sigmoid: bool = False):
        super().__init__()
        if prior_input not in ("bicubic_up", "lr"):
            raise ValueError(f"prior_input must be bicubic_up or lr, got {prior_input!r}")
        self.scale, self.prior_input = scale, prior_input
        self.head = nn.Sequential(conv(3, ch, 3, bias=norm == "none"), make_norm(norm, ch), make_act(act, ch))
        self.res = nn.Sequential(*[ResBlock(ch, act=act, norm=norm) for _ in range(n_res)])
        self.up = upsampler(scale, ch, act="prelu") if prior_input == "lr" else nn.Identity()
        self.hg = nn.Sequential(*[NewellHourglass(ch, hg_depth, n_res=1, norm=norm, act=act) for _ in range(n_hg)])
        self.out = nn.Conv2d(ch, n_maps, 1)
        self.parsing_sigmoid = parsing_sigmoid

    def forward(self, x):
        if self.prior_input == "bicubic_up":
            x = bicubic_up(x, self.scale)
        p = self.out(self.hg(self.up(self.res(self.head(x)))))
        return torch.sigmoid(p) if self.parsing_sigmoid else p


class FusingModule(nn.Module):
    """Table 3.3: concat(coarse, parsing) -> Conv3x3 + ReLU -> residual block -> Conv3x3."""

    def __init__(self, n_maps: int = 11, ch: int = 64, act: str = "relu", norm: str = "bn",
                 fusion_residual: bool = False):
        super().__init__()
        self.body = nn.Sequential(conv(3 + n_maps, ch, 3), make_act(act, ch), ResBlock(ch, act=act, norm=norm),
                                  conv(ch, 3, 3))
        self.fusion_residual = fusion_residual

    def forward(self, coarse, parsing):
        out = self.body(torch.cat([coarse, parsing], 1))
        return out + coarse if self.fusion_residual else out


@MODELS.register("pgnet")
class PGNet(FSRModel):
    """Thesis method 1 (SR branch + parsing-prior branch + fusing module), raw LR in [0, 1].
    Defaults are the thesis configuration as read by the spec; see the module docstring."""

    input_kind = "lr"
    slim = {"n_feats": 8, "n_blocks": 2, "fc_reduction": 4, "prior_ch": 8, "prior_n_res": 1, "hg_depth": 2,
            "fusion_ch": 8}
    value_range = (0.0, 1.0)
    maps = ("coarse", "parsing")

    def __init__(self, scale: int = 8,
                 # SR branch
                 n_feats: int = 64, n_blocks: int = 16, head_kernel: int = 9, global_skip: bool = True,
                 sr_act: str = "prelu", body_bn: bool = False,
                 # basic block
                 attn_act: str = "softmax", multiscale_impl: str = "dilated", fc_reduction: int = 16,
                 block_skip: bool = True, use_bn: bool = False,
                 # prior branch
                 prior_input: str = "bicubic_up", prior_ch: int = 64, prior_n_res: int = 3, prior_n_hg: int = 1,
                 hg_depth: int = 4, n_parsing: int = 11, parsing_sigmoid: bool = False, res_act: str = "relu",
                 res_norm: str = "bn",
                 # fusing module
                 fusion_ch: int = 64, fusion_residual: bool = False, detach_fusion_inputs: bool = False,
                 channels_last: bool = False, global_residual: bool = False):
        super().__init__(scale)
        self.global_residual = bool(global_residual)  # + bicubic(LR) on the final SR (not in the thesis; demo)
        n = int(round(math.log2(self.scale)))
        if 2 ** n != self.scale or self.scale < 2:
            raise ValueError(f"PGNet: scale must be a power of two >= 2, got {scale}")
        self.sr_branch = SRBranch(self.scale, n_feats, n_blocks, head_kernel, global_skip, sr_act, body_bn,
                                  reduction=fc_reduction, attn_act=attn_act, multiscale_impl=multiscale_impl,
                                  block_skip=block_skip, use_bn=use_bn)
        self.prior_branch = PriorBranch(self.scale, prior_ch, prior_n_res, prior_n_hg, hg_depth, n_parsing,
                                        prior_input, res_act, res_norm, parsing_sigmoid)
        self.fusing = FusingModule(n_parsing, fusion_ch, res_act, res_norm, fusion_residual)
        self.detach_fusion_inputs = detach_fusion_inputs
        # CPU speed only (same maths): oneDNN convolutions are faster in NHWC
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def _forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> dict:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        coarse = self.sr_branch(x)
        parsing = self.prior_branch(x)
        if self.detach_fusion_inputs:
            sr = self.fusing(coarse.detach(), parsing.detach())
        else:
            sr = self.fusing(coarse, parsing)
        return {"sr": sr, "coarse": coarse, "parsing": parsing}


MODELS.register_preset("pgnet_sigmoid", "pgnet", attn_act="sigmoid")
