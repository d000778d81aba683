"""SPARNet / SPARNetHD (Chen et al., "Learning Spatial Attention for Face Super-Resolution",
TIP 2020). Spec: ``specs/002_sparnet.md`` sections 2.1-2.6.

Input: the LR face **bicubic-upsampled** to ``in_size`` (128; 512 for HD), callers pass [0, 1];
internally [-1, 1] as in the released code (``value_range``). Output: ``out_size`` image from a
linear 3x3 conv (no tanh, no global skip, as the code). The architecture does not depend on
``scale``: x4, x8 and x16 all map 128 -> 128 (``scale`` is recorded only).

Face Attention Unit (FAU), spec 2.1-2.3::

    f = conv2(conv1(Act(Norm(x))))          # pre-activation residual branch [PAPER]
    a = sigmoid(Conv3x3(HG(f)))             # attention on f, not on x [PAPER eq. 3]
    y = shortcut(x) + a * f                 # shortcut: identity, or 3x3 conv when the
                                            # scale or width changes [CODE]

down FAU: conv2 has stride 2; up FAU: conv1 = nearest x2 + conv (same for the shortcut conv).
All convs use reflection padding and have a bias only without norm [CODE].

Paper vs code, and our defaults (``act`` etc. are constructor flags):
- ``act="prelu"`` (per-channel) [PAPER, default]; ``"leakyrelu"`` (0.2) is the released code's.
- ``norm="bn"`` [PAPER + CODE]; SPARNetHD uses affine InstanceNorm (``"in"``) [CODE].
- Stage layout, widths (``min_ch``/``max_ch``), ``res_depth``, in/out convs [CODE]: 3 down +
  10 body + 3 up = 16 FAUs at 128 px, widths 32-64-128-128-...-64-32.
- ``bottleneck_size`` M: each FAU's hourglass depth is ``log2(H_j / M)`` with H_j its feature
  size [PAPER SPARNet-SM]; M = 4 [PAPER]. Where H_j <= M the released code (depth 0) drops the
  attention; we use ``att_plain_convs`` plain CBA(64) convs + conv + sigmoid instead [GUESS].
- ``att_type``: ``"spar"`` 1-channel 2D map [PAPER]; ``"spar3d"`` C-channel map [CODE/README
  only]; ``"none"`` the paper's Baseline; ``"rcan"`` / ``"cbam"`` the comparison variants of
  Table I (RCAN channel attention / CBAM in place of the hourglass branch) [GUESS for details].
- ``n_att_from_back`` N: SPARNet-VN, only the last N FAUs have attention [PAPER]; None = all.
- Init N(0, 0.02) conv/linear weights, zero biases, BN gamma N(1, 0.02) [CODE]. With
  ``spectral_norm`` (HD) we initialise ``weight_orig``; the released code initialises after
  spectral norm, writing only the derived ``weight`` (a no-op: PyTorch's default init stays).

Parameters (measured, see tests): released config (``act="leakyrelu"``) 10.519 M; PReLU 10.53 M;
3D 11.56 M; Light 5.242 M; SPARNetHD G 85.79 M. The paper's Table III says 9.86 M.

Compute: 7.13 GMACs per 128x128 image (SPARNet), 6.88 (Light), 724 (SPARNetHD at 512).

Demo (CPU) configuration, same architecture, slim (7 FAUs, 24.5 K params):
``{"min_ch": 4, "max_ch": 8, "res_depth": 1, "att_ch": 4}``: one Adam step at batch 8
(128 px) ~0.22-0.25 s on 2 quiet Xeon cores. The 128-px FAU with its depth-5 hourglass sets
this floor (no attention: ~0.10 s); use batch 4 if a demo needs faster steps. HD demo:
``sparnethd`` with ``in_size=out_size=128, min_feat_size=8, bottleneck_size=4`` + the above.
"""
from __future__ import annotations

import math

import torch.nn as nn

from ..registry import MODELS
from .common import (
    CBAM,
    ChannelAttention,
    ConvLayer,
    FSRModel,
    SPARHourglass,
    apply_spectral_norm,
    init_normal_,
    make_act,
    make_norm,
)

ATT_TYPES = ("spar", "spar3d", "rcan", "cbam", "none")


def _log2_int(n: float, what: str) -> int:
    k = int(round(math.log2(n))) if n > 0 else -1
    if k < 0 or 2 ** k != n:
        raise ValueError(f"{what} must be a power of two, got {n}")
    return k


def _scale_conv(c_in: int, c_out: int, scale: str, norm: str = "none", act: str = "none") -> nn.Module:
    """SPARNet ConvLayer with a scale: ``down`` = stride 2, ``up`` = nearest x2 then conv."""
    layer = ConvLayer(c_in, c_out, 3, 2 if scale == "down" else 1, norm=norm, act=act, pad="reflect")
    if scale == "up":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), layer)
    return layer


# ====================================================================== attention branches
# Every branch maps the feature-branch output f to (attended f, map shown in forward_maps).
class HourglassAttention(SPARHourglass):
    """F_att: SPARNet hourglass (3x3, ``mid_ch`` = 64 filters) -> Conv3x3(-> c_att) -> sigmoid.
    ``c_att = 1``: the paper's 2D map; ``c_att = C``: the code's 3D map. ``depth = 0``: plain
    convs (no pooling), the spec's GUESS for M equal to the feature size."""

    def __init__(self, ch: int, depth: int, c_att: int = 1, mid_ch: int = 64, norm: str = "bn",
                 act: str = "prelu", n_plain: int = 2):
        super().__init__(ch, depth, mid_ch=mid_ch, norm=norm, act=act, pad="reflect", n_plain=n_plain)
        self.out_block = nn.Sequential(ConvLayer(mid_ch, c_att, 3, pad="reflect"), nn.Sigmoid())

    def forward(self, f):
        a = self.out_block(super().forward(f))
        return f * a, a


class RCANAttention(ChannelAttention):
    """RCAN channel attention (GAP -> 1x1 C/16 -> ReLU -> 1x1 -> sigmoid); map B x C x 1 x 1."""

    def __init__(self, ch: int, reduction: int = 16):
        super().__init__(ch, reduction, pools=("avg",))

    def forward(self, f):
        w = self.weights(f)
        return f * w, w


class CBAMAttention(CBAM):
    """CBAM (channel avg+max r=16, then 7x7 spatial); the map shown is the 1 x H x W spatial one."""

    def forward(self, f):
        x = self.ca(f)
        m = self.sa.map(x)
        return x * m, m


# ====================================================================== FAU
class FAU(nn.Module):
    """Face Attention Unit; ``scale`` in {"none", "down", "up"}; ``att`` in :data:`ATT_TYPES`."""

    def __init__(self, c_in: int, c_out: int, scale: str = "none", att: str = "spar", hg_depth: int = 2,
                 norm: str = "bn", act: str = "prelu", att_ch: int = 64, att_plain_convs: int = 2):
        super().__init__()
        if scale not in ("none", "down", "up"):
            raise ValueError(f"scale must be none/down/up, got {scale!r}")
        self.shortcut_func = (nn.Identity() if scale == "none" and c_in == c_out
                              else _scale_conv(c_in, c_out, scale))
        pre_act = make_act(act, c_in)
        if hasattr(pre_act, "inplace"):  # without a norm an in-place act would overwrite x
            pre_act.inplace = False
        self.preact_func = nn.Sequential(make_norm(norm, c_in), pre_act)
        self.conv1 = _scale_conv(c_in, c_out, "up" if scale == "up" else "none", norm, act)
        self.conv2 = _scale_conv(c_out, c_out, "down" if scale == "down" else "none", norm, "none")
        if att == "spar":
            self.att_func = HourglassAttention(c_out, hg_depth, 1, att_ch, norm, act, att_plain_convs)
        elif att == "spar3d":
            self.att_func = HourglassAttention(c_out, hg_depth, c_out, att_ch, norm, act, att_plain_convs)
        elif att == "rcan":
            self.att_func = RCANAttention(c_out)
        elif att == "cbam":
            self.att_func = CBAMAttention(c_out)
        elif att == "none":
            self.att_func = None
        else:
            raise ValueError(f"unknown attention type {att!r}; known {ATT_TYPES}")

    def forward(self, x):
        """Returns ``(y, attention map or None)``."""
        identity = self.shortcut_func(x)
        f = self.conv2(self.conv1(self.preact_func(x)))
        a = None
        if self.att_func is not None:
            f, a = self.att_func(f)
        return identity + f, a


# ====================================================================== network
@MODELS.register("sparnet")
class SPARNet(FSRModel):
    """SPARNet (default: SPARNet-V16-S4 of the paper, PReLU) and its variants; see module doc.

    Presets: ``sparnet_light`` (res_depth 1, 3D attention, released), ``sparnet_baseline``
    (no attention), ``sparnet_rcan`` / ``sparnet_cbam`` (Table I variants), ``sparnethd``
    (512 px generator: min_feat 32, max_ch 512, IN, spectral norm, 17 FAUs, HG bottleneck 16).
    """

    input_kind = "upsampled"
    slim = {"min_ch": 4, "max_ch": 8, "res_depth": 2, "att_ch": 4}  # 8 FAUs: room for every SPARNet-VN preset
    value_range = (-1.0, 1.0)

    def __init__(self, scale: int = 8, min_ch: int = 32, max_ch: int = 128, in_size: int = 128,
                 out_size: int = 128, min_feat_size: int = 16, res_depth: int = 10, act: str = "prelu",
                 norm: str = "bn", att_type: str = "spar", bottleneck_size: int = 4,
                 n_att_from_back: int | None = None, att_ch: int = 64, att_plain_convs: int = 2,
                 spectral_norm: bool = False, init_std: float = 0.02, global_residual: bool = False):
        super().__init__(scale)
        self.global_residual = bool(global_residual)  # + the upsampled input (not in the paper or code; demo)
        if att_type not in ATT_TYPES:
            raise ValueError(f"unknown att_type {att_type!r}; known {ATT_TYPES}")
        self.in_size, self.hr_size = int(in_size), int(out_size)
        down_steps = _log2_int(in_size / min_feat_size, "in_size / min_feat_size")
        up_steps = _log2_int(out_size / min_feat_size, "out_size / min_feat_size")
        n_body = res_depth + 3 - down_steps  # [CODE]: body FAUs = res_depth + 3 - down_steps
        if n_body < 0:
            raise ValueError(f"res_depth={res_depth} too small for {down_steps} down steps")
        n_faus = down_steps + n_body + up_steps
        n_att = n_faus if n_att_from_back is None else int(n_att_from_back)
        if not 0 <= n_att <= n_faus:
            raise ValueError(f"n_att_from_back must be in [0, {n_faus}], got {n_att_from_back}")
        first_att = n_faus - n_att  # 0-based index of the first FAU with attention

        clip = lambda c: max(min_ch, min(c, max_ch))  # noqa: E731
        counter = iter(range(n_faus))

        def fau(c_in, c_out, scale_, feat):
            j = next(counter)
            att = att_type if j >= first_att else "none"
            depth = 0
            if feat > bottleneck_size:
                depth = _log2_int(feat / bottleneck_size, "feature size / bottleneck_size")
            return FAU(c_in, c_out, scale_, att, depth, norm, act, att_ch, att_plain_convs)

        n_ch = clip(max_ch // (down_steps + 1))  # unclipped running width, as in [CODE]
        self.head = ConvLayer(3, n_ch, 3, pad="reflect")
        enc, feat = [], in_size
        for _ in range(down_steps):
            feat //= 2
            enc.append(fau(clip(n_ch), clip(2 * n_ch), "down", feat))
            n_ch *= 2
        self.encoder = nn.ModuleList(enc)
        self.res_layers = nn.ModuleList([fau(clip(n_ch), clip(n_ch), "none", feat) for _ in range(n_body)])
        dec = []
        for _ in range(up_steps):
            feat *= 2
            dec.append(fau(clip(n_ch), clip(n_ch // 2), "up", feat))
            n_ch //= 2
        self.decoder = nn.ModuleList(dec)
        self.out_conv = ConvLayer(clip(n_ch), 3, 3, pad="reflect")
        self.n_faus = n_faus
        self.maps = ("attention", "attention_fau") if n_att and att_type != "none" else ()

        init_normal_(self, init_std)
        if spectral_norm:
            apply_spectral_norm(self)

    def expected_input_size(self) -> int:
        return self.in_size

    @property
    def faus(self) -> list[FAU]:
        return [*self.encoder, *self.res_layers, *self.decoder]

    def _forward(self, x, prior=None):
        h = self.head(x)
        maps, idx = [], []
        for j, unit in enumerate(self.faus, 1):
            h, a = unit(h)
            if a is not None:
                maps.append(a)
                idx.append(j)
        out = {"sr": self.out_conv(h)}
        if self.maps:  # "attention": maps in FAU order; "attention_fau": their 1-based FAU numbers (paper's #j)
            out.update(attention=maps, attention_fau=idx)
        return out


# Named variants: the released SPARNet-Light, and the paper's ablations (Table I rows, Figs. 5 and
# 7: SPARNet-VN = attention in the last N FAUs only, SPARNet-SM = hourglass bottleneck M). A run
# trains one with ``overrides: {model: {type: <preset>}}``; ``fsr check`` refuses the same
# variant spelled as raw overrides (one way to express an ablation).
MODELS.register_preset("sparnet_light", "sparnet", res_depth=1, att_type="spar3d")
for _n in (1, 2, 4, 8):
    MODELS.register_preset(f"sparnet_v{_n}", "sparnet", n_att_from_back=_n)
for _m in (2, 8, 16):
    MODELS.register_preset(f"sparnet_s{_m}", "sparnet", bottleneck_size=_m)
MODELS.register_preset("sparnet_baseline", "sparnet", att_type="none")
MODELS.register_preset("sparnet_rcan", "sparnet", att_type="rcan")
MODELS.register_preset("sparnet_cbam", "sparnet", att_type="cbam")
MODELS.register_preset("sparnethd", "sparnet", in_size=512, out_size=512, min_feat_size=32, max_ch=512,
                       norm="in", spectral_norm=True, bottleneck_size=16)
