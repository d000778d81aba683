"""AMINet: Attention-Guided Multiscale Interaction Network for face SR (Wan, Li, Gao et al.,
arXiv 2409.00591 v4). Spec: ``../shared/specs/003_aminet.md``.

Input convention
----------------
``input_kind = "upsampled"``: the LR face bicubic-upsampled back to 128x128 (the data
stage's ``lr_up``). The paper only evaluates x8 (16 -> 128); because the network sees the
upsampled image, the topology does not depend on the scale, so ``scale`` 4 and 16 build
the same network (``scale`` is only recorded). Spatial size must be divisible by 8 (the
bottleneck is at H/8); with the FRM hourglass (depth 2, reflect padding) inside the
bottleneck, inputs must be at least 64x64 (128 in practice).

Value range: [-1, 1] inside the model (``Normalize(0.5, 0.5)`` of the CTCNet/SPARNet
codebase that AMINet very likely used, spec [CB]); the base class maps [0, 1] in and out.

Architecture (spec section 2; [S] stated, [A] ambiguous, [U] our default)
----------------------------------------------------------------------
::

    x0 = Conv3x3(3 -> C)(I)                                         [S; C unstated]
    e1 = LGFI_C(x0);  f1 = Down(e1)      # 2C x 64 x 64               [S]
    e2 = LGFI_2C(f1); f2 = Down(e2)      # 4C x 32 x 32
    e3 = LGFI_4C(f2); f3 = Down(e3)      # 8C x 16 x 16
    f4 = LGFI_8C(LGFI_8C(f3))            # bottleneck, 2 LGFIs        [S]
    f5 = LGFI_4C(EDFF(e3, Up(f4)))       # decoder: Up -> EDFF -> LGFI [S]
    f6 = LGFI_2C(EDFF(e2, Up(f5)))
    f7 = LGFI_C (EDFF(e1, Up(f6)))
    I_SR = Conv3x3(C -> 3)(f7) + I                                  [S/A global residual]

- ``C = 20`` [U], AMINet-S = ``C = 16`` [U]: spec section 2.7 -- with the defaults below
  these give 12.89 M / 8.27 M parameters (paper: 12.62 M / 8.2 M, +2.1 % / +0.9 %).
- Down = Conv3x3 stride 2 (D -> 2D); Up = Conv3x3 (2D -> 4D) + PixelShuffle(2) [U].
- Heads per level ``(1, 2, 4, 8)`` (Restormer) [U]; blocks per stage ``enc_blocks=(1,1,1)``,
  ``mid_blocks=2``, ``dec_blocks=(1,1,1)`` [S, literal reading].
- EDFF skip = the encoder LGFI output before downsampling (``skip_source="pre_down"``) [A];
  ``"post_down"`` uses the encoder stage input (x0/f1/f2) instead.

LGFI (section 2.1): ``y = LN(x); out = x + SKAF(SA(y), RDFE(y))`` -- SA and RDFE in
parallel [S], shared pre-norm and outer residual [U] (``lgfi_prenorm``,
``lgfi_outer_residual``, ``lgfi_shared_norm``).

- SA = Restormer MDTA (:class:`~fsrlib.models.common.ChannelSelfAttention`, 1x1 then DW3x3,
  channel-wise attention) [S]; ``attn_scale="temperature"`` (L2-normalised Q/K and a
  learnable per-head temperature, Restormer) [U] or ``"sqrt_d"`` (Eq. 4 literally).
  Convs without bias (Restormer) [U].
- RDFE (section 2.1.2): DW3/DW5/DW7 in parallel [S] -> AU gate ``sigmoid(Conv1x1(3D -> D))``
  [U] multiplied into each branch [S] -> a second DW3/DW5/DW7 [A, ``rdfe_second_dw``] ->
  Conv1x1(3D -> D) + residual [S] -> FRM. FRM [U]: ``h = f + Conv3x3(LReLU(Conv3x3(BN(f))))``
  then a SPARNet/CTCNet hourglass (depth 2, ``mid = D`` channels, BN + LeakyReLU 0.2,
  reflect padding) -> Conv1x1(mid -> 1) -> sigmoid = spatial map A; output ``h * A``
  (``frm_hourglass_residual=True``: ``h + h * A``). No activations between the DW convs [U].
- SKAF (section 2.1.3): :class:`~fsrlib.models.common.SelectiveKernelFusion`; hybrid feature
  = Conv1x1(cat(g, l)) [A], dense parallel 5x5 and 7x7 convs [A: only dense convs explain
  Table I's 4.4 M], channel avg+max pooling [S], a 7x7 conv 2 -> 2 before the sigmoid
  (LSKNet "conv_squeeze") [A; ``skaf_literal=True`` drops it, Eq. 13 literally].
- EDFF (section 2.2) = the same SKAF module on (encoder skip, upsampled decoder feature).
  Table V switches apply to the LGFI SKAFs only (``skaf_scope="lgfi"``); ``"all"`` applies
  them to the EDFFs as well.
- Init: PyTorch defaults [U]; ``zero_init_tail=True`` makes the untrained model return its
  input (the spec's sanity test: initial PSNR = bicubic).

Ablations (paper Tables I-V; presets registered below)
------------------------------------------------------
``no_sa`` / ``no_rdfe`` (LGFI = x + the other branch, SKAF dropped), ``no_skaf``
(x + g + l), ``replace_lgfi_with_restormer`` (Table II: every LGFI -> Restormer block,
MDTA then GDFN with ``ffn_expansion`` 2.66), ``replace_rdfe_with_ffn`` (Table III: RDFE
-> GDFN), ``single_path_k`` (Table IV: one DW branch of size k), ``no_au``, ``no_frm``,
``skaf_use5``/``skaf_use7``/``skaf_avg``/``skaf_max`` (Table V).

Capacity and compute (measured with this file, 1x3x128x128, MACs = FlopCounterMode/2)
-------------------------------------------------------------------------------------
AMINet 12.89 M params / 9.06 G MACs (paper 12.62 M / 15.6 G); AMINet-S 8.27 M / 5.85 G
(paper 8.2 M / 9.4 G). The parameter budget matches, the MACs do not. In this U-Net every
LGFI costs about the same (~0.9 GMAC: channels double while the area quarters), but its
parameters grow 4x per level (0.07 / 0.28 / 1.09 / 4.31 M at C = 20), so the paper's
~1.24 GMAC per M parameters points at more compute at the 128/64 px levels than our literal
reading (1 LGFI per encoder/decoder stage) has -- e.g. ``enc_blocks = dec_blocks = (3, 1, 1)``
gives 13.18 M / 12.8 G. Fig. 2 is not available to settle it, so the literal reading stays
the default. Table I's component budget (SA 0.32 M, RDFE 5.42 M, SKAF 4.41 M) compares
with ours: SA 0.29 M, RDFE 6.03 M, SKAF 5.17 M, rest 1.40 M (paper: 2.47 M).

Table I reading: the spec drops SKAF when a branch is removed (``out = x + branch``), which
gives 7.43 M (w/o SA) and 1.69 M (w/o RDFE) against the paper's 12.3 M and 7.2 M; keeping
SKAF and feeding it the branch's input instead (``ablation_keep_skaf=True``, presets
``aminet_no_sa_keep_skaf`` / ``aminet_no_rdfe_keep_skaf``) gives 12.60 M and 6.86 M.
Tables II/III at GDFN expansion 2.66 give 2.26 M / 7.43 M (paper 11.32 M / 12.11 M, "similar
parameters"); ``*_matched`` presets restore the parameter budget.

CPU: ``channels_last=True`` runs the same maths in NHWC, which oneDNN's depthwise and
small-channel convolutions (and their backward) run 1.3-2x faster. CPU demo (params.yaml
``methods.aminet.model``): C = 4, same topology, NHWC: 0.54 M params, 0.42 G MACs, ~0.43 s per Adam
step at batch 8 on 2 CPU threads -- the ~1,000 small ops at 128 px set a floor (C = 2 still
takes ~0.32 s), so the full topology cannot go much below that on this CPU.

``forward_maps`` returns ``{"sr", "features": {"sa", "rdfe", "skaf"}`` of the last decoder
LGFI (Fig. 5 heat maps; only the branches that exist), ``"attention"``: the FRM hourglass
maps (B x 1 x h x w in (0, 1)) of every LGFI in forward order}.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS
from .common import (
    ChannelAttention,
    ChannelSelfAttention,
    FSRModel,
    LayerNorm2d,
    PixelShuffleUp,
    SelectiveKernelFusion,
    SPARHourglass,
    conv,
    make_act,
    make_norm,
)


# ====================================================================== building blocks
class GDFN(nn.Module):
    """Restormer's gated-dconv feed-forward network: Conv1x1(D -> 2h) -> DW3x3 ->
    GELU(x1) * x2 -> Conv1x1(h -> D), h = int(D * expansion). Table II/III baselines."""

    def __init__(self, dim: int, expansion: float = 2.66, bias: bool = False):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x):
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class FeatureRefinement(nn.Module):
    """RDFE's FRM (Eq. 10) [U]: ``h = f + Conv3x3(act(Conv3x3(Norm(f))))``, then a SPARNet
    hourglass -> Conv1x1(mid -> 1) -> sigmoid = spatial map ``A``; returns ``(h * A, A)``
    (``residual=True``: ``h + h * A``)."""

    def __init__(self, dim: int, norm: str = "bn", act: str = "leakyrelu", hg_depth: int = 2,
                 hg_mid: int | None = None, residual: bool = False):
        super().__init__()
        hg_mid = hg_mid or dim
        self.refine = nn.Sequential(make_norm(norm, dim), conv(dim, dim, 3), make_act(act, dim), conv(dim, dim, 3))
        self.hourglass = SPARHourglass(dim, hg_depth, mid_ch=hg_mid, norm=norm, act=act, pad="reflect")
        self.to_map = nn.Conv2d(hg_mid, 1, 1)
        self.residual = residual

    def forward(self, f):
        h = f + self.refine(f)
        a = torch.sigmoid(self.to_map(self.hourglass(h)))
        return (h + h * a if self.residual else h * a), a


class RDFE(nn.Module):
    """Residual Depth Feature Extraction (Eqs. 6-10); returns ``(out, frm_map or None)``.

    ``kernels``: the parallel depthwise branches (``(3, 5, 7)``; Table IV single path: one).
    ``au``: ``"conv_sigmoid"`` (``sigmoid(Conv1x1(nD -> D))``, one D x H x W gate for all
    branches), ``"se"`` (SE channel attention on the concatenation, one chunk per branch)
    or ``"none"`` (Table IV "w/o AU")."""

    def __init__(self, dim: int, kernels: Sequence[int] = (3, 5, 7), au: str = "conv_sigmoid",
                 second_dw: bool = True, frm: bool = True, **frm_kwargs):
        super().__init__()
        n = len(kernels)
        self.dw1 = nn.ModuleList([conv(dim, dim, k, groups=dim) for k in kernels])
        self.au_kind = au
        if au == "conv_sigmoid":
            self.au = nn.Conv2d(n * dim, dim, 1)
        elif au == "se":
            self.au = ChannelAttention(n * dim, reduction=4)
        elif au == "none":
            self.au = None
        else:
            raise ValueError(f"unknown rdfe_au {au!r}")
        self.dw2 = nn.ModuleList([conv(dim, dim, k, groups=dim) for k in kernels]) if second_dw else None
        self.fuse = nn.Conv2d(n * dim, dim, 1)
        self.frm = FeatureRefinement(dim, **frm_kwargs) if frm else None

    def forward(self, x):
        fs = [dw(x) for dw in self.dw1]                                   # Eq. 6
        if self.au_kind == "conv_sigmoid":
            w = torch.sigmoid(self.au(torch.cat(fs, 1)))                  # Eq. 7
            fs = [f * w for f in fs]                                      # Eq. 8
        elif self.au_kind == "se":
            ws = self.au.weights(torch.cat(fs, 1)).chunk(len(fs), 1)
            fs = [f * w for f, w in zip(fs, ws)]
        if self.dw2 is not None:
            fs = [dw(f) for dw, f in zip(self.dw2, fs)]
        f2 = self.fuse(torch.cat(fs, 1)) + x                              # Eq. 9
        if self.frm is None:
            return f2, None
        return self.frm(f2)                                               # Eq. 10


class LGFI(nn.Module):
    """Local and Global Feature Interaction: ``x + SKAF(SA(LN(x)), RDFE(LN(x)))``.

    ``local``: ``"rdfe"`` | ``"ffn"`` (Table III) | ``None`` (Table I w/o RDFE);
    ``use_sa=False``: Table I w/o SA; ``use_fusion=False``: Table I w/o SKAF (``g + l``).
    With one branch removed, SKAF is dropped (spec: nothing to select) unless
    ``keep_fusion=True``, which feeds the missing branch's input ``LN(x)`` to SKAF instead
    (this reading reproduces Table I's parameter counts, see :class:`AMINet`).
    ``forward`` returns ``(out, info)`` with info ``{"sa", "rdfe", "skaf", "attn"}``."""

    def __init__(self, dim: int, heads: int, *, use_sa: bool = True, local: str | None = "rdfe",
                 fusion_kwargs: dict | None = None, use_fusion: bool = True, prenorm: bool = True,
                 outer_residual: bool = True, shared_norm: bool = True, attn_scale: str = "temperature",
                 attn_bias: bool = False, ffn_expansion: float = 2.66, rdfe_kwargs: dict | None = None,
                 keep_fusion: bool = False):
        super().__init__()
        if not use_sa and local is None:
            raise ValueError("LGFI needs at least one of SA and the local branch")
        norm = (lambda: LayerNorm2d(dim)) if prenorm else nn.Identity  # noqa: E731
        self.norm_g = norm() if use_sa else None
        self.norm_l = (self.norm_g if (shared_norm and use_sa) else norm()) if local else None
        self.sa = ChannelSelfAttention(dim, heads, bias=attn_bias, scale=attn_scale) if use_sa else None
        if local == "rdfe":
            self.local = RDFE(dim, **(rdfe_kwargs or {}))
        elif local == "ffn":
            self.local = GDFN(dim, ffn_expansion)
        elif local is None:
            self.local = None
        else:
            raise ValueError(f"unknown local branch {local!r}")
        both = use_sa and local is not None
        self.keep_fusion = keep_fusion and not both
        if self.keep_fusion:  # the missing branch is replaced by its (normalised) input
            if self.norm_g is None:
                self.norm_g = self.norm_l
            else:
                self.norm_l = self.norm_g
        self.fusion = (SelectiveKernelFusion(dim, **(fusion_kwargs or {}))
                       if ((both or self.keep_fusion) and use_fusion) else None)
        self.outer_residual = outer_residual

    def forward(self, x):
        info: dict = {}
        g = l = None
        if self.sa is not None:
            g = info["sa"] = self.sa(self.norm_g(x))
        if self.local is not None:
            out = self.local(self.norm_l(x))
            l, info["attn"] = out if isinstance(out, tuple) else (out, None)
            info["rdfe"] = l
        if self.keep_fusion:
            g = self.norm_g(x) if g is None else g
            l = self.norm_l(x) if l is None else l
        if g is not None and l is not None:
            y = self.fusion(g, l) if self.fusion is not None else g + l
            if self.fusion is not None:
                info["skaf"] = y
        else:
            y = g if l is None else l
        return (x + y if self.outer_residual else y), info


class RestormerBlock(nn.Module):
    """Restormer Transformer block (serial): ``x + MDTA(LN(x))`` then ``x + GDFN(LN(x))``
    (AMINet Table II baseline). Same ``(out, info)`` interface as :class:`LGFI`."""

    def __init__(self, dim: int, heads: int, ffn_expansion: float = 2.66, attn_scale: str = "temperature",
                 attn_bias: bool = False):
        super().__init__()
        self.norm1, self.norm2 = LayerNorm2d(dim), LayerNorm2d(dim)
        self.attn = ChannelSelfAttention(dim, heads, bias=attn_bias, scale=attn_scale)
        self.ffn = GDFN(dim, ffn_expansion)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x)), {}


class _ConcatFuse(nn.Module):
    """EDFF replaced by concat + 1x1 (an ablation of ours, not in the paper)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(2 * dim, dim, 1)

    def forward(self, a, b):
        return self.conv(torch.cat([a, b], 1))


class _AddFuse(nn.Module):
    def forward(self, a, b):
        return a + b


# ====================================================================== network
@MODELS.register("aminet")
class AMINet(FSRModel):
    """AMINet (x8 face SR on the bicubic-upsampled 128x128 input). See the module docstring
    for every paper-vs-code choice; keyword defaults are the paper configuration as read
    by the spec (C = 20)."""

    input_kind = "upsampled"
    slim = {"C": 4, "heads": (1, 1, 1, 1)}
    maps = ("features", "attention")

    def __init__(self, scale: int = 8, C: int = 20, heads: Sequence[int] = (1, 2, 4, 8),
                 enc_blocks: Sequence[int] = (1, 1, 1), mid_blocks: int = 2, dec_blocks: Sequence[int] = (1, 1, 1),
                 skip_source: str = "pre_down",
                 # LGFI / SA
                 lgfi_prenorm: bool = True, lgfi_outer_residual: bool = True, lgfi_shared_norm: bool = True,
                 attn_scale: str = "temperature", attn_bias: bool = False,
                 # RDFE / FRM
                 rdfe_second_dw: bool = True, rdfe_au: str = "conv_sigmoid", frm_norm: str = "bn",
                 frm_act: str = "leakyrelu", frm_hourglass_depth: int = 2, frm_hourglass_mid: int | str = "D",
                 frm_hourglass_residual: bool = False,
                 # SKAF / EDFF
                 skaf_depthwise: bool = False, skaf_squeeze_conv: bool = True, skaf_literal: bool = False,
                 skaf_hybrid: str = "concat1x1", skaf_scope: str = "lgfi", edff: str = "skaf",
                 # ablations (Tables I-V)
                 no_sa: bool = False, no_rdfe: bool = False, no_skaf: bool = False, ablation_keep_skaf: bool = False,
                 single_path_k: int | None = None, no_au: bool = False, no_frm: bool = False,
                 skaf_use5: bool = True, skaf_use7: bool = True, skaf_avg: bool = True, skaf_max: bool = True,
                 replace_lgfi_with_restormer: bool = False, replace_rdfe_with_ffn: bool = False,
                 ffn_expansion: float = 2.66,
                 # misc
                 zero_init_tail: bool = False, value_range: Sequence[float] = (-1.0, 1.0),
                 channels_last: bool = False):
        super().__init__(scale)
        if self.scale not in (4, 8, 16):
            raise ValueError(f"AMINet: scale {scale} not in (4, 8, 16) (topology is scale-free)")
        if len(heads) != 4 or len(enc_blocks) != 3 or len(dec_blocks) != 3:
            raise ValueError("AMINet has 3 encoder levels + a bottleneck: heads has 4 entries, "
                             "enc_blocks/dec_blocks 3")
        if skip_source not in ("pre_down", "post_down"):
            raise ValueError(f"unknown skip_source {skip_source!r}")
        if single_path_k not in (None, 3, 5, 7):
            raise ValueError(f"single_path_k must be None, 3, 5 or 7, got {single_path_k}")
        if no_sa and no_rdfe:
            raise ValueError("no_sa and no_rdfe together leave an empty LGFI")
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.skip_source = skip_source
        dims = [C, 2 * C, 4 * C, 8 * C]

        # ---------------- SKAF configuration (full one for EDFF unless skaf_scope="all")
        full_skaf = dict(kernels=(5, 7), pools=("avg", "max"),
                         squeeze="none" if (skaf_literal or not skaf_squeeze_conv) else "conv",
                         hybrid=skaf_hybrid, depthwise=skaf_depthwise)
        abl_pools = tuple(p for p, on in (("avg", skaf_avg), ("max", skaf_max)) if on)
        lgfi_skaf = dict(full_skaf, kernels=tuple(k for k, on in ((5, skaf_use5), (7, skaf_use7)) if on),
                         pools=abl_pools)
        if len(abl_pools) < 2 and lgfi_skaf["squeeze"] == "none":
            lgfi_skaf["squeeze"] = "conv"  # one pooled map cannot give two weights without a conv
        edff_skaf = lgfi_skaf if skaf_scope == "all" else full_skaf
        if skaf_scope not in ("lgfi", "all"):
            raise ValueError(f"unknown skaf_scope {skaf_scope!r}")

        rdfe_kwargs = dict(kernels=(single_path_k,) if single_path_k else (3, 5, 7),
                           au="none" if no_au else rdfe_au, second_dw=rdfe_second_dw, frm=not no_frm,
                           norm=frm_norm, act=frm_act, hg_depth=frm_hourglass_depth,
                           residual=frm_hourglass_residual)
        if no_frm:
            rdfe_kwargs = {k: rdfe_kwargs[k] for k in ("kernels", "au", "second_dw", "frm")}

        def block(level: int) -> nn.Module:
            d, h = dims[level], heads[level]
            if replace_lgfi_with_restormer:
                return RestormerBlock(d, h, ffn_expansion, attn_scale, attn_bias)
            rk = dict(rdfe_kwargs)
            if not no_frm:
                rk["hg_mid"] = d if frm_hourglass_mid in ("D", None) else int(frm_hourglass_mid)
            local = None if no_rdfe else ("ffn" if replace_rdfe_with_ffn else "rdfe")
            return LGFI(d, h, use_sa=not no_sa, local=local, fusion_kwargs=lgfi_skaf, use_fusion=not no_skaf,
                        prenorm=lgfi_prenorm, outer_residual=lgfi_outer_residual, shared_norm=lgfi_shared_norm,
                        attn_scale=attn_scale, attn_bias=attn_bias, ffn_expansion=ffn_expansion, rdfe_kwargs=rk,
                        keep_fusion=ablation_keep_skaf)

        def fuse(level: int) -> nn.Module:
            if edff == "skaf":
                return SelectiveKernelFusion(dims[level], **edff_skaf)
            if edff == "concat1x1":
                return _ConcatFuse(dims[level])
            if edff == "add":
                return _AddFuse()
            raise ValueError(f"unknown edff {edff!r}")

        self.stem = conv(3, C, 3)
        self.encoders = nn.ModuleList([nn.ModuleList([block(i) for _ in range(enc_blocks[i])]) for i in range(3)])
        self.downs = nn.ModuleList([nn.Conv2d(dims[i], dims[i + 1], 3, 2, 1) for i in range(3)])
        self.bottleneck = nn.ModuleList([block(3) for _ in range(mid_blocks)])
        # decoder modules indexed by level (2, 1, 0 in forward order)
        self.ups = nn.ModuleList([PixelShuffleUp(dims[i + 1], dims[i]) for i in range(3)])
        self.edffs = nn.ModuleList([fuse(i) for i in range(3)])
        self.decoders = nn.ModuleList([nn.ModuleList([block(i) for _ in range(dec_blocks[i])]) for i in range(3)])
        self.tail = conv(C, 3, 3)
        if zero_init_tail:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)
        # CPU speed only (same maths): oneDNN's depthwise/small-channel convolutions, and
        # above all their backward, are 1.3-2x faster in NHWC; weights and input are converted
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @staticmethod
    def _run(blocks: nn.ModuleList, x: torch.Tensor, attn: list, infos: list) -> torch.Tensor:
        for blk in blocks:
            x, info = blk(x)
            if info.get("attn") is not None:
                attn.append(info["attn"])
            infos.append(info)
        return x

    def _forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> dict:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"AMINet needs H, W divisible by 8, got {tuple(x.shape[-2:])}")
        attn: list = []
        infos: list = []
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        f = self.stem(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            e = self._run(enc, f, attn, infos)
            skips.append(e if self.skip_source == "pre_down" else f)
            f = down(e)
        f = self._run(self.bottleneck, f, attn, infos)
        for level in (2, 1, 0):
            f = self.edffs[level](skips[level], self.ups[level](f))
            f = self._run(self.decoders[level], f, attn, infos)
        sr = self.tail(f) + x
        last = infos[-1] if infos else {}
        feats = {k: last[k] for k in ("sa", "rdfe", "skaf") if last.get(k) is not None}
        return {"sr": sr, "features": feats, "attention": attn}


# ====================================================================== presets
MODELS.register_preset("aminet_s", "aminet", C=16)
# Table I
MODELS.register_preset("aminet_no_sa", "aminet", no_sa=True)
MODELS.register_preset("aminet_no_rdfe", "aminet", no_rdfe=True)
MODELS.register_preset("aminet_no_skaf", "aminet", no_skaf=True)
# Table I, alternative reading: SKAF kept, the missing branch replaced by identity (matches
# the paper's 12.3 M / 7.2 M; see the AMINet docstring)
MODELS.register_preset("aminet_no_sa_keep_skaf", "aminet", no_sa=True, ablation_keep_skaf=True)
MODELS.register_preset("aminet_no_rdfe_keep_skaf", "aminet", no_rdfe=True, ablation_keep_skaf=True)
# Table II / III (GDFN expansion 2.66 as Restormer; see the report for the params gap)
MODELS.register_preset("aminet_restormer", "aminet", replace_lgfi_with_restormer=True)
MODELS.register_preset("aminet_ffn", "aminet", replace_rdfe_with_ffn=True)
# ... and parameter-matched versions ("similar parameters" in the paper): Table II widens the
# Restormer network (C = 45: 11.29 M vs the paper's 11.32 M), Table III widens the FFN
# (expansion 24.5: 12.12 M vs 12.11 M)
MODELS.register_preset("aminet_restormer_matched", "aminet", replace_lgfi_with_restormer=True, C=45)
MODELS.register_preset("aminet_ffn_matched", "aminet", replace_rdfe_with_ffn=True, ffn_expansion=24.5)
# Table IV
MODELS.register_preset("aminet_single3", "aminet", single_path_k=3)
MODELS.register_preset("aminet_single5", "aminet", single_path_k=5)
MODELS.register_preset("aminet_single7", "aminet", single_path_k=7)
MODELS.register_preset("aminet_no_au", "aminet", no_au=True)
MODELS.register_preset("aminet_no_frm", "aminet", no_frm=True)
# Table V (rows 1-6; row 7 = aminet)
MODELS.register_preset("aminet_skaf_none", "aminet", skaf_use5=False, skaf_use7=False, skaf_avg=False,
                       skaf_max=False)
MODELS.register_preset("aminet_skaf_7_avgmax", "aminet", skaf_use5=False)
MODELS.register_preset("aminet_skaf_5_avgmax", "aminet", skaf_use7=False)
MODELS.register_preset("aminet_skaf_7_nopool", "aminet", skaf_use5=False, skaf_avg=False, skaf_max=False)
MODELS.register_preset("aminet_skaf_7_avg", "aminet", skaf_use5=False, skaf_max=False)
MODELS.register_preset("aminet_skaf_7_max", "aminet", skaf_use5=False, skaf_avg=False)
