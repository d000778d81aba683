"""Degradations of an HR face: the project's bicubic LR (:func:`degrade`) and the SPARNetHD
blind model (:func:`blind_degrade`); the resampler itself is :mod:`fsrlib.imresize`.

The conventions of the project (docs/conventions.md): ``LR = imresize(HR_uint8, 1/s)``
rounded to uint8, ``lr_up = imresize(LR_uint8, s)`` rounded to uint8 (:func:`degrade`).
The ``degrade`` stage that writes them for every face is :mod:`fsrlib.pipeline.degrade`;
its settings are :data:`DEFAULTS` (:data:`fsrlib.settings.STAGE_DEFAULTS`).
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ..imresize import imresize
from ..settings import STAGE_DEFAULTS

__all__ = ["degrade", "pil_degrade", "blind_degrade", "BLIND_PRESETS", "DEFAULTS"]

DEFAULTS = STAGE_DEFAULTS["degrade"]  # the degrade stage's settings


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


def pil_degrade(hr_uint8: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lr, lr_up)``, both uint8, by PIL's bicubic (``Image.resize(..., BICUBIC)``, antialiased
    when shrinking): the LR convention of the SPARNet-codebase evaluation scripts (CTCNet, WFEN,
    AMINet: 128 -> 16 -> 128), scored beside the project's MATLAB-imresize LR by the evaluate
    stage's ``pil_lr_testsets`` (reports/tables/protocol_sensitivity.md)."""
    hr = np.asarray(hr_uint8)
    if hr.dtype != np.uint8:
        raise TypeError(f"pil_degrade expects uint8 HR, got {hr.dtype}")
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"HR size {w}x{h} is not divisible by scale {scale}")
    lr = Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC)
    return np.asarray(lr), np.asarray(lr.resize((w, h), Image.BICUBIC))


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
