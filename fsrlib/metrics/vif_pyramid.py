"""Wavelet-domain VIF (Sheikh & Bovik 2006, "Image information and visual quality"): the
steerable-pyramid ``vifvec`` algorithm that the SPARNet-codebase line of FSR papers reports
(through IQA-pytorch / pyiqa ``vif``), on PIL ``'L'`` grey by default (family A).

Algorithm (written from the paper and the LIVE ``vifvec`` description):

* decompose reference C and distorted D into a steerable pyramid, 4 levels x 6 orientations;
  use two orientations per level (0 and 90 degrees: the 8 subbands ``vifvec`` selects);
* per subband, on non-overlapping M x M blocks (M = 3, subband cropped to a multiple of M),
  the distortion channel D = g C + V from local (co)variances over a ``2**(4 - level) + 1``
  square window centred on each block (sums over the window, reflect padding at the edges):
  ``g = cov / var_C``, ``sigma_v^2 = (var_D - g cov) / window_area``, with ``vifvec``'s rules
  for flat regions and negative gains;
* the GSM reference model: ``C_U`` = covariance of the M x M neighbourhood vectors (all
  positions), ``s^2 = u^T C_U^-1 u / M^2`` per block, ``lambda_k`` = eigenvalues of ``C_U``;
* after dropping the blocks the window overhangs, ``VIF = sum log2(1 + g^2 s^2 lambda_k /
  (sigma_v^2 + sigma_n^2)) / sum log2(1 + s^2 lambda_k / sigma_n^2)``, sigma_n^2 = 0.4, summed
  over blocks, eigenvalues and subbands.

**The pyramid differs from the reference code**: ``vifvec`` (and pyiqa) convolve with the
tabulated ``sp5Filters`` of matlabPyrTools; this module builds the steerable pyramid in the
Fourier domain from its analytic definition (Simoncelli & Freeman 1995; Portilla & Simoncelli
2000: raised-cosine log-radial masks, ``cos^5`` angular masks, 6 orientations), so the subband
coefficients, and the VIF, differ from pyiqa's: measured on 5 real images, ~0.10 lower under
Gaussian noise and about half of pyiqa's value on PIL-bicubic x4 round trips (identical images:
1 in both; the order of distortions agrees). Compare these numbers within this project's tables
only, never with a paper's printed VIF (``tests/test_vif_pyramid.py``). The GSM / channel estimation follows ``vifvec`` step by step.
"""
from __future__ import annotations

import functools
import math

import torch

from ..registry import METRICS
from .image import Metric, check_pair, quantize, to_channel

__all__ = ["pil_gray", "steerable_pyramid", "vif_pyramid", "VIFPyramid"]

LEVELS, ORIENTATIONS, BLOCK, SIGMA_N_SQ, TOL = 4, 6, 3, 0.4, 1e-12
DECIMATION_GAIN = 2.0  # amplitude x2 per level (tight frame, like the spatial sp5 pyramid)
USED_ORIENTATIONS = (0, 3)  # 0 and 90 degrees: vifvec's subbands [4 7 10 ... 25]


def pil_gray(x255: torch.Tensor) -> torch.Tensor:
    """PIL ``Image.convert('L')`` of ``(N,3,H,W)`` uint8 values -> ``(N,1,H,W)`` float64:
    ``(19595 R + 38470 G + 7471 B + 32768) >> 16``, PIL's fixed-point R*299/1000 + G*587/1000 +
    B*114/1000 rounded (the tests check it against PIL)."""
    v = x255.to(torch.int64)
    num = 19595 * v[:, 0:1] + 38470 * v[:, 1:2] + 7471 * v[:, 2:3] + 32768
    return torch.div(num, 65536, rounding_mode="floor").to(torch.float64)


# ---------------------------------------------------------------------- pyramid
def _raised_cosine(log_r: torch.Tensor, edge: float) -> torch.Tensor:
    """1 above ``edge``, 0 below ``edge - 1`` (octaves), cos-squared-root transition between."""
    t = ((log_r - (edge - 1.0)).clamp(0.0, 1.0)) * (math.pi / 2)
    return torch.sin(t)  # high-pass amplitude; the low-pass partner is cos(t)


@functools.lru_cache(maxsize=16)
def _polar(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log2 radius (1 = Nyquist... in units of the half-band) and angle of the centred DFT grid."""
    fy = (torch.arange(h, dtype=torch.float64) - h // 2) / (h / 2)
    fx = (torch.arange(w, dtype=torch.float64) - w // 2) / (w / 2)
    yy, xx = torch.meshgrid(fy, fx, indexing="ij")
    r = torch.sqrt(xx * xx + yy * yy)
    r[h // 2, w // 2] = r[h // 2, w // 2 - 1] if w > 1 else 1.0  # DC: avoid log(0)
    return torch.log2(r), torch.atan2(yy, xx)


def steerable_pyramid(img: torch.Tensor, levels: int = LEVELS, orientations: int = ORIENTATIONS):
    """Real steerable pyramid (Fourier domain) of ``(N,1,H,W)`` -> ``[level][orientation]`` list of
    ``(N,1,h,w)`` subbands, finest level first (the high-pass residual and the low-pass residual
    are not returned: VIF does not use them). H and W must be divisible by ``2**levels``."""
    h, w = img.shape[-2:]
    if h % 2**levels or w % 2**levels:
        raise ValueError(f"image {h}x{w} not divisible by 2**{levels}")
    order = orientations - 1
    # angular gain so that the orientations sum to one in power (Simoncelli's constant)
    const = 2 ** (2 * order) * math.factorial(order) ** 2 / (orientations * math.factorial(2 * order))
    dft = torch.fft.fftshift(torch.fft.fft2(img.to(torch.float64)), dim=(-2, -1))
    log_r, ang = _polar(h, w)
    lo = dft * torch.cos((log_r - (-1.0)).clamp(0.0, 1.0) * (math.pi / 2))  # lo0: pass below r = 1/2
    out = []
    for _ in range(levels):
        hh, ww = lo.shape[-2:]
        log_r, ang = _polar(hh, ww)
        hi_mask = _raised_cosine(log_r, -1.0)  # band: between a quarter and a half of the band
        bands = []
        for b in range(orientations):
            a = ang - math.pi * b / orientations
            # wrap to [-pi, pi] and keep the lobe in this half-plane (the real filter's spectrum)
            a = torch.remainder(a + math.pi, 2 * math.pi) - math.pi
            amask = 2 * math.sqrt(const) * torch.cos(a).pow(order) * (a.abs() < math.pi / 2)
            band = lo * hi_mask * amask * (-1j) ** order
            bands.append(torch.fft.ifft2(torch.fft.ifftshift(band, dim=(-2, -1))).real)
        out.append(bands)
        lo = lo * torch.cos((log_r - (-2.0)).clamp(0.0, 1.0) * (math.pi / 2))
        lo = lo[..., hh // 4: hh // 4 + hh // 2, ww // 4: ww // 4 + ww // 2] * (DECIMATION_GAIN / 4.0)  # subsample by 2
    return out


# ---------------------------------------------------------------------- VIF
def _window_sums(x: torch.Tensor, win: int, step: int) -> torch.Tensor:
    """Sums over ``win`` x ``win`` windows centred on the block centres (step ``step``), reflect padding."""
    p = (win - 1) // 2
    xp = torch.nn.functional.pad(x, (p, p, p, p), mode="reflect")
    s = torch.nn.functional.avg_pool2d(xp, win, stride=1) * (win * win)
    c = step // 2
    return s[..., c::step, c::step]


def _channel(c: torch.Tensor, d: torch.Tensor, win: int):
    """vifvec's distortion channel ``d = g c + v`` per block: ``(g, sigma_v^2)``."""
    n = win * win
    mc, md = _window_sums(c, win, BLOCK) / n, _window_sums(d, win, BLOCK) / n
    cov = _window_sums(c * d, win, BLOCK) - n * mc * md
    vc = (_window_sums(c * c, win, BLOCK) - n * mc * mc).clamp(min=0)
    vd = (_window_sums(d * d, win, BLOCK) - n * md * md).clamp(min=0)
    g = cov / (vc + TOL)
    sv = (vd - g * cov) / n
    flat_c, flat_d = vc < TOL, vd < TOL
    g, sv = torch.where(flat_c, 0.0, g), torch.where(flat_c, vd, sv)
    g, sv = torch.where(flat_d, 0.0, g), torch.where(flat_d, 0.0, sv)
    sv, g = torch.where(g < 0, vd, sv), g.clamp(min=0)
    return g, sv.clamp(min=TOL)


def _gsm(c: torch.Tensor):
    """GSM reference model: per-block ``s^2`` and the eigenvalues of ``C_U`` (per image)."""
    n, _, h, w = c.shape
    m = BLOCK
    # all M x M neighbourhoods -> (N, L, M*M); non-overlapping blocks -> (N, B, M*M)
    vec = torch.nn.functional.unfold(c, m).transpose(1, 2)
    blocks = torch.nn.functional.unfold(c, m, stride=m).transpose(1, 2)
    centred = vec - vec.mean(1, keepdim=True)
    cu = centred.transpose(1, 2) @ centred / vec.shape[1]
    s = ((blocks @ torch.linalg.pinv(cu)) * blocks).sum(-1) / (m * m)
    return s.reshape(n, 1, h // m, w // m), torch.linalg.eigvalsh(cu)


def vif_pyramid(dist: torch.Tensor, ref: torch.Tensor, sigma_n_sq: float = SIGMA_N_SQ) -> torch.Tensor:
    """Steerable-pyramid VIF of ``dist`` against ``ref``, ``(N,1,H,W)`` in [0, 255] -> ``(N,)``."""
    pc, pd = steerable_pyramid(ref), steerable_pyramid(dist)
    num = torch.zeros(ref.shape[0], dtype=torch.float64)
    den = torch.zeros_like(num)
    for level in range(LEVELS):
        win = 2 ** (LEVELS - level) + 1
        off = math.ceil(((win - 1) // 2) / BLOCK)
        for o in USED_ORIENTATIONS:
            c, d = pc[level][o], pd[level][o]
            hh, ww = (c.shape[-2] // BLOCK) * BLOCK, (c.shape[-1] // BLOCK) * BLOCK
            c, d = c[..., :hh, :ww], d[..., :hh, :ww]
            g, sv = _channel(c, d, win)
            s, lam = _gsm(c)
            keep = (..., slice(off, g.shape[-2] - off), slice(off, g.shape[-1] - off))
            g, sv, s = g[keep], sv[keep], s[keep]
            sl = s.flatten(1)[:, :, None] * lam[:, None, :]  # (N, blocks, eigenvalues)
            gg, vv = (g * g).flatten(1)[:, :, None], sv.flatten(1)[:, :, None]
            num += torch.log2(1 + gg * sl / (vv + sigma_n_sq)).sum((1, 2))
            den += torch.log2(1 + sl / sigma_n_sq).sum((1, 2))
    return num / (den + TOL)


@METRICS.register("vif_pyramid")
class VIFPyramid(Metric):
    """Steerable-pyramid VIF (vifvec, sigma_n^2 = 0.4, M = 3), on PIL 'L' grey by default
    (``color="pil_l"``; ``"y"`` = the project's BT.601 Y). Family A's VIF column."""

    key = "vif_pyramid"
    higher_is_better = True
    range = (0.0, math.inf)

    def __init__(self, color: str = "pil_l", sigma_n_sq: float = SIGMA_N_SQ, name: str | None = None):
        super().__init__(name)
        if color not in ("pil_l", "y"):
            raise ValueError(f"color must be 'pil_l' or 'y', got {color!r}")
        self.color, self.sigma_n_sq = color, float(sigma_n_sq)

    @property
    def convention(self) -> str:
        chan = "PIL 'L' grey" if self.color == "pil_l" else "Y BT.601"
        return (f"VIF steerable pyramid (Fourier, 4 levels x 6 orientations, vifvec GSM M 3), {chan} "
                f"[0,255], uint8, sigma_n^2 {self.sigma_n_sq:g}, no crop")

    def __call__(self, sr, hr) -> torch.Tensor:
        a, b = quantize(sr), quantize(hr)
        if self.color == "pil_l":
            a, b = pil_gray(a), pil_gray(b)
        else:
            a, b = to_channel(a, "y"), to_channel(b, "y")
        check_pair(a, b)
        return vif_pyramid(a, b, self.sigma_n_sq)

