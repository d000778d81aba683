"""``fsr upscale``: super-resolve the faces of a photo (or of every photo of a folder) with a
trained model and paste the results back.

Two modes
    default (a real low-resolution photo): the photo *is* the LR. Each face is aligned to the
    model's LR frame (``128/scale`` px: 16x16 at x8, the training template scaled down) at its
    native size: the aligned crop is resampled (area-reduced) only when the face is larger than
    that frame. The model super-resolves it to 128x128 and the SR face is pasted into the photo
    enlarged ``scale`` times (bicubic elsewhere). A face smaller than the LR frame (more than
    :data:`SMALL_TOLERANCE`) is skipped with a message that gives its size; when every face
    is, nothing is written (:class:`FaceTooSmall`, exit code 2).
    ``--simulate``: the model's work on a face ``scale`` times smaller than the one in the
    photo. Each face is treated as the **HR**: aligned to the 128x128 template as the prepare
    stage aligns training faces, its LR made with the degrade stage's MATLAB ``imresize``
    bicubic, super-resolved back to 128x128 and pasted in place (the photo keeps its size).

Steps
    1. detection: dlib's HOG frontal detector (the prepare stage's settings: image shrunk to
       ``detect_max_side``, tried again upsampled when nothing is found; then on the photo
       enlarged 2, 4, 8 times, for small faces) finds **every** face, largest first; 68
       landmarks each;
    2. alignment: the least-squares similarity of eye and mouth centres onto the template
       (``prepare.margin`` of params.yaml when present, else the default), crop warped with
       :meth:`fsrlib.data.align.FaceAligner.warp`;
    3. SR: the run's predictor (prior network included; ``lr_up`` = MATLAB bicubic of the LR
       for the models that take it), clamped and rounded to uint8;
    4. paste-back: the SR crop is warped into the (enlarged) photo with the inverse similarity
       (bicubic) and blended through a feathered mask (1 in the middle of the crop, a smooth
       ramp to 0 over the outer ~18% of each side).

Outputs (``out`` default: ``./<photo stem>_fsr_<method>_x<scale>.png`` in the current folder;
for a folder, ``./<folder>_fsr_<method>_x<scale>/<photo stem>.png``)
    (a) ``out``: the photo with the faces replaced (default mode: ``scale`` times larger);
    (b) ``<out stem>_side_by_side<suffix>``: input | result on top (shrunk to at most 1024 px
        a side), then one row per face (the 8 largest): LR nearest-upscaled | SR | aligned
        original (``--simulate``) or bicubic enlargement (default), 256 px tiles.

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
from tqdm.auto import tqdm

from ..data.align import FaceAligner, apply_transform, key_points, similarity_from_points
from ..data.degrade import degrade
from ..imresize import imresize
from ..inference import resolve_device
from ..io import BadImage, read_image, save_image, to_uint8
from ..registry import ConfigError
from ..settings import stage_settings
from .folder import NoFaceError, UnusableInput, load_params_if_present, load_predictor, resolve_checkpoint

__all__ = ["upscale_photo", "upscale_folder", "paste_face", "feather_mask", "face_size_in_lr_frame", "UpscaleResult",
           "FaceTooSmall"]

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


def side_by_side(original: np.ndarray, result: np.ndarray, faces: list[dict], method: str, scale: int,
                 real: bool = False) -> np.ndarray:
    """original | result, then per face: LR (nearest) | SR | aligned original (``real``: the
    original enlarged by bicubic, and the face's bicubic enlargement in the last tile)."""
    h, w = original.shape[:2]
    f = min(1.0, MAX_SIDE / max(h, w))
    if f < 1.0:
        size = (max(1, round(w * f)), max(1, round(h * f)))
        original, result = (cv2.resize(i, size, interpolation=cv2.INTER_AREA) for i in (original, result))
    first = f"photo x{scale} (bicubic)" if real else "original"
    rows = [_hstack([_label(original, first), _label(result, f"{method} x{scale}, faces pasted back")])]
    for k, fc in enumerate(faces[:MAX_FACE_ROWS]):
        lr_side = fc["lr"].shape[0]
        rows.append(_hstack([
            _label(_nearest(fc["lr"], TILE), f"face {k + 1}: LR {lr_side}x{lr_side} (nearest)"),
            _label(_nearest(fc["sr"], TILE), f"SR ({method})"),
            _label(_nearest(fc["aligned"], TILE), f"bicubic x{scale}" if real else "aligned original (HR)"),
        ]))
    return _vstack(rows)


# ====================================================================== the tool
DETECT_ZOOMS = (2, 4, 8)    # small faces: detection retried on the photo enlarged (bicubic) this much
DETECT_MAX_PIXELS = 16e6    # ... while the enlarged copy stays under this many pixels
SMALL_TOLERANCE = 1.1       # a face up to 10% smaller than the LR frame is still accepted (mildly enlarged)
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class FaceTooSmall(UnusableInput):
    """Every face found is smaller than the model's LR input (``--simulate`` works on any face)."""


@dataclass
class _Tool:
    """What one ``fsr upscale`` needs for each photo: checkpoint, predictor, aligners, settings."""

    ck: object
    predictor: object
    aligner: FaceAligner
    dc: dict
    device: str
    method: str


def _tool(method: str, scale: int, checkpoint, device, params_path) -> _Tool:
    params = load_params_if_present(params_path)
    tr = params.get("train") or {}
    ck = resolve_checkpoint(checkpoint, method, scale, tr.get("runs_root", "runs"))
    device = resolve_device(device)
    predictor = load_predictor(ck, device)
    pc, dc = stage_settings(params.get("prepare"), "prepare"), stage_settings(params.get("degrade"), "degrade")
    aligner = FaceAligner(pc["hr_size"], pc["margin"], pc["detect_max_side"], pc["detect_upsample"])
    return _Tool(ck, predictor, aligner, dc, device, method)


def _read(photo: Path) -> np.ndarray:
    try:
        rgb, _ = read_image(photo)
    except BadImage as e:
        raise UnusableInput(f"{photo}: cannot use this photo ({e})") from e
    return rgb


def _out_paths(photo: Path, out, method: str, scale: int) -> tuple[Path, Path]:
    out = Path(out) if out is not None else Path.cwd() / f"{photo.stem}_fsr_{method}_x{scale}.png"
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--out {out}: give a .png or .jpg file name")
    if out.resolve() == photo.resolve():
        raise ConfigError(f"--out {out} would overwrite the input photo")
    return out, out.with_name(f"{out.stem}_side_by_side{out.suffix}")


def _detect(aligner: FaceAligner, rgb: np.ndarray) -> list[dict]:
    """Every face, largest first; a photo with small faces is searched again enlarged
    (:data:`DETECT_ZOOMS`), the landmarks brought back to the photo's pixels."""
    faces = aligner.detect_all(rgb)
    h, w = rgb.shape[:2]
    for z in DETECT_ZOOMS:
        if faces or h * w * z * z > DETECT_MAX_PIXELS:
            break
        big = cv2.resize(rgb, (w * z, h * z), interpolation=cv2.INTER_CUBIC)
        keep, aligner.detect_max_side = aligner.detect_max_side, max(aligner.detect_max_side, max(h, w) * z)
        try:
            faces = aligner.detect_all(big)
        finally:
            aligner.detect_max_side = keep
        for fc in faces:
            fc["landmarks"] = (fc["landmarks"] + 0.5) / z - 0.5
            fc["box"] = tuple(int(round(v / z)) for v in fc["box"])
            fc["side"] = fc["side"] / z
    return faces


def _super_resolve(tool: _Tool, faces: list[dict]) -> None:
    def t(key):
        return torch.from_numpy(np.stack([fc[key] for fc in faces])).permute(0, 3, 1, 2).float().div(255.0).to(
            tool.device)

    with torch.no_grad():
        sr = tool.predictor({"lr": t("lr"), "lr_up": t("lr_up")}).float().clamp(0, 1)
    for fc, s in zip(faces, to_uint8(sr)):
        fc["sr"] = s


def _simulate(tool: _Tool, photo: Path, rgb: np.ndarray, faces: list[dict], out: Path, side_path: Path):
    """The old behaviour: each face is the HR; its LR is made from the aligned crop."""
    aligner, dc, scale = tool.aligner, tool.dc, tool.ck.scale
    for fc in faces:
        fc["M"] = similarity_from_points(key_points(fc["landmarks"]), aligner.template)
        fc["aligned"] = aligner.warp(rgb, fc["M"])
        fc["lr"], fc["lr_up"] = degrade(fc["aligned"], scale, boundary=dc["boundary"],
                                        round_between_passes=bool(dc["round_between_passes"]))
    _super_resolve(tool, faces)
    # paste back (largest first, smaller faces after, so they stay whole where crops overlap) and write
    result = rgb.copy()
    mask = feather_mask(faces[0]["sr"].shape[0])
    for fc in faces:
        paste_face(result, fc["sr"], fc["M"], mask)
    save_image(out, result)
    save_image(side_path, side_by_side(rgb, result, faces, tool.method, scale))
    return result


def face_size_in_lr_frame(m_lr: np.ndarray) -> float:
    """How many LR-frame pixels one photo pixel spans under the photo -> LR-frame similarity
    ``m_lr``: above 1, the face is smaller than the model's LR input."""
    return float(np.hypot(m_lr[0, 0], m_lr[1, 0]))


def _real(tool: _Tool, photo: Path, rgb: np.ndarray, faces: list[dict], out: Path, side_path: Path):
    """The photo is the LR: each face aligned to the model's LR frame at its native size,
    super-resolved, pasted into the photo enlarged ``scale`` times."""
    scale, dc = tool.ck.scale, tool.dc
    hr = tool.aligner.hr_size
    lr_side = hr // scale
    lr_aligner = FaceAligner(lr_side, tool.aligner.margin)  # the same template in the LR frame
    used, skipped = [], []
    for k, fc in enumerate(faces):
        m_lr = similarity_from_points(key_points(fc["landmarks"]), lr_aligner.template)
        f = face_size_in_lr_frame(m_lr)
        crop_side = lr_side / f  # photo pixels the LR frame covers
        if f > SMALL_TOLERANCE:
            skipped.append(f"face {k + 1} at {tuple(int(v) for v in fc['box'][:2])}: its crop is {crop_side:.1f} px "
                           f"(face ~{fc['side']:.0f} px wide), smaller than the model's {lr_side}x{lr_side} LR input "
                           f"at x{scale}")
            continue
        fc["lr"] = lr_aligner.warp(rgb, m_lr)   # native size, area-reduced only when the face is larger
        fc["lr_up"] = imresize(fc["lr"], output_shape=(hr, hr), boundary=dc["boundary"],
                               round_between_passes=bool(dc["round_between_passes"]))
        fc["aligned"] = fc["lr_up"]
        lm_up = (fc["landmarks"] + 0.5) * scale - 0.5
        fc["M"] = similarity_from_points(key_points(lm_up), tool.aligner.template)  # enlarged photo -> SR frame
        fc["crop_side"] = crop_side
        used.append(fc)
    if not used:
        raise FaceTooSmall(f"{photo}: every face is too small for this model: " + "; ".join(skipped)
                           + f". Use a model of a smaller scale, or --simulate to see the model on a face made "
                             f"{scale}x smaller; nothing written")
    for msg in skipped:
        print(f"fsr upscale: {photo.name}: skipped {msg}")
    _super_resolve(tool, used)
    h, w = rgb.shape[:2]
    big = cv2.resize(rgb, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    result = big.copy()
    mask = feather_mask(hr)
    for fc in used:
        paste_face(result, fc["sr"], fc["M"], mask)
    save_image(out, result)
    save_image(side_path, side_by_side(big, result, used, tool.method, scale, real=True))
    return used


def upscale_photo(photo: str | Path, method: str, scale: int, checkpoint: str | Path | None = None,
                  out: str | Path | None = None, device: str | None = "auto",
                  params_path: str | Path | None = "params.yaml", simulate: bool = False,
                  tool: _Tool | None = None) -> UpscaleResult:
    """Super-resolve every face of ``photo`` with a trained ``method`` x``scale`` model and
    write the result and a side-by-side image (the module docstring says what each mode
    shows). Default: the photo is the LR, the result is the photo enlarged ``scale`` times
    with each face super-resolved; ``simulate``: each face is the HR, degraded and
    super-resolved, pasted into the photo at its size. ``checkpoint``: a model.pt or run
    folder (default ``runs/<method>-x<scale>/model.pt``); ``params_path``: prepare / degrade
    settings, when the file exists (else the defaults)."""
    photo = Path(photo)
    if not photo.is_file():
        raise FileNotFoundError(f"{photo}: no such photo")
    tool = tool or _tool(method, scale, checkpoint, device, params_path)
    out, side_path = _out_paths(photo, out, method, tool.ck.scale)
    rgb = _read(photo)
    faces = _detect(tool.aligner, rgb)
    if not faces:
        raise NoFaceError(f"no face found in {photo} ({rgb.shape[1]}x{rgb.shape[0]} px; dlib HOG frontal detector, "
                          f"also on the photo enlarged up to {DETECT_ZOOMS[-1]}x): nothing to super-resolve, "
                          "nothing written")
    if simulate:
        _simulate(tool, photo, rgb, faces, out, side_path)
        used = faces
    else:
        used = _real(tool, photo, rgb, faces, out, side_path)
    keep = ("box", "landmarks", "score", "M", "aligned", "lr", "sr")
    return UpscaleResult(photo=out, side_by_side=side_path, faces=[{k: fc[k] for k in keep} for fc in used])


def upscale_folder(folder: str | Path, method: str, scale: int, checkpoint: str | Path | None = None,
                   out: str | Path | None = None, device: str | None = "auto",
                   params_path: str | Path | None = "params.yaml", simulate: bool = False,
                   progress: bool = True) -> dict:
    """Every photo of ``folder`` (not recursive; :data:`PHOTO_SUFFIXES`), with one model load
    and a progress bar; results in ``out`` (default ``./<folder>_fsr_<method>_x<scale>/``).
    A photo without a usable face is skipped with its reason. Returns ``{"written": [...],
    "skipped": {photo: reason}}``; raises :class:`UnusableInput` when nothing was written."""
    folder = Path(folder)
    photos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise UnusableInput(f"{folder}: no photo ({', '.join(PHOTO_SUFFIXES)}) in this folder")
    tool = _tool(method, scale, checkpoint, device, params_path)
    out = Path(out) if out is not None else Path.cwd() / f"{folder.resolve().name}_fsr_{method}_x{tool.ck.scale}"
    written, skipped = [], {}
    for p in tqdm(photos, desc="fsr upscale", unit="photo", disable=not progress):
        try:
            written.append(upscale_photo(p, method, scale, out=out / f"{p.stem}.png", simulate=simulate, tool=tool))
        except UnusableInput as e:
            skipped[p.name] = str(e)
    if not written:
        raise UnusableInput(f"{folder}: no photo could be used: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return {"written": written, "skipped": skipped, "out": out}
