"""MATLAB-``imresize`` bicubic, numpy (:func:`imresize`) and torch (:func:`imresize_torch`).

MATLAB ``imresize(A, scale)`` with the default ``'bicubic'`` method, reimplemented from its
documented algorithm (``contributions`` in imresize.m):

* kernel: Keys cubic with ``a = -0.5``::

      k(x) = 1.5|x|^3 - 2.5|x|^2 + 1                 |x| <= 1
           = -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2          1 < |x| <= 2
           = 0                                        otherwise

* antialiasing (on by default, only when shrinking, ``scale < 1``): the kernel is stretched,
  ``h(x) = scale * k(scale * x)``, and its width becomes ``4 / scale`` input pixels;
* output pixel ``i`` (1-based) samples the input at ``u = i / scale + 0.5 * (1 - 1 / scale)``;
  taps are ``floor(u - width / 2) + (0 .. ceil(width) + 1)``; weights ``h(u - j)`` are
  normalised to sum to one;
* boundary: out-of-range taps are **mirrored** (``aux = [1..n, n..1]``, i.e. numpy's
  ``'symmetric'`` padding, the edge pixel repeated). MATLAB releases before ~R2013b clamped
  (replicated) them instead: ``boundary="replicate"`` gives that variant;
* output size ``ceil(scale * n)``; with an explicit output size the scale is ``out / in``
  per dimension;
* the two dimensions are resized one after the other, the one with the **smaller** scale
  first (rows first when equal);
* class: MATLAB returns the input's class after **each** pass, so a uint8 image is rounded
  (half away from zero) and saturated to uint8 after the first pass as well as after the
  second. :func:`imresize` does the same for uint8 input; float input is never rounded.
  :func:`imresize_torch` works in float (differentiable); ``quantize=True`` reproduces the
  uint8 path (values in [0, 1] rounded to k/255 after each pass).

The conventions of the project (docs/conventions.md): ``LR = imresize(HR_uint8, 1/s)``
rounded to uint8, ``lr_up = imresize(LR_uint8, s)`` rounded to uint8
(:func:`fsrlib.data.degrade.degrade`). A leaf module: the degradations, the dataset and the
label maps (:mod:`fsrlib.labels`) all resize with it.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import torch

__all__ = ["cubic", "resize_weights", "imresize", "imresize_torch"]


# ====================================================================== kernel and weights
def cubic(x, a: float = -0.5):
    """Keys' cubic convolution kernel (MATLAB's ``cubic`` uses a = -0.5)."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = (a + 2.0) * ax3 - (a + 3.0) * ax2 + 1.0
    outer = a * ax3 - 5.0 * a * ax2 + 8.0 * a * ax - 4.0 * a
    return np.where(ax <= 1.0, inner, np.where(ax <= 2.0, outer, 0.0))


@functools.lru_cache(maxsize=256)
def _resize_weights_cached(in_len: int, out_len: int, scale: float, antialias: bool,
                           boundary: str) -> np.ndarray:
    if antialias and scale < 1.0:
        width = 4.0 / scale
        kern = lambda t: scale * cubic(scale * t)  # noqa: E731
    else:
        width = 4.0
        kern = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)                  # 1-based output coords
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)                        # 1-based input coords
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]                   # 1-based tap indices
    w = kern(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    idx0 = idx.astype(np.int64) - 1                                   # 0-based
    if boundary == "symmetric":
        period = 2 * in_len
        m = np.mod(idx0, period)
        idx0 = np.where(m < in_len, m, period - 1 - m)
    elif boundary == "replicate":
        idx0 = np.clip(idx0, 0, in_len - 1)
    else:
        raise ValueError(f"boundary must be 'symmetric' or 'replicate', got {boundary!r}")
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(mat, (rows, idx0.ravel()), w.ravel())
    mat.setflags(write=False)
    return mat


def resize_weights(in_len: int, out_len: int, scale: float | None = None, antialias: bool = True,
                   boundary: str = "symmetric") -> np.ndarray:
    """The (out_len x in_len) matrix of one 1-D MATLAB-imresize pass (float64, read-only)."""
    if scale is None:
        scale = out_len / in_len
    return _resize_weights_cached(int(in_len), int(out_len), float(scale), bool(antialias), boundary)


def _plan(shape_hw, scale, output_shape):
    """MATLAB's fixupSizeAndScale: per-dimension scales and output sizes."""
    h, w = int(shape_hw[0]), int(shape_hw[1])
    if output_shape is not None:
        oh, ow = (int(output_shape[0]), int(output_shape[1]))
        sh, sw = oh / h, ow / w
    elif scale is not None:
        sh, sw = (float(scale), float(scale)) if np.isscalar(scale) else (float(scale[0]), float(scale[1]))
        oh, ow = int(math.ceil(sh * h)), int(math.ceil(sw * w))
    else:
        raise ValueError("give scale or output_shape")
    # smaller scale first, rows first on ties (stable sort, as MATLAB's sort)
    order = (0, 1) if sh <= sw else (1, 0)
    return (sh, sw), (oh, ow), order


def _round_u8(a: np.ndarray) -> np.ndarray:
    # MATLAB rounds half away from zero and saturates
    return np.clip(np.floor(a + 0.5), 0.0, 255.0)


def imresize(img: np.ndarray, scale: float | Sequence[float] | None = None,
             output_shape: Sequence[int] | None = None, antialias: bool = True,
             boundary: str = "symmetric", round_between_passes: bool | None = None) -> np.ndarray:
    """MATLAB ``imresize(img, scale)`` / ``imresize(img, [h w])``, bicubic.

    ``img``: HxW or HxWxC, uint8 (rounded and saturated after each pass as MATLAB does,
    returns uint8) or float (returns float64 for float64 input, float32 otherwise; never
    rounded or clipped). ``round_between_passes=False`` rounds a uint8 image only at the
    end (the BasicSR / mmagic ports' behaviour; differs where the first pass overshoots)."""
    img = np.asarray(img)
    is_u8 = img.dtype == np.uint8
    if not is_u8 and not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"imresize expects uint8 or float, got {img.dtype}")
    (sh, sw), (oh, ow), order = _plan(img.shape[:2], scale, output_shape)
    if round_between_passes is None:
        round_between_passes = is_u8
    squeeze = img.ndim == 2
    out = img.astype(np.float64).reshape(img.shape[0], img.shape[1], -1)
    # (einsum / broadcast matmul: small products, where a threaded BLAS call costs more
    # than the arithmetic on a 2-core machine)
    for k, dim in enumerate(order):
        if dim == 0:
            m = resize_weights(out.shape[0], oh, sh, antialias, boundary)
            out = np.einsum("ij,jkc->ikc", m, out)
        else:
            m = resize_weights(out.shape[1], ow, sw, antialias, boundary)
            out = np.matmul(m, out)  # broadcast over rows: (ow, W) @ (H, W, C) -> (H, ow, C)
        if is_u8 and (round_between_passes or k == len(order) - 1):
            out = _round_u8(out)
    if squeeze:
        out = out[..., 0]
    else:
        out = out.reshape(out.shape[:2] + img.shape[2:])
    if is_u8:
        return out.astype(np.uint8)
    return out if img.dtype == np.float64 else out.astype(np.float32)


# ====================================================================== torch
_TORCH_CACHE: dict = {}


def _torch_weights(in_len, out_len, scale, antialias, boundary, dtype, device):
    key = (in_len, out_len, float(scale), antialias, boundary, dtype, str(device))
    t = _TORCH_CACHE.get(key)
    if t is None:
        w = np.array(resize_weights(in_len, out_len, scale, antialias, boundary))
        t = torch.from_numpy(w).to(dtype=dtype, device=device)
        if len(_TORCH_CACHE) > 512:
            _TORCH_CACHE.clear()
        _TORCH_CACHE[key] = t
    return t


def imresize_torch(x, scale: float | Sequence[float] | None = None, size: Sequence[int] | None = None,
                   antialias: bool = True, boundary: str = "symmetric", quantize: bool = False):
    """Batched, differentiable MATLAB-imresize bicubic on a float tensor ``(..., H, W)``.

    Same weights and pass order as :func:`imresize`. Values are not clipped. With
    ``quantize=True`` the result of each pass is rounded to multiples of 1/255 (inputs in
    [0, 1]) to reproduce the uint8 path exactly (not differentiable)."""
    if not torch.is_tensor(x):
        raise TypeError("imresize_torch expects a tensor")
    if not torch.is_floating_point(x):
        raise TypeError("imresize_torch expects a float tensor; use imresize() for uint8 arrays")
    (sh, sw), (oh, ow), order = _plan(x.shape[-2:], scale, size)
    out = x
    for dim in order:
        if dim == 0:
            m = _torch_weights(out.shape[-2], oh, sh, antialias, boundary, out.dtype, out.device)
            out = torch.matmul(m, out)
        else:
            m = _torch_weights(out.shape[-1], ow, sw, antialias, boundary, out.dtype, out.device)
            out = torch.matmul(out, m.transpose(0, 1))
        if quantize:
            out = torch.clamp(torch.floor(out * 255.0 + 0.5), 0.0, 255.0) / 255.0
    return out
