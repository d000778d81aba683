"""GAN discriminators (plain ``nn.Module``, not :class:`FSRModel`).

Common interface: images in **[0, 1]** (mapped internally to ``value_range``, default
[-1, 1] as the SPARNet/CTCNet code bases and SRGAN's HR range). ``forward(x)`` returns a list
with one entry per scale; each entry is the list of intermediate features followed by the
score (last element), so feature matching uses ``out[k][:-1]`` and the GAN loss ``out[k][-1]``
(:meth:`scores` gives only the scores).

- ``patchgan_ms`` :class:`MultiScalePatchD`: SPARNetHD's D (spec 002 section 2.7) [CODE]: 3
  PatchGANs at full, 1/2 and 1/4 size (bicubic 0.5x, align_corners False), InstanceNorm,
  spectral norm on every conv. 3.92 M parameters per D at the default width.
- ``patchgan`` :class:`PatchGAN`: one NLayer PatchGAN, no norm, no spectral norm (AMIGAN
  default, spec 003 section 2.4 [CB]); scores are patch logits (6x6 at 128 px).
- ``srgan_d`` :class:`SRGANDiscriminator`: SRGAN / thesis Table 3.4, returns a logit (B x 1);
  the sigmoid belongs to the loss (BCE with logits).

NLayer PatchGAN layers [CODE]: Conv3x3(3 -> base) + LReLU 0.2, then ``n_layers`` x
(Conv3x3 stride 2 + norm + LReLU) with widths doubling up to ``max_ch``, then a score
Conv3x3 without padding (512 px: 30x30). Reflection padding; conv bias only without norm.

Note: with ``n_layers`` = 4 a PatchGAN needs >= 48 px input, so ``patchgan_ms`` at 128 px
takes ``num_D=2`` (or ``n_layers=3``).

Demo (CPU) configurations at 128 px, one Adam step at batch 8 on 2 cores: ``patchgan``
``{"base_ch": 16}`` ~0.04 s; ``patchgan_ms`` ``{"base_ch": 16, "num_D": 2}`` ~0.06 s;
``srgan_d`` ``{"base_ch": 16, "fc_dim": 128}`` ~0.04 s.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import MODELS
from .common import ConvLayer, apply_spectral_norm, init_normal_


class _Discriminator(nn.Module):
    """[0, 1] -> ``value_range`` mapping and :meth:`scores`."""

    def __init__(self, value_range=(-1.0, 1.0)):
        super().__init__()
        self.value_range = tuple(float(v) for v in value_range)

    def _to_range(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.value_range
        return x if (lo, hi) == (0.0, 1.0) else x * (hi - lo) + lo

    def scores(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [feats[-1] for feats in self(x)]


class NLayerD(nn.Module):
    """One NLayer PatchGAN; ``forward`` (input already in range) returns [features..., score]."""

    def __init__(self, in_ch: int = 3, base_ch: int = 64, max_ch: int = 512, n_layers: int = 4,
                 norm: str = "none"):
        super().__init__()
        layers = [ConvLayer(in_ch, base_ch, 3, norm="none", act="leakyrelu", pad="reflect")]
        c = base_ch
        for i in range(n_layers):
            c_out = min(base_ch * 2 ** (i + 1), max_ch)
            layers.append(ConvLayer(min(base_ch * 2 ** i, max_ch), c_out, 3, 2, norm=norm, act="leakyrelu",
                                    pad="reflect"))
            c = c_out
        self.model = nn.Sequential(*layers)
        self.score_out = nn.Conv2d(c, 1, 3, padding=0)

    def forward(self, x):
        feats = []
        for m in self.model:
            x = m(x)
            feats.append(x)
        return feats + [self.score_out(x)]


@MODELS.register("patchgan_ms")
class MultiScalePatchD(_Discriminator):
    """``num_D`` NLayer PatchGANs on the input downsampled by 2**k (SPARNetHD defaults)."""

    slim = {"base_ch": 8, "num_D": 2}  # a slim instance (the zoo's contract test)

    def __init__(self, num_D: int = 3, in_ch: int = 3, base_ch: int = 64, max_ch: int = 512, n_layers: int = 4,
                 norm: str = "in", spectral_norm: bool = True, value_range=(-1.0, 1.0), init_std: float = 0.02):
        super().__init__(value_range)
        self.D_pool = nn.ModuleList([NLayerD(in_ch, base_ch, max_ch, n_layers, norm) for _ in range(num_D)])
        init_normal_(self, init_std)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x):
        n_down = len(self.D_pool[0].model) - 1  # stride-2 layers; the 3x3 score conv needs >= 3 px after them
        need = 3 * 2 ** n_down * 2 ** (len(self.D_pool) - 1)
        if min(x.shape[-2:]) < need:
            raise ValueError(f"patchgan_ms: {len(self.D_pool)} PatchGANs of {n_down} "
                             f"stride-2 layers need >= {need} px input, got {tuple(x.shape[-2:])} (SPARNetHD trains "
                             f"at 512 px: dataset.hr_size 512; at 128 px use num_D 2)")
        x = self._to_range(x)
        out = []
        for k, d in enumerate(self.D_pool):
            if k:
                x = F.interpolate(x, scale_factor=0.5, mode="bicubic", align_corners=False)
            out.append(d(x))
        return out


@MODELS.register("patchgan")
class PatchGAN(MultiScalePatchD):
    """Single-scale PatchGAN, no norm, no spectral norm (AMIGAN default)."""

    slim = {"base_ch": 8}  # a slim instance (the zoo's contract test)

    def __init__(self, in_ch: int = 3, base_ch: int = 64, max_ch: int = 512, n_layers: int = 4,
                 norm: str = "none", spectral_norm: bool = False, value_range=(-1.0, 1.0),
                 init_std: float = 0.02):
        super().__init__(1, in_ch, base_ch, max_ch, n_layers, norm, spectral_norm, value_range, init_std)


@MODELS.register("srgan_d")
class SRGANDiscriminator(_Discriminator):
    """SRGAN discriminator (thesis Table 3.4): Conv3x3 + LReLU, 7 blocks Conv3x3-BN-LReLU(0.2)
    with strides 2,1,2,1,2,1,2 and widths 64,128,128,256,256,512,512, Flatten, Dense(1024),
    LReLU, Dense(1) -> logit. ``in_size`` fixes the Dense input (128 -> 8x8x512).
    Zero padding; PyTorch default init (the thesis gives none)."""

    slim = {"base_ch": 8, "fc_dim": 64}  # a slim instance (the zoo's contract test)

    def __init__(self, in_size: int = 128, in_ch: int = 3, base_ch: int = 64, fc_dim: int = 1024,
                 value_range=(-1.0, 1.0)):
        super().__init__(value_range)
        if in_size % 16:
            raise ValueError(f"in_size must be a multiple of 16, got {in_size}")
        widths = [base_ch, base_ch, 2 * base_ch, 2 * base_ch, 4 * base_ch, 4 * base_ch, 8 * base_ch, 8 * base_ch]
        layers = [ConvLayer(in_ch, base_ch, 3, act="leakyrelu")]
        for i in range(1, 8):
            layers.append(ConvLayer(widths[i - 1], widths[i], 3, 2 if i % 2 else 1, norm="bn", act="leakyrelu"))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * (in_size // 16) ** 2, fc_dim),
                                        nn.LeakyReLU(0.2, inplace=True), nn.Linear(fc_dim, 1))

    def forward(self, x):
        x = self._to_range(x)
        feats = []
        for m in self.features:
            x = m(x)
            feats.append(x)
        return [feats + [self.classifier(x)]]
