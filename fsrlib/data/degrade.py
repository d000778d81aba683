"""Degradations: MATLAB-``imresize`` bicubic (numpy and torch), the SPARNetHD blind model,
and the ``degrade`` stage.

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
rounded to uint8, ``lr_up = imresize(LR_uint8, s)`` rounded to uint8 (:func:`degrade`).
"""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "cubic", "resize_weights", "imresize", "imresize_torch", "degrade", "blind_degrade",
    "BLIND_PRESETS", "degrade_all", "DEFAULTS",
]

DEFAULTS = {
    "scales": [4, 8],        # 16 on request
    "hr_size": 128,
    "boundary": "symmetric",  # MATLAB >= R2013b; "replicate" for older releases
    "round_between_passes": True,  # MATLAB uint8 semantics; False = BasicSR / mmagic ports
    "workers": 2,
}


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
    import torch

    key = (in_len, out_len, float(scale), antialias, boundary, dtype, str(device))
    t = _TORCH_CACHE.get(key)
    if t is None:
        t = torch.from_numpy(np.array(resize_weights(in_len, out_len, scale, antialias, boundary))).to(dtype=dtype, device=device)
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
    import torch

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


# ====================================================================== bicubic degradation
def degrade(hr_uint8: np.ndarray, scale: int, boundary: str = "symmetric",
            round_between_passes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(lr, lr_up)``, both uint8: MATLAB-imresize bicubic down by ``scale`` and back up.

    ``round_between_passes``: MATLAB's uint8 semantics (default) or the BasicSR/mmagic ports'
    (round once at the end); see :func:`imresize`."""
    hr = np.asarray(hr_uint8)
    if hr.dtype != np.uint8:
        raise TypeError(f"degrade expects uint8 HR, got {hr.dtype}")
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"HR size {w}x{h} is not divisible by scale {scale}")
    kw = dict(boundary=boundary, round_between_passes=round_between_passes)
    lr = imresize(hr, output_shape=(h // scale, w // scale), **kw)
    lr_up = imresize(lr, output_shape=(h, w), **kw)
    return lr, lr_up


# ====================================================================== SPARNetHD blind degradation
#: Spec 002 section 4.3. Sizes (sigma, kernel sizes) are in pixels of a ``hr_ref_size`` (512)
#: HR image and are scaled to the actual HR size (set ``hr_ref_size=None`` to use them raw).
#: ``lr_frac``: LR side as a fraction of the HR side (paper: 16..128 of 512).
BLIND_PRESETS = {
    "paper": {
        "p_blur": 1.0, "blur_kinds": ("gaussian", "average", "median", "motion"),
        "gauss_sigma": (3.0, 15.0), "avg_k": (3, 15), "median_k": (3, 15), "motion_k": (5, 25),
        "lr_frac": (16 / 512, 128 / 512), "down_interp": ("bicubic",),
        "p_noise": 1.0, "noise_sigma": (0.0, 25.5), "p_noise_per_channel": 1.0,
        "p_jpeg": 1.0, "jpeg_quality": (15, 40),
        "p_gray": 0.0, "up_interp": "bicubic", "hr_ref_size": 512,
    },
    # released code (imgaug): probabilities and ranges of the official training script
    "released": {
        "p_blur": 0.5, "blur_kinds": ("gaussian", "average", "median", "motion"),
        "gauss_sigma": (3.0, 15.0), "avg_k": (3, 15), "median_k": (3, 15), "motion_k": (5, 25),
        "lr_frac": (64 / 512, 127 / 512), "down_interp": ("nearest", "linear", "area", "cubic"),
        "p_noise": 0.2, "noise_sigma": (0.0, 25.5), "p_noise_per_channel": 0.5,
        "p_jpeg": 0.7, "jpeg_quality": (35, 90),
        "p_gray": 0.3, "up_interp": "bicubic", "hr_ref_size": 512,
    },
}


def _odd(k: float) -> int:
    k = max(1, int(round(k)))
    return k if k % 2 == 1 else k + 1


def _motion_kernel(k: int, angle_deg: float) -> np.ndarray:
    import cv2

    ker = np.zeros((k, k), np.float32)
    ker[k // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((k - 1) / 2.0, (k - 1) / 2.0), angle_deg, 1.0)
    ker = cv2.warpAffine(ker, rot, (k, k), flags=cv2.INTER_LINEAR)
    s = ker.sum()
    return ker / s if s > 0 else np.full((k, k), 1.0 / (k * k), np.float32)


def blind_degrade(hr_uint8: np.ndarray, rng: np.random.Generator | int, preset: str | dict = "paper",
                  **overrides) -> dict:
    """SPARNetHD's random degradation (spec 002 eq. 14): blur -> downsample -> AWGN -> JPEG
    -> upsample back to the HR size.

    Returns ``{"hr", "lr", "lr_up", "params"}`` (uint8 arrays; ``hr`` differs from the input
    only when the ``released`` preset's random grayscale fired). Deterministic for a given
    seed / generator state."""
    import cv2

    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    cfg = dict(BLIND_PRESETS[preset]) if isinstance(preset, str) else dict(preset)
    cfg.update(overrides)
    hr = np.asarray(hr_uint8)
    h, w = hr.shape[:2]
    f = 1.0 if not cfg.get("hr_ref_size") else max(h, w) / float(cfg["hr_ref_size"])
    p: dict = {"preset": preset if isinstance(preset, str) else "custom"}

    if rng.random() < cfg["p_gray"]:
        g = cv2.cvtColor(hr, cv2.COLOR_RGB2GRAY)
        hr = np.repeat(g[..., None], 3, axis=2)
        p["gray"] = True
    x = hr.astype(np.float32)

    if rng.random() < cfg["p_blur"]:
        kind = cfg["blur_kinds"][int(rng.integers(len(cfg["blur_kinds"])))]
        p["blur"] = kind
        if kind == "gaussian":
            sigma = float(rng.uniform(*cfg["gauss_sigma"])) * f
            p["blur_sigma"] = sigma
            x = cv2.GaussianBlur(x, (0, 0), sigmaX=max(sigma, 1e-3), borderType=cv2.BORDER_REFLECT)
        elif kind == "average":
            k = _odd(rng.uniform(cfg["avg_k"][0], cfg["avg_k"][1]) * f)
            p["blur_k"] = k
            x = cv2.blur(x, (k, k), borderType=cv2.BORDER_REFLECT)
        elif kind == "median":
            k = _odd(rng.uniform(cfg["median_k"][0], cfg["median_k"][1]) * f)
            p["blur_k"] = k
            x = cv2.medianBlur(np.clip(x + 0.5, 0, 255).astype(np.uint8), k).astype(np.float32) if k > 1 else x
        elif kind == "motion":
            k = _odd(rng.uniform(cfg["motion_k"][0], cfg["motion_k"][1]) * f)
            ang = float(rng.uniform(0, 180))
            p["blur_k"], p["motion_angle"] = k, ang
            if k > 1:
                x = cv2.filter2D(x, -1, _motion_kernel(k, ang), borderType=cv2.BORDER_REFLECT)
        else:
            raise ValueError(f"unknown blur kind {kind}")

    frac = float(rng.uniform(*cfg["lr_frac"]))
    lh, lw = max(2, int(round(h * frac))), max(2, int(round(w * frac)))
    interp = cfg["down_interp"][int(rng.integers(len(cfg["down_interp"])))]
    p["lr_size"], p["down_interp"] = (lh, lw), interp
    if interp == "bicubic":
        lr = imresize(x, output_shape=(lh, lw))
    else:
        flag = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA,
                "cubic": cv2.INTER_CUBIC}[interp]
        lr = cv2.resize(x, (lw, lh), interpolation=flag)

    if rng.random() < cfg["p_noise"]:
        sigma = float(rng.uniform(*cfg["noise_sigma"]))
        per_channel = rng.random() < cfg["p_noise_per_channel"]
        shape = lr.shape if per_channel else lr.shape[:2] + (1,)
        lr = lr + rng.normal(0.0, sigma, size=shape).astype(np.float32)
        p["noise_sigma"], p["noise_per_channel"] = sigma, bool(per_channel)
    lr = np.clip(np.floor(lr + 0.5), 0, 255).astype(np.uint8)

    if rng.random() < cfg["p_jpeg"]:
        q = int(rng.integers(cfg["jpeg_quality"][0], cfg["jpeg_quality"][1] + 1))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(lr, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), q])
        lr = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        p["jpeg_quality"] = q

    lr_up = imresize(lr, output_shape=(h, w))
    return {"hr": hr, "lr": lr, "lr_up": lr_up, "params": p}


# ====================================================================== the stage
def _params(params: dict | None) -> dict:
    from fsrlib.config import stage_section

    return stage_section(params, "degrade", DEFAULTS)


def _degrade_one(job):
    from PIL import Image

    from fsrlib.io import save_image

    src, dests, scales, boundary, rbp = job
    hr = np.asarray(Image.open(src).convert("RGB"))
    for s in scales:
        lr, lr_up = degrade(hr, s, boundary=boundary, round_between_passes=rbp)
        save_image(dests[s][0], lr)
        save_image(dests[s][1], lr_up)
    return str(src)


def degrade_all(faces_root="data/faces", out_root="data/lr", params: dict | None = None,
                faces=None, progress: bool = True):
    """The degrade stage: for each face in ``faces.csv`` and each scale ``s`` in
    ``params['scales']`` write ``{out_root}/x{s}/{dataset}/{name}.png`` (LR) and
    ``{out_root}/x{s}/up/{dataset}/{name}.png`` (LR bicubic-upsampled to the HR size).

    Returns a DataFrame (name, dataset, scale, lr, lr_up) of relative paths."""
    import pandas as pd

    from fsrlib.data.align import read_faces

    cfg = _params(params)
    faces_root, out_root = Path(faces_root), Path(out_root)
    df = read_faces(faces_root) if faces is None else faces
    scales = [int(s) for s in cfg["scales"]]
    jobs, rows = [], []
    for r in df.itertuples(index=False):
        dests = {}
        for s in scales:
            lr = out_root / f"x{s}" / r.dataset / f"{r.name}.png"
            up = out_root / f"x{s}" / "up" / r.dataset / f"{r.name}.png"
            dests[s] = (lr, up)
            rows.append({"name": r.name, "dataset": r.dataset, "scale": s,
                         "lr": lr.relative_to(out_root).as_posix(), "lr_up": up.relative_to(out_root).as_posix()})
        jobs.append((faces_root / r.dataset / f"{r.name}.png", dests, scales, cfg["boundary"],
                     bool(cfg["round_between_passes"])))
    _run_jobs(_degrade_one, jobs, int(cfg.get("workers", 1)), progress, "degrade")
    from fsrlib.io import write_manifest

    for s in scales:  # per scale: a run at x8 depends on data/lr/x8/MANIFEST.md5 only
        write_manifest(out_root / f"x{s}")
    return pd.DataFrame(rows)


def _run_jobs(fn, jobs, workers: int, progress: bool, desc: str):
    from tqdm import tqdm

    results = []
    if workers <= 1 or len(jobs) < 16:
        for j in tqdm(jobs, desc=desc, disable=not progress):
            results.append(fn(j))
        return results
    from fsrlib.data.align import mp_context

    with mp_context().Pool(workers) as pool:
        for res in tqdm(pool.imap(fn, jobs, chunksize=8), total=len(jobs), desc=desc, disable=not progress):
            results.append(res)
    return results
