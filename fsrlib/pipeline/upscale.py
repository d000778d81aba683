"""``fsr upscale``: super-resolve every face of one photo with a trained model and paste the
results back.

What it shows
    The model's work on a face ``scale`` times smaller than the one in the photo. Each face of
    the photo is treated as the **HR**: it is aligned to the 128x128 template exactly as the
    prepare stage aligns the training faces, its LR is made from that aligned crop with the
    degrade stage's MATLAB ``imresize`` bicubic (``128/scale`` px: 16x16 at x8), and the model
    super-resolves that LR back to 128x128. So the pasted face is *not* a sharper version of
    the photo (the model never sees the photo's own pixels at full size): it is what the model
    recovers from a ``scale``-times smaller face, shown in place.

Steps
    1. detection: dlib's HOG frontal detector (the prepare stage's settings: image shrunk to
       ``detect_max_side``, tried again upsampled when nothing is found) finds **every** face,
       ordered largest first; 68 landmarks each;
    2. alignment: the least-squares similarity of eye and mouth centres onto the template
       (``prepare.margin`` of params.yaml when present, else the default), crop warped with
       :meth:`fsrlib.data.align.FaceAligner.warp`;
    3. LR: :func:`fsrlib.data.degrade.degrade` of the uint8 crop (``lr`` and ``lr_up``, the
       model takes the one its ``input_kind`` says); SR: the run's predictor (prior network
       included), clamped and rounded to uint8;
    4. paste-back: the SR crop is warped into the photo with the inverse similarity (bicubic)
       and blended through a feathered mask (1 in the middle of the crop, a smooth ramp to 0 over
       the outer ~18% of each side), so the photo is unchanged outside the faces' crops.

Outputs (``out`` default: ``./<photo stem>_fsr_<method>_x<scale>.png`` in the current folder)
    (a) ``out``: the photo, same size, faces replaced;
    (b) ``<out stem>_side_by_side<suffix>``: original | result on top (shrunk to at most 1024 px
        a side), then one row per face (the 8 largest): LR nearest-upscaled | SR | aligned
        original, 256 px tiles.

A photo without a face raises :class:`~fsrlib.pipeline.folder.NoFaceError` (the ``fsr``
command prints the message and exits with code 2) and writes nothing. The default checkpoint
is ``runs/<method>-x<scale>/model.pt``; a missing one says which run to train.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.align import FaceAligner, apply_transform, key_points, similarity_from_points
from ..data.degrade import degrade
from ..inference import resolve_device
from ..io import BadImage, read_image, save_image, to_uint8
from ..registry import ConfigError
from ..settings import stage_settings
from .folder import NoFaceError, UnusableInput, load_params_if_present, load_predictor, resolve_checkpoint

__all__ = ["upscale_photo", "paste_face", "feather_mask", "UpscaleResult"]

TILE = 256          # side-by-side face tile size (px)
MAX_SIDE = 1024     # side-by-side: original and result shrunk to at most this
MAX_FACE_ROWS = 8   # side-by-side: face rows shown (largest faces)


@dataclass
class UpscaleResult:
    """Paths written and, per face (largest first), ``box`` (l, t, r, b in photo px),
    ``landmarks`` (68x2, photo px), ``M`` (2x3 photo -> crop), ``aligned``, ``lr``, ``sr``
    (uint8 HxWx3)."""

    photo: Path
    side_by_side: Path
    faces: list = field(default_factory=list)

    def __str__(self) -> str:  # what `fsr upscale` prints after "wrote"
        n = len(self.faces)
        return f"{self.photo} and {self.side_by_side} ({n} face{'s' if n != 1 else ''})"

    def __fspath__(self) -> str:
        return str(self.photo)


# ====================================================================== paste-back
def feather_mask(size: int, inset: float = 0.04, ramp: float = 0.14) -> np.ndarray:
    """``size x size`` float32 blending mask of an aligned crop: 0 on the outer ``inset`` of each
    side, a smoothstep ramp over the next ``ramp``, 1 inside (fractions of ``size``)."""
    x = np.arange(size, dtype=np.float64) + 0.5
    d = np.minimum(x, size - x) / size                      # distance to the nearest edge
    t = np.clip((d - inset) / ramp, 0.0, 1.0)
    r = t * t * (3.0 - 2.0 * t)
    return (r[:, None] * r[None, :]).astype(np.float32)


def paste_face(photo: np.ndarray, face: np.ndarray, m: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Blend the crop ``face`` (made with the photo -> crop similarity ``m``) back into
    ``photo`` (HxWx3 uint8, modified in place and returned) through ``mask``
    (:func:`feather_mask` by default). Pixels the mask does not reach are left unchanged."""
    size = face.shape[0]
    mask = feather_mask(size) if mask is None else mask
    inv = cv2.invertAffineTransform(np.asarray(m, np.float64))
    c = apply_transform(inv, np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]]))
    h, w = photo.shape[:2]
    x0, y0 = max(0, math.floor(c[:, 0].min()) - 1), max(0, math.floor(c[:, 1].min()) - 1)
    x1, y1 = min(w, math.ceil(c[:, 0].max()) + 2), min(h, math.ceil(c[:, 1].max()) + 2)
    if x1 <= x0 or y1 <= y0:
        return photo
    # region-of-interest pixel (u, v) is photo pixel (u + x0, v + y0); crop = m @ photo
    mr = np.asarray(m, np.float64).copy()
    mr[:, 2] += mr[:, :2] @ np.array([x0, y0], np.float64)
    flags = cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(np.ascontiguousarray(face), mr, (x1 - x0, y1 - y0), flags=cv2.INTER_CUBIC | flags,
                            borderMode=cv2.BORDER_REPLICATE)
    wmask = cv2.warpAffine(mask, mr, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | flags,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    a = np.clip(wmask, 0.0, 1.0)[..., None]
    roi = photo[y0:y1, x0:x1].astype(np.float32)
    out = a * warped.astype(np.float32) + (1.0 - a) * roi
    photo[y0:y1, x0:x1] = np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
    return photo


# ====================================================================== side-by-side
def _label(img: np.ndarray, text: str, band: int = 22) -> np.ndarray:
    out = np.full((img.shape[0] + band, img.shape[1], 3), 255, np.uint8)
    out[band:] = img
    cv2.putText(out, text, (4, band - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _hstack(imgs: list[np.ndarray], gap: int = 8) -> np.ndarray:
    h = max(i.shape[0] for i in imgs)
    parts = []
    for k, i in enumerate(imgs):
        if k:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
        parts.append(np.pad(i, ((0, h - i.shape[0]), (0, 0), (0, 0)), constant_values=255))
    return np.concatenate(parts, axis=1)


def _vstack(imgs: list[np.ndarray], gap: int = 8) -> np.ndarray:
    w = max(i.shape[1] for i in imgs)
    parts = []
    for k, i in enumerate(imgs):
        if k:
            parts.append(np.full((gap, w, 3), 255, np.uint8))
        parts.append(np.pad(i, ((0, 0), (0, w - i.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(parts, axis=0)


def _nearest(img: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(img, (side, side), interpolation=cv2.INTER_NEAREST)


def side_by_side(original: np.ndarray, result: np.ndarray, faces: list[dict], method: str, scale: int) -> np.ndarray:
    """original | result, then per face: LR (nearest) | SR | aligned original."""
    h, w = original.shape[:2]
    f = min(1.0, MAX_SIDE / max(h, w))
    if f < 1.0:
        size = (max(1, round(w * f)), max(1, round(h * f)))
        original, result = (cv2.resize(i, size, interpolation=cv2.INTER_AREA) for i in (original, result))
    rows = [_hstack([_label(original, "original"), _label(result, f"{method} x{scale}, faces pasted back")])]
    for k, fc in enumerate(faces[:MAX_FACE_ROWS]):
        lr_side = fc["lr"].shape[0]
        rows.append(_hstack([
            _label(_nearest(fc["lr"], TILE), f"face {k + 1}: LR {lr_side}x{lr_side} (nearest)"),
            _label(_nearest(fc["sr"], TILE), f"SR ({method})"),
            _label(_nearest(fc["aligned"], TILE), "aligned original (HR)"),
        ]))
    return _vstack(rows)


# ====================================================================== the tool
def upscale_photo(photo: str | Path, method: str, scale: int, checkpoint: str | Path | None = None,
                  out: str | Path | None = None, device: str | None = "auto",
                  params_path: str | Path | None = "params.yaml") -> UpscaleResult:
    """Super-resolve every face of ``photo`` with a trained ``method`` x``scale`` model (the
    module docstring says what that shows) and write the photo with the faces replaced and a
    side-by-side image. ``checkpoint``: a model.pt or run folder (default
    ``runs/<method>-x<scale>/model.pt``); ``params_path``: prepare / degrade settings, when the
    file exists (else the defaults)."""
    photo = Path(photo)
    if not photo.is_file():
        raise FileNotFoundError(f"{photo}: no such photo")
    params = load_params_if_present(params_path)
    tr = params.get("train") or {}
    ck = resolve_checkpoint(checkpoint, method, scale, tr.get("runs_root", "runs"))
    out = Path(out) if out is not None else Path.cwd() / f"{photo.stem}_fsr_{method}_x{scale}.png"
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--out {out}: give a .png or .jpg file name")
    if out.resolve() == photo.resolve():
        raise ConfigError(f"--out {out} would overwrite the input photo")
    side_path = out.with_name(f"{out.stem}_side_by_side{out.suffix}")
    device = resolve_device(device)
    predictor = load_predictor(ck, device)

    try:
        rgb, _ = read_image(photo)
    except BadImage as e:
        raise UnusableInput(f"{photo}: cannot use this photo ({e})") from e
    pc, dc = stage_settings(params.get("prepare"), "prepare"), stage_settings(params.get("degrade"), "degrade")
    aligner = FaceAligner(pc["hr_size"], pc["margin"], pc["detect_max_side"], pc["detect_upsample"])
    faces = aligner.detect_all(rgb)
    if not faces:
        raise NoFaceError(f"no face found in {photo} ({rgb.shape[1]}x{rgb.shape[0]} px; dlib HOG frontal detector, "
                          f"also upsampled {pc['detect_upsample']}x): nothing to super-resolve, nothing written")

    # align, degrade, super-resolve (one batch)
    for fc in faces:
        fc["M"] = similarity_from_points(key_points(fc["landmarks"]), aligner.template)
        fc["aligned"] = aligner.warp(rgb, fc["M"])
        fc["lr"], fc["lr_up"] = degrade(fc["aligned"], ck.scale, boundary=dc["boundary"],
                                        round_between_passes=bool(dc["round_between_passes"]))

    def t(key):
        return torch.from_numpy(np.stack([fc[key] for fc in faces])).permute(0, 3, 1, 2).float().div(255.0).to(device)

    with torch.no_grad():
        sr = predictor({"lr": t("lr"), "lr_up": t("lr_up")}).float().clamp(0, 1)
    for fc, s in zip(faces, to_uint8(sr)):
        fc["sr"] = s

    # paste back (largest first, smaller faces after, so they stay whole where crops overlap) and write
    result = rgb.copy()
    mask = feather_mask(faces[0]["sr"].shape[0])
    for fc in faces:
        paste_face(result, fc["sr"], fc["M"], mask)
    save_image(out, result)
    save_image(side_path, side_by_side(rgb, result, faces, method, ck.scale))
    keep = ("box", "landmarks", "score", "M", "aligned", "lr", "sr")
    return UpscaleResult(photo=out, side_by_side=side_path, faces=[{k: fc[k] for k in keep} for fc in faces])
