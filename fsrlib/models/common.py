"""Shared layers of the model zoo, and the :class:`FSRModel` base class.

Every layer that two or more model files need lives here, once. Model files import from
this module and never from each other (except ``fishfsrnet`` using ``parsingnet``'s
output convention, which it does through the trainer, not by import).

Conventions (all models):
- Images outside a model are float tensors in **[0, 1]**, RGB, NCHW. A model whose paper
  or official code works in [-1, 1] declares ``value_range = (-1, 1)``; the base class maps
  input and image outputs, so callers never see the difference.
- ``input_kind``: ``"lr"`` (raw LR, e.g. 16x16 at x8) or ``"upsampled"`` (the LR bicubic-
  upsampled back to HR size, MATLAB ``imresize`` semantics, made by the degrade stage).
- ``forward(x, prior=None)`` returns the SR tensor. ``forward_maps(x, prior=None)`` returns
  a dict with ``"sr"`` and the intermediate maps the notebooks show. The trainer uses
  ``forward_maps`` for auxiliary losses.
- Capabilities: a model **declares** what it produces, ``outputs_sr`` (False for a prior
  estimator such as ParsingNet) and ``maps`` (the keys of ``forward_maps`` besides ``"sr"``,
  from the vocabulary :data:`MAP_KINDS`). The report (attention and parsing figures), the
  downstream stage (through the evaluate stage's record) and the zoo's contract test read the
  declaration; nothing looks at a model's name.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

IMAGE_KEYS = ("sr", "coarse")

#: what a model may declare in :attr:`FSRModel.maps` (the keys of ``forward_maps`` besides ``sr``)
MAP_KINDS: dict[str, str] = {
    "attention": "list of spatial attention maps in [0, 1], one per attention stage (B x C x h x w each)",
    "attention_fau": "the 1-based stage numbers of those maps (SPARNet's FAU #j), with `attention`",
    "parsing": "the model's predicted parsing map(s), C x h x w (ParsingNet, W-Net, PGNet)",
    "prior": "the parsing prior the model used, C x h x w (FishFSRNet)",
    "coarse": "a coarse SR image, 3 x H x W in [0, 1] (PGNet)",
    "features": "a dict of named intermediate feature maps (AMINet's heat maps)",
}


# ====================================================================== base class
class FSRModel(nn.Module):
    """Base class: range handling and the ``forward`` / ``forward_maps`` protocol.

    Subclasses implement ``_forward(x, prior) -> dict`` with ``x`` already in
    ``value_range`` and return at least ``{"sr": tensor}`` in ``value_range``.
    """

    input_kind: str = "lr"  # "lr" | "upsampled"
    value_range: tuple[float, float] = (0.0, 1.0)
    needs_prior: bool = False  # True: forward needs a parsing prior (FishFSRNet)
    outputs_sr: bool = True    # False: a prior estimator (ParsingNet) whose output is a map
    #: capabilities: the keys of ``forward_maps`` besides ``sr`` (see :data:`MAP_KINDS`); declare
    #: on the class, or per instance when the constructor's arguments decide (SPARNet without
    #: attention declares none)
    maps: tuple[str, ...] = ()
    #: scales the constructor accepts (the zoo's contract test builds every one)
    scales: tuple[int, ...] = (4, 8, 16)
    #: constructor arguments of a slim instance (the contract test and the README's toy method)
    slim: dict = {}
    hr_size: int = 128
    #: add the bicubic-upsampled input to ``sr`` (in [0, 1]); a model that offers it takes a
    #: ``global_residual`` argument (off by default: none of the papers has it; the CPU demo
    #: turns it on for models that start far below bicubic on a short schedule).
    global_residual: bool = False

    def __init__(self, scale: int = 8):
        super().__init__()
        self.scale = int(scale)

    # range mapping ----------------------------------------------------------
    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.value_range
        return x if (lo, hi) == (0.0, 1.0) else x * (hi - lo) + lo

    def _from_model(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.value_range
        return x if (lo, hi) == (0.0, 1.0) else (x - lo) / (hi - lo)

    def _forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> dict:
        raise NotImplementedError

    def forward_maps(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> dict:
        if self.needs_prior and prior is None:
            raise ValueError(f"{type(self).__name__} needs a parsing prior (prior=...)")
        out = self._forward(self._to_model(x), prior)
        for k in IMAGE_KEYS:
            if k in out:
                out[k] = self._from_model(out[k])
        if self.global_residual and self.outputs_sr:
            out["sr"] = out["sr"] + (x if self.input_kind == "upsampled" else bicubic_up(x, self.scale))
        return out

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_maps(x, prior)["sr"]

    def expected_input_size(self) -> int:
        return self.hr_size if self.input_kind == "upsampled" else self.hr_size // self.scale


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_macs(fn: Callable, *args, **kwargs) -> float:
    """MACs of one call ``fn(*args, **kwargs)`` (a model, or a predictor's ``maps``) under
    ``no_grad``: FLOPs / 2 counted by torch's ``FlopCounterMode`` (convolutions, matrix
    products, bmm: what thop / fvcore count; element-wise operations are not counted). Works on
    the ``meta`` device (shapes only). The one MAC counter of the project: the benchmarks, the
    report's PSNR-vs-cost figure and the model tests all use it."""
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        fn(*args, **kwargs)
    return fc.get_total_flops() / 2


# ====================================================================== factories
def make_act(name: str | None, channels: int | None = None) -> nn.Module:
    """``relu`` | ``prelu`` (per-channel, init 0.25) | ``prelu1`` (one slope) |
    ``leakyrelu`` (0.2) | ``gelu`` | ``none``."""
    name = (name or "none").lower()
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "prelu":
        return nn.PReLU(channels or 1, init=0.25)
    if name == "prelu1":
        return nn.PReLU(1, init=0.25)
    if name in ("leakyrelu", "lrelu"):
        return nn.LeakyReLU(0.2, inplace=True)
    if name == "gelu":
        return nn.GELU()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}")


def make_norm(name: str | None, channels: int) -> nn.Module:
    """``bn`` | ``in`` (affine instance norm) | ``ln`` (channel LayerNorm2d) | ``none``."""
    name = (name or "none").lower()
    if name == "bn":
        return nn.BatchNorm2d(channels)
    if name == "in":
        return nn.InstanceNorm2d(channels, affine=True)
    if name == "ln":
        return LayerNorm2d(channels)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {name!r}")


def conv(in_ch: int, out_ch: int, k: int = 3, stride: int = 1, bias: bool = True,
         dilation: int = 1, groups: int = 1, padding: int | None = None) -> nn.Conv2d:
    """Zero-padded 'same' convolution (padding = dilation * (k // 2) unless given)."""
    if padding is None:
        padding = dilation * (k // 2)
    return nn.Conv2d(in_ch, out_ch, k, stride, padding, dilation=dilation, groups=groups, bias=bias)


class ConvLayer(nn.Sequential):
    """[pad] -> Conv -> Norm -> Act. ``pad='reflect'`` reproduces SPARNet's ``ConvLayer``;
    the conv has a bias only when ``norm`` is none (as in the SPARNet code)."""

    def __init__(self, in_ch, out_ch, k=3, stride=1, norm="none", act="none", pad="zeros",
                 bias: bool | None = None):
        if bias is None:
            bias = (norm or "none") == "none"
        layers: list[nn.Module] = []
        if pad == "reflect" and k > 1:
            layers += [nn.ReflectionPad2d(k // 2), nn.Conv2d(in_ch, out_ch, k, stride, 0, bias=bias)]
        else:
            layers += [nn.Conv2d(in_ch, out_ch, k, stride, k // 2, bias=bias)]
        layers += [make_norm(norm, out_ch), make_act(act, out_ch)]
        super().__init__(*layers)


# ====================================================================== residual blocks
class ResBlock(nn.Module):
    """conv-[norm]-act-conv-[norm] + identity, scaled by ``res_scale``.

    EDSR (norm none, relu, res_scale 0.1/1), ParsingNet (res_scale 0.2), SRResNet and the
    thesis' residual block (norm bn, prelu/relu), FishFSRNet refine projection."""

    def __init__(self, ch: int, k: int = 3, act: str = "relu", norm: str = "none",
                 res_scale: float = 1.0, bias: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            conv(ch, ch, k, bias=bias), make_norm(norm, ch), make_act(act, ch),
            conv(ch, ch, k, bias=bias), make_norm(norm, ch),
        )
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.body(x) * self.res_scale


# ====================================================================== attention
class ChannelAttention(nn.Module):
    """Pooled-MLP channel attention: ``x * sigmoid(sum_p MLP(pool_p(x)))``.

    - RCAN / SE: ``pools=("avg",)``, reduction 16, 1x1-conv MLP.
    - CBAM channel gate: ``pools=("avg", "max")``, reduction 16.
    - FishFSRNet ChannelGate: ``pools=("avg", "max", "var")``, reduction 4.
    ``gate`` selects the squashing (``sigmoid``; ``softmax`` over channels for the thesis).
    """

    def __init__(self, ch: int, reduction: int = 16, pools: Sequence[str] = ("avg",),
                 gate: str = "sigmoid", min_hidden: int = 1):
        super().__init__()
        hidden = max(ch // reduction, min_hidden)
        self.mlp = nn.Sequential(nn.Conv2d(ch, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, ch, 1))
        self.pools = tuple(pools)
        self.gate = gate

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        s = 0
        for p in self.pools:
            if p == "avg":
                z = x.mean((2, 3), keepdim=True)
            elif p == "max":
                z = x.amax((2, 3), keepdim=True)
            elif p == "var":
                z = x.var((2, 3), keepdim=True, unbiased=False)
            else:
                raise ValueError(p)
            s = s + self.mlp(z)
        return torch.softmax(s, dim=1) if self.gate == "softmax" else torch.sigmoid(s)

    def forward(self, x):
        return x * self.weights(x)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``x * sigmoid(conv_k([mean_c(x), max_c(x)]))``."""

    def __init__(self, k: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, k, padding=k // 2)

    def map(self, x):
        return torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))

    def forward(self, x):
        return x * self.map(x)


class CBAM(nn.Module):
    """Channel (avg+max, r=16) then spatial (7x7) attention (Woo et al. 2018)."""

    def __init__(self, ch: int, reduction: int = 16, k: int = 7):
        super().__init__()
        self.ca = ChannelAttention(ch, reduction, pools=("avg", "max"))
        self.sa = SpatialAttention(k)

    def forward(self, x):
        return self.sa(self.ca(x))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor (Restormer 'WithBias')."""

    def __init__(self, ch: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ch))
        self.bias = nn.Parameter(torch.zeros(ch))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        x = (x - mu) / torch.sqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ChannelSelfAttention(nn.Module):
    """Multi-head *transposed* (channel-wise, C/h x C/h) self-attention, Restormer MDTA.

    Q, K, V = split(DWConv3x3(Conv1x1(x))); attention over channels per head; 1x1 output
    projection. Used by AMINet's SA and W-Net's SCAB.

    ``scale="temperature"``: L2-normalise Q, K over HW and multiply by a learnable per-head
    temperature (Restormer). ``scale="sqrt_d"``: the literal softmax(QK^T / sqrt(d)) with
    d = channels per head, no normalisation.
    ``order="pw_dw"`` (1x1 then depthwise, AMINet eqs. 1-3) or ``"dw_pw"`` (W-Net eq. 20).
    """

    def __init__(self, ch: int, heads: int = 1, bias: bool = False, scale: str = "temperature",
                 order: str = "pw_dw"):
        super().__init__()
        if ch % heads:
            raise ValueError(f"channels {ch} not divisible by heads {heads}")
        self.heads, self.scale_mode = heads, scale
        if order == "pw_dw":
            self.qkv = nn.Sequential(nn.Conv2d(ch, 3 * ch, 1, bias=bias),
                                     nn.Conv2d(3 * ch, 3 * ch, 3, padding=1, groups=3 * ch, bias=bias))
        elif order == "dw_pw":
            self.qkv = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1, groups=ch, bias=bias),
                                     nn.Conv2d(ch, 3 * ch, 1, bias=bias))
        else:
            raise ValueError(order)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1)) if scale == "temperature" else None
        self.proj = nn.Conv2d(ch, ch, 1, bias=bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in (q, k, v))
        if self.scale_mode == "temperature":
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
            attn = (q @ k.transpose(-2, -1)) * self.temperature
        else:
            attn = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        out = attn.softmax(-1) @ v
        return self.proj(out.reshape(b, c, h, w))


# ====================================================================== resampling blocks
class PixelShuffleUp(nn.Sequential):
    """x2 up: Conv(in -> 4*out) -> PixelShuffle(2) -> [norm] -> [act]."""

    def __init__(self, in_ch: int, out_ch: int | None = None, k: int = 3, norm: str = "none",
                 act: str = "none"):
        out_ch = out_ch or in_ch
        super().__init__(conv(in_ch, 4 * out_ch, k), nn.PixelShuffle(2), make_norm(norm, out_ch),
                         make_act(act, out_ch))


class PixelUnshuffleDown(nn.Sequential):
    """x2 down: PixelUnshuffle(2) (C -> 4C) -> Conv(4*in -> out) -> [norm] -> [act]."""

    def __init__(self, in_ch: int, out_ch: int | None = None, k: int = 3, norm: str = "none",
                 act: str = "none"):
        out_ch = out_ch or in_ch
        super().__init__(nn.PixelUnshuffle(2), conv(4 * in_ch, out_ch, k), make_norm(norm, out_ch),
                         make_act(act, out_ch))


def upsampler(scale: int, ch: int, act: str = "none", norm: str = "none") -> nn.Sequential:
    """log2(scale) x2 PixelShuffle steps at constant width (EDSR / SRResNet tails)."""
    n = int(round(math.log2(scale)))
    if 2 ** n != scale:
        raise ValueError(f"scale must be a power of two, got {scale}")
    return nn.Sequential(*[PixelShuffleUp(ch, ch, norm=norm, act=act) for _ in range(n)])


# ====================================================================== hourglasses
class SPARHourglass(nn.Module):
    """SPARNet's simplified FAN-style hourglass of ConvLayers (used by SPARNet's attention
    branch and AMINet's FRM):

        HG(x, level): up1 = CBA(x); low1 = CBA_s2(x)
                      low2 = HG(low1, level-1) if level > 1 else CBA(low1)
                      return up1 + CBA(nearest_up2(low2))

    ``depth = 0`` degenerates to ``n_plain`` plain CBA convs (no pooling), which is the
    spec's [GUESS] for SPARNet-S16 (bottleneck equal to the feature size).
    Module names mirror the released code (``b1_/b2_/b2_plus_/b3_<level>``).
    """

    def __init__(self, in_ch: int, depth: int, mid_ch: int = 64, norm: str = "bn", act: str = "prelu",
                 pad: str = "reflect", n_plain: int = 2):
        super().__init__()
        self.depth = depth
        cba = lambda i, o, s=1: ConvLayer(i, o, 3, s, norm=norm, act=act, pad=pad)  # noqa: E731
        if depth == 0:
            self.plain = nn.Sequential(*[cba(in_ch if i == 0 else mid_ch, mid_ch) for i in range(n_plain)])
            return
        for level in range(depth, 0, -1):
            c_in = in_ch if level == depth else mid_ch
            self.add_module(f"b1_{level}", cba(c_in, mid_ch))
            self.add_module(f"b2_{level}", cba(c_in, mid_ch, 2))
            if level == 1:
                self.add_module(f"b2_plus_{level}", cba(mid_ch, mid_ch))
            self.add_module(f"b3_{level}", cba(mid_ch, mid_ch))

    def _hg(self, x, level):
        up1 = getattr(self, f"b1_{level}")(x)
        low1 = getattr(self, f"b2_{level}")(x)
        low2 = self._hg(low1, level - 1) if level > 1 else getattr(self, f"b2_plus_{level}")(low1)
        up2 = getattr(self, f"b3_{level}")(F.interpolate(low2, scale_factor=2, mode="nearest"))
        return up1 + up2

    def forward(self, x):
        return self.plain(x) if self.depth == 0 else self._hg(x, self.depth)


class NewellHourglass(nn.Module):
    """Newell et al.'s recursive hourglass with residual blocks (W-Net Parsing Block, the
    thesis' prior branch): per level an upper branch (``n_res`` blocks at this resolution)
    and a lower branch (maxpool -> blocks -> recurse or blocks -> blocks -> nearest x2)."""

    def __init__(self, ch: int, depth: int = 4, n_res: int = 1, norm: str = "none", act: str = "relu"):
        super().__init__()
        blocks = lambda: nn.Sequential(*[ResBlock(ch, act=act, norm=norm) for _ in range(n_res)])  # noqa: E731
        self.up1 = blocks()
        self.low1 = blocks()
        self.low2 = NewellHourglass(ch, depth - 1, n_res, norm, act) if depth > 1 else blocks()
        self.low3 = blocks()

    def forward(self, x):
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        return self.up1(x) + F.interpolate(low, scale_factor=2, mode="nearest")


# ====================================================================== init / utilities
def init_normal_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix/SPARNet init: conv/linear weights N(0, std), biases 0; BN gamma N(1, std)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            nn.init.normal_(getattr(m, "weight_orig", m.weight), 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral norm on every Conv2d / Linear (SPARNetHD G and D)."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            setattr(module, name, nn.utils.spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module


def bicubic_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Differentiable torch bicubic upsampling (a=-0.75, PyTorch's kernel). Only for
    *inside* a model; data-side upsampling uses :func:`fsrlib.imresize.imresize`."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def nearest_resize(p: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(p, size=size, mode="nearest")


def iter_attention(maps: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    return [m for m in maps if m is not None]


# ====================================================================== selective-kernel fusion
class SelectiveKernelFusion(nn.Module):
    """AMINet's SKAF (Eqs. 11-14) and EDFF (Eqs. 15-16): LSKNet-style spatial selection
    between two same-shaped features ``a`` and ``b`` (D x H x W)::

        z = Conv1x1(cat(a, b)) [hybrid="concat1x1"]   or   a + b [hybrid="add"]
        s = cat(Conv5x5(z), Conv7x7(z))       parallel, dense (``depthwise=True``: per-channel)
        p = cat(mean_c(s), max_c(s))          pooling along channels -> len(pools) x H x W
        w = sigmoid(Conv_k(len(pools) -> 2)(p))   ("squeeze"; ``squeeze="none"``: Eq. 13
                                                  literally, w = sigmoid(p), needs both pools)
        out = a * w[:, 0:1] + b * w[:, 1:2]

    Degenerate variants (AMINet Table V): no kernels -> ``s = z``; no pools ->
    ``w = sigmoid(Conv1x1(s -> 2))``; no kernels *and* no pools -> plain ``a + b`` (no
    parameters). Lives here so that EDFF can be plugged into other U-shaped models
    (AMINet Table VI: SPARNet + EDFF).
    """

    def __init__(self, ch: int, kernels: Sequence[int] = (5, 7), pools: Sequence[str] = ("avg", "max"),
                 squeeze: str = "conv", squeeze_k: int = 7, hybrid: str = "concat1x1",
                 depthwise: bool = False, bias: bool = True):
        super().__init__()
        self.kernels, self.pools, self.squeeze = tuple(kernels), tuple(pools), squeeze
        for p in self.pools:
            if p not in ("avg", "max"):
                raise ValueError(f"unknown pool {p!r}")
        self.plain_add = not self.kernels and not self.pools
        if self.plain_add:
            return
        if hybrid == "concat1x1":
            self.hybrid = nn.Conv2d(2 * ch, ch, 1, bias=bias)
        elif hybrid == "add":
            self.hybrid = None
        else:
            raise ValueError(f"unknown hybrid {hybrid!r}")
        self.branches = nn.ModuleList(
            [conv(ch, ch, k, groups=ch if depthwise else 1, bias=bias) for k in self.kernels])
        s_ch = ch * max(len(self.kernels), 1)
        if not self.pools:
            self.select = nn.Conv2d(s_ch, 2, 1)
        elif squeeze == "conv":
            self.select = conv(len(self.pools), 2, squeeze_k)
        elif squeeze == "none":
            if len(self.pools) != 2:
                raise ValueError("squeeze='none' (Eq. 13 literally) needs both avg and max pooling")
            self.select = nn.Identity()
        else:
            raise ValueError(f"unknown squeeze {squeeze!r}")

    def weights(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
        """The two spatial selection maps (B x 2 x H x W, in (0, 1)); None for plain add."""
        if self.plain_add:
            return None
        z = self.hybrid(torch.cat([a, b], 1)) if self.hybrid is not None else a + b
        s = torch.cat([br(z) for br in self.branches], 1) if self.kernels else z
        if self.pools:
            s = torch.cat([s.mean(1, keepdim=True) if p == "avg" else s.amax(1, keepdim=True)
                           for p in self.pools], 1)
        return torch.sigmoid(self.select(s))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        w = self.weights(a, b)
        if w is None:
            return a + b
        return a * w[:, 0:1] + b * w[:, 1:2]
