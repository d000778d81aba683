"""FishFSRNet (Wang, Jiang, Zhong, Zhai, Liu; T-BIOM 2023), step 2 of the two-step
parsing-guided face SR pipeline. Step 1 is :mod:`fsrlib.models.parsingnet`.

Spec: ``specs/001_fishfsrnet.md`` §2.2-2.8 (Eqs. 3-23). Tags: [PAPER], [CODE] (official
repo ``wcy-cs/FishFSRNet``, read as a reference only), [GUESS].

Input / output conventions
--------------------------
- ``input_kind = "lr"``: the **raw** LR face, RGB in [0, 1]: 32x32 (x4), 16x16 (x8) or 8x8
  (x16) for a 128x128 HR (the paper's "64/32/16" LR sizes are a typo, §2.0).
- ``prior`` (``needs_prior = True``): the parsing map P **at LR size**, ``Cp x h x w``
  (``parsing_channels`` Cp = 3 by default; a 1-channel map is repeated to Cp). In the
  pipeline it is ParsingNet's estimate. It is **clamped to [0, 1] inside forward**, as the
  official code's PNG round trip does (``prior_quantize=True`` also rounds it to 1/255 steps
  for exact parity). Inside, P is nearest-upsampled to every stage's resolution.
- Output: SR 3x128x128 in [0, 1] (no output activation, no global skip: [CODE]).
  ``forward_maps`` returns ``{"sr", "prior"}`` ("prior" = the clamped P the net used; absent
  for the variants that do not read P).

Architecture (s = 2^n, C = ``n_feats`` = 64 [CODE]; paper Eqs. 3-20, Fig. 2)::

    F0 = Conv3x3(3->C)(I_LR)
    head  (n times): F_i = Up(x)           [preserved]  -> 2 x PAFB(., P at this size)
    body  (n times): x = MSRB(x; head F's) -> Down      [preserved] -> 2 x PAFB
    tail  (n times): x = MSRB(x; body F's) -> Up        -> 2 x PAFB
    I_SR = Conv3x3(C->3)(x)

- Up = Conv3x3(C->4C) -> PixelShuffle(2); Down = PixelUnshuffle(2) -> Conv3x3(4C->C)
  (common.PixelShuffleUp / PixelUnshuffleDown, no norm, no act). The paper says
  "conv + inverse pixelshuffle" for Down; the code's order (unshuffle first) is used: the
  paper does not fix the order and only the code's order keeps the conv at 4C->C.
  The paper's Eqs. 17-19 print f_Down in the tail: a typo, Up is used (text, Fig. 2, code).
- PAFB (§2.4): residual block ``F + W_o * [F_P || F_A]`` with an attention branch
  ``F_A = W_a * [SA(G) || CA(G)]``, ``G = conv(ReLU(conv(F)))`` (SA = CSAR spatial gate, full
  C x H x W sigmoid mask, expansion 2; CA = common.ChannelAttention with avg/max/var pools,
  reduction 4 = the code's ChannelGate) and a parsing branch
  ``F_P = W_p * [ReLU(W_f * F) || ReLU(W_q * NN(P))]``. Kernel sizes, SA/CA designs and the
  residual are [CODE]; the paper only names the branches.
- MSRB (§2.5): ``F + CA(Conv1x1([R(F, F_1) || ... || R(F, F_n)]))`` with refine blocks
  ``R(F, F_k) = F + f_P(F - rho_k(F_k))``; rho_k = nearest up-sampling for a coarser F_k,
  identity, or m stride-2 3x3 convs (ReLU between) for an F_k 2^m times finer (m = 3 only
  at x16: [GUESS] generalisation). The 1x1 reduction is [CODE].

Paper-vs-code choices (default = paper where they disagree)
-----------------------------------------------------------
- ``code_parity=False`` (default, paper): two distinct PAFBs after every Up/Down and no extra
  conv. ``code_parity=True`` reproduces the released files: at x8 an extra Conv3x3(C->C)
  after the first tail MSRB, the last tail stage applying its first PAFB twice (its second
  PAFB and the three 1x1 ``conv_tail`` convs are instantiated but never used); at x16 the
  last *two* tail stages apply their first PAFB twice; at x4 and x16 the MSRB attention is
  the code's heavier ``ca_block``. Unused modules get no gradient.
- ``refine_proj``: ``"two_resblock"`` (default, [CODE]: two ResBlocks, 4 convs) or
  ``"two_conv"`` (paper literal "two convolution layers": Conv-ReLU-Conv). The brief and the
  spec keep the code's choice as the default here because the paper's wording is loose and
  the only param counts we can check (§2.7) use it.
- ``msrb_attention``: ``"gate"`` (the x8 code's ChannelGate; default at every scale for
  consistency, spec [GUESS]) or ``"ca_block"`` (x4/x16 code: Conv1x1-ReLU-[1/3/5/7 split
  convs]-ChannelGate + skip). ``None`` = gate, or the released file's choice under
  ``code_parity``.
- Refine-projection resizers, the MSRB reduction conv and the PAFB residual are [CODE].

Ablations (paper Table III, x8 CelebA; §2.8)
--------------------------------------------
``pafb`` in {"full", "attention_only", "parsing_only", "sa_parsing", "ca_parsing",
"resblock"} and ``msrb`` in {"msrb", "concat"}; the presets ``fishfsrnet_model1`` ... ``_model8``:

======  ===============  =======  ======================================
Model   pafb             msrb     Table III row
======  ===============  =======  ======================================
1       resblock         concat   no PAFB, no MSRB (27.21 dB)
2       resblock         msrb     MSRB only (27.44)
3       attention_only   concat   AB (SA + CA) only (27.31)
4       parsing_only     concat   PMB only (27.30)
5       sa_parsing       concat   SA + PMB (27.35)
6       ca_parsing       concat   CA + PMB (27.41)
7       full             concat   full PAFB, no MSRB (27.44)
8       full             msrb     final model (27.54)
======  ===============  =======  ======================================

- "resblock": ResBlock(Conv-ReLU-Conv, res_scale 0.2) + skip ([CODE] 3dd2836).
- "concat": cat(x, the preserved feature of the same resolution) -> Conv1x1(2C->C), no skip
  ([CODE] 3dd2836: body ``channelReduction`` (undefined in the repo, and one module shared by
  the three body steps there; here one 1x1 conv each), tail ``conv_tail1..3``).
- Models 3/4 keep the block residual; 5/6 drop the attention-fusion conv (the single
  attention output is F_A) [GUESS, spec §2.8].
- ``no_parsing=True`` (Fig. 14 "without the parsing map, similar parameters"): the parsing
  conv Cp->C becomes a second conv C->C on F [GUESS]; the model then needs no prior.

Parameter counts (C = 64, Cp = 3; tested in ``tests/test_models_fishfsrnet.py``):
x8 paper 8,361,987; x8 code_parity 8,423,683 (8,177,331 used); x4 paper 4,845,507,
x4 code_parity 4,948,419 (= official); x16 paper 12,707,267, x16 code_parity 12,913,091
(12,469,923 used). The released x16 file's 20,295,363 (facts.md's 20.30 M) = our
x16 code_parity count + 7,375,360 for its tail Up convs built on 128/192/256/320 channels
instead of 64 + 6,912 for its 320-channel reconstruction conv: the width bugs that make
that file fail in forward (spec §2.6), which we do not reproduce.

MACs per image (meta-device FlopCounter, conv + matmul): x4 30.41 G (code_parity 31.06 G),
x8 36.27 G (36.28 G), x16 41.14 G (41.84 G).

Demo (CPU) configuration (params.yaml ``methods.fishfsrnet.model``): ``{"n_feats": 8}`` (137 K params at
x8). One Adam step at batch 8 on 2 cores: ~0.57 s (x4), ~0.60-0.72 s (x8), ~0.86 s (x16)
on a lightly loaded box where the VDSR demo took ~0.07 s. The ~0.3 s target is not
reachable at batch 8 at any width: the cost floor is the many small ops at 128^2 (the
head/tail PAFB pairs and the first body MSRB run at HR size), and n_feats 4 or
``refine_proj="two_conv"`` save little (0.48-0.56 s). Use batch 4 for ~0.3 s steps;
``channels_last`` tensors speed the small-width convs up by ~25 %.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS
from .common import ChannelAttention, FSRModel, PixelShuffleUp, PixelUnshuffleDown, ResBlock, conv

PAFB_MODES = ("full", "attention_only", "parsing_only", "sa_parsing", "ca_parsing", "resblock")
MSRB_MODES = ("msrb", "concat")


def channel_gate(ch: int) -> ChannelAttention:
    """The code's ``cbam.ChannelGate(ch, 4, ['avg', 'max', 'var'])``."""
    return ChannelAttention(ch, reduction=4, pools=("avg", "max", "var"))


class CSARSpatialGate(nn.Module):
    """CSAR-style spatial attention (CSFM): ``x * sigmoid(V2 * ReLU(V1 * x))`` with 1x1 convs
    C -> gamma*C -> C, i.e. a full C x H x W mask (not CBAM's 1-channel map)."""

    def __init__(self, ch: int, gamma: int = 2):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, gamma * ch, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(gamma * ch, ch, 1))

    def forward(self, x):
        return x * torch.sigmoid(self.body(x))


class PAFB(nn.Module):
    """Parsing-map Attention Fusion Block (spec §2.4) and its Table III ablations.

    ``forward(x, p)``: ``x`` B x C x H x W, ``p`` the parsing map already at H x W.
    ``use_parsing=False`` is the Fig. 14 variant (second conv on F instead of on P).
    """

    def __init__(self, ch: int, p_ch: int = 3, mode: str = "full", use_parsing: bool = True,
                 resblock_scale: float = 0.2):
        super().__init__()
        if mode not in PAFB_MODES:
            raise ValueError(f"pafb mode must be one of {PAFB_MODES}, got {mode!r}")
        self.mode, self.use_parsing = mode, use_parsing
        if mode == "resblock":
            self.res = ResBlock(ch, act="relu", res_scale=resblock_scale)
            return
        self.has_att = mode != "parsing_only"
        self.has_par = mode != "attention_only"
        if self.has_att:
            self.body = nn.Sequential(conv(ch, ch, 3), nn.ReLU(inplace=True), conv(ch, ch, 3))
            self.sa = CSARSpatialGate(ch) if mode in ("full", "attention_only", "sa_parsing") else None
            self.ca = channel_gate(ch) if mode in ("full", "attention_only", "ca_parsing") else None
            self.att_fuse = conv(2 * ch, ch, 1) if (self.sa is not None and self.ca is not None) else None
        if self.has_par:
            self.conv_feature = nn.Sequential(conv(ch, ch, 3), nn.ReLU(inplace=True))
            self.conv_parsing = nn.Sequential(conv(p_ch if use_parsing else ch, ch, 3), nn.ReLU(inplace=True))
            self.par_fuse = conv(2 * ch, ch, 3)
        self.out_fuse = conv(2 * ch, ch, 1) if (self.has_att and self.has_par) else None

    @property
    def reads_prior(self) -> bool:
        return self.mode not in ("resblock", "attention_only") and self.use_parsing

    def forward(self, x: torch.Tensor, p: torch.Tensor | None = None) -> torch.Tensor:
        if self.mode == "resblock":
            return self.res(x)
        outs = []
        if self.has_par:  # parsing-map branch F_P
            q = self.conv_parsing(p if self.use_parsing else x)
            outs.append(self.par_fuse(torch.cat([self.conv_feature(x), q], 1)))
        if self.has_att:  # attention branch F_A
            g = self.body(x)
            a = [m(g) for m in (self.sa, self.ca) if m is not None]
            outs.append(self.att_fuse(torch.cat(a, 1)) if self.att_fuse is not None else a[0])
        res = self.out_fuse(torch.cat(outs, 1)) if self.out_fuse is not None else outs[0]
        return x + res


class MultiKernelCA(nn.Module):
    """The x4/x16 code's MSRB "CA" block: Conv1x1 -> ReLU -> split into 4 channel groups
    convolved with 1x1/3x3/5x5/7x7 -> ChannelGate -> + input (``msrb_attention="ca_block"``)."""

    def __init__(self, ch: int):
        super().__init__()
        if ch % 4:
            raise ValueError(f"ca_block needs n_feats divisible by 4, got {ch}")
        self.inp = nn.Sequential(nn.Conv2d(ch, ch, 1), nn.ReLU(inplace=True))
        self.branches = nn.ModuleList([conv(ch // 4, ch // 4, k) for k in (1, 3, 5, 7)])
        self.gate = channel_gate(ch)

    def forward(self, x):
        parts = self.inp(x).chunk(4, dim=1)
        y = torch.cat([b(t) for b, t in zip(self.branches, parts)], 1)
        return x + self.gate(y)


class RefineBlock(nn.Module):
    """Back-projection-style refine block, Eqs. 22-23: ``F + f_P(F - F_kc)``."""

    def __init__(self, ch: int, proj: str = "two_resblock"):
        super().__init__()
        if proj == "two_resblock":
            self.proj = nn.Sequential(ResBlock(ch, act="relu"), ResBlock(ch, act="relu"))
        elif proj == "two_conv":
            self.proj = nn.Sequential(conv(ch, ch, 3), nn.ReLU(inplace=True), conv(ch, ch, 3))
        else:
            raise ValueError(f"refine_proj must be 'two_resblock' or 'two_conv', got {proj!r}")

    def forward(self, cur, prev):
        return cur + self.proj(cur - prev)


def msrb_resizer(ch: int, rel: int) -> nn.Module:
    """rho_k for a previous feature ``2**rel`` times finer (rel > 0: rel stride-2 convs with
    ReLUs between), of the same size (identity) or coarser (nearest x 2**-rel)."""
    if rel < 0:
        return nn.Upsample(scale_factor=2 ** (-rel), mode="nearest")
    if rel == 0:
        return nn.Identity()
    layers: list[nn.Module] = []
    for i in range(rel):
        if i:
            layers.append(nn.ReLU(inplace=True))
        layers.append(conv(ch, ch, 3, stride=2))
    return nn.Sequential(*layers)


class MSRB(nn.Module):
    """Multi-Scale Refine Block (spec §2.5). ``rel_levels[k]`` = log2(size of previous
    feature k / size of the current feature). ``forward(x, prevs)``."""

    def __init__(self, ch: int, rel_levels: Sequence[int], attention: str = "gate",
                 refine_proj: str = "two_resblock"):
        super().__init__()
        self.resize = nn.ModuleList([msrb_resizer(ch, r) for r in rel_levels])
        self.refine = nn.ModuleList([RefineBlock(ch, refine_proj) for _ in rel_levels])
        self.reduce = nn.Conv2d(len(rel_levels) * ch, ch, 1)
        if attention == "gate":
            self.attention = channel_gate(ch)
        elif attention == "ca_block":
            self.attention = MultiKernelCA(ch)
        else:
            raise ValueError(f"msrb_attention must be 'gate' or 'ca_block', got {attention!r}")

    def forward(self, x, prevs):
        feats = [ref(x, rs(p)) for rs, ref, p in zip(self.resize, self.refine, prevs)]
        return x + self.attention(self.reduce(torch.cat(feats, 1)))


class ConcatFuse(nn.Module):
    """Ablation stand-in for the MSRB (Models 1, 3-7): ``Conv1x1([x || prevs[index]])``."""

    def __init__(self, ch: int, index: int):
        super().__init__()
        self.index = index
        self.reduce = nn.Conv2d(2 * ch, ch, 1)

    def forward(self, x, prevs):
        return self.reduce(torch.cat([x, prevs[self.index]], 1))


class PAFBPair(nn.ModuleList):
    """The two cascaded PAFBs after every Up/Down (``f_PAFBs``). ``shared=True`` is the
    official x8/x16 bug (the first block applied twice, the second unused)."""

    def __init__(self, blocks, shared: bool = False):
        super().__init__(blocks)
        self.shared = shared

    def forward(self, x, p):
        seq = [self[0]] * len(self) if self.shared else list(self)
        for blk in seq:
            x = blk(x, p)
        return x


@MODELS.register("fishfsrnet")
class FishFSRNet(FSRModel):
    """FishFSRNet for x4 / x8 / x16 (any power of two >= 2). See the module docstring.

    Args:
        scale: 4, 8 or 16 (LR 32/16/8 -> 128).
        n_feats: feature width C (64 in the code; the paper gives none).
        parsing_channels: Cp of the prior (3 [CODE], or 1).
        pafb: PAFB variant (Table III), ``"full"`` by default.
        msrb: ``"msrb"`` (default) or ``"concat"`` (Table III).
        refine_proj: ``"two_resblock"`` (code, default) or ``"two_conv"`` (paper literal).
        msrb_attention: ``"gate"`` | ``"ca_block"`` | None (gate, or the code's per-scale
            choice under ``code_parity``).
        no_parsing: Fig. 14 variant without the parsing map.
        code_parity: reproduce the released files' quirks (x4/x8/x16 only).
        prior_quantize: round the clamped prior to 1/255 steps (PNG parity).
        global_residual: add bicubic(LR) to the output (not in the paper or code; off by
            default, the CPU demo turns it on: see ``FSRModel.global_residual``).
    """

    input_kind = "lr"
    slim = {"n_feats": 4, "refine_proj": "two_conv"}
    needs_prior = True

    def __init__(self, scale: int = 8, n_feats: int = 64, parsing_channels: int = 3,
                 pafb: str = "full", msrb: str = "msrb", refine_proj: str = "two_resblock",
                 msrb_attention: str | None = None, no_parsing: bool = False,
                 code_parity: bool = False, prior_quantize: bool = False, global_residual: bool = False):
        super().__init__(scale)
        self.global_residual = bool(global_residual)
        n = int(round(math.log2(scale)))
        if scale < 2 or 2 ** n != scale:
            raise ValueError(f"FishFSRNet needs a power-of-two scale >= 2, got {scale}")
        if msrb not in MSRB_MODES:
            raise ValueError(f"msrb must be one of {MSRB_MODES}, got {msrb!r}")
        if code_parity and scale not in (4, 8, 16):
            raise ValueError("code_parity exists only for the released x4/x8/x16 files")
        if parsing_channels not in (1, 3):
            raise ValueError(f"parsing_channels must be 1 or 3, got {parsing_channels}")
        if msrb_attention is None:
            msrb_attention = "ca_block" if (code_parity and scale in (4, 16)) else "gate"
        C, self.n_levels = n_feats, n
        self.parsing_channels, self.prior_quantize, self.code_parity = parsing_channels, prior_quantize, code_parity
        # code_parity: which tail stages apply their first PAFB twice (x8: last; x16: last two)
        shared = {8: {n - 1}, 16: {n - 2, n - 1}}.get(scale, set()) if (code_parity and pafb != "resblock") else set()

        def pair(shared_stage=False):
            return PAFBPair([PAFB(C, parsing_channels, pafb, use_parsing=not no_parsing) for _ in range(2)],
                            shared=shared_stage)

        def fusion(rel_levels, same_index):
            if msrb == "msrb":
                return MSRB(C, rel_levels, msrb_attention, refine_proj)
            return ConcatFuse(C, same_index)

        self.fe = conv(3, C, 3)
        # head: Up i brings level i -> i+1 (level = log2(size / LR size)); F_{i+1} preserved
        self.head_up = nn.ModuleList([PixelShuffleUp(C, C) for _ in range(n)])
        self.head_pafb = nn.ModuleList([pair() for _ in range(n)])
        # body: step j runs at level n-j; previous features = head F's at levels 1..n
        self.body_fuse = nn.ModuleList(
            [fusion([(i + 1) - (n - j) for i in range(n)], same_index=n - j - 1) for j in range(n)])
        self.body_down = nn.ModuleList([PixelUnshuffleDown(C, C) for _ in range(n)])
        self.body_pafb = nn.ModuleList([pair() for _ in range(n)])
        # tail: step k runs at level k; previous features = body F's at levels n-1..0
        self.tail_fuse = nn.ModuleList(
            [fusion([(n - 1 - i) - k for i in range(n)], same_index=n - 1 - k) for k in range(n)])
        self.tail_extra = conv(C, C, 3) if (code_parity and scale == 8) else None
        self.tail_up = nn.ModuleList([PixelShuffleUp(C, C) for _ in range(n)])
        self.tail_pafb = nn.ModuleList([pair(k in shared) for k in range(n)])
        self.rec = conv(C, 3, 3)
        if code_parity and scale == 8 and msrb == "msrb":
            # the x8 file's conv_tail1..3 (remnants of the concat variant): built, never called
            self.unused_conv_tail = nn.ModuleList([nn.Conv2d(2 * C, C, 1) for _ in range(3)])
        self.needs_prior = any(b.reads_prior for b in self.head_pafb[0])
        self.maps = ("prior",) if self.needs_prior else ()

    # ------------------------------------------------------------------ prior
    def _prepare_prior(self, prior: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
        if not self.needs_prior:
            return None
        if prior.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"prior must be at the LR input's size {tuple(x.shape[-2:])}, "
                             f"got {tuple(prior.shape[-2:])}")
        if prior.shape[1] != self.parsing_channels:
            if prior.shape[1] != 1:
                raise ValueError(f"prior has {prior.shape[1]} channels, expected {self.parsing_channels} or 1")
            prior = prior.expand(-1, self.parsing_channels, -1, -1)
        prior = prior.to(x.dtype).clamp(0.0, 1.0)
        if self.prior_quantize:
            prior = torch.round(prior * 255.0) / 255.0
        return prior

    # ------------------------------------------------------------------ forward
    def _forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> dict:
        n = self.n_levels
        p = self._prepare_prior(prior, x)
        ps = [None if p is None else (p if lvl == 0 else F.interpolate(p, scale_factor=2 ** lvl, mode="nearest"))
              for lvl in range(n + 1)]
        x = self.fe(x)
        head = []
        for i in range(n):  # Eqs. 4-8
            x = self.head_up[i](x)
            head.append(x)
            x = self.head_pafb[i](x, ps[i + 1])
        body = []
        for j in range(n):  # Eqs. 9-15
            x = self.body_down[j](self.body_fuse[j](x, head))
            body.append(x)
            x = self.body_pafb[j](x, ps[n - j - 1])
        for k in range(n):  # Eqs. 16-19 (f_Up, not the printed f_Down)
            x = self.tail_fuse[k](x, body)
            if k == 0 and self.tail_extra is not None:
                x = self.tail_extra(x)
            x = self.tail_pafb[k](self.tail_up[k](x), ps[k + 1])
        out = {"sr": self.rec(x)}  # Eq. 20
        if p is not None:
            out["prior"] = p
        return out


# Table III ablation models (x8, CelebA) and the Fig. 14 no-parsing model.
for _i, (_pafb, _msrb) in enumerate(
        [("resblock", "concat"), ("resblock", "msrb"), ("attention_only", "concat"),
         ("parsing_only", "concat"), ("sa_parsing", "concat"), ("ca_parsing", "concat"),
         ("full", "concat"), ("full", "msrb")], start=1):
    MODELS.register_preset(f"fishfsrnet_model{_i}", "fishfsrnet", pafb=_pafb, msrb=_msrb)
MODELS.register_preset("fishfsrnet_noparsing", "fishfsrnet", no_parsing=True)
