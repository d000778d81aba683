"""Atomic writes, checksummed downloads, and image reading with explicit reject reasons.

Nothing here guesses: a download that cannot happen raises :class:`OfflineError` with what
to do; an image that cannot be used raises :class:`BadImage` with a reason code that the
prepare stage writes into its rejects table.
"""
from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm


# ====================================================================== atomic writes
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    A killed process leaves either the old file or the new one, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path, obj: Any, indent: int = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


def write_csv(path, df) -> Path:
    """Write a pandas DataFrame atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def save_image(path, img: np.ndarray) -> Path:
    """Save an HxWx3 (or HxW) uint8 array as PNG/JPEG, atomically."""
    if img.dtype != np.uint8:
        raise TypeError(f"save_image expects uint8, got {img.dtype}")
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG" if path.suffix.lower() == ".png" else "JPEG", quality=95)
    return path


def torch_save(obj, path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


# ====================================================================== float images -> uint8
def uint8_levels(x) -> torch.Tensor:
    """Images in [0, 1] (float tensor or array, any shape) -> float64 tensor of the uint8 levels
    0..255 they are stored as: clamped, ``floor(x * 255 + 0.5)`` computed in float64 (round half
    up, MATLAB ``im2uint8``). uint8 input is taken as it is.

    The one float-to-uint8 conversion of the project: the SR PNGs of the evaluate stage, the
    metrics (:func:`fsrlib.metrics.image.quantize`), figures and maps all go through it, so
    what is scored, saved and shown agrees to the level."""
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else torch.as_tensor(x)
    if t.dtype == torch.uint8:
        return t.to(torch.float64)
    if not torch.is_floating_point(t):
        raise TypeError(f"integer images must be uint8, got {t.dtype}")
    return t.to(torch.float64, copy=True).clamp_(0.0, 1.0).mul_(255.0).add_(0.5).floor_()


def to_uint8(x) -> np.ndarray:
    """:func:`uint8_levels` as a uint8 numpy array, channels last for tensors: ``(N,C,H,W)`` ->
    ``(N,H,W,C)``, ``(C,H,W)`` -> ``(H,W,C)``; numpy arrays and 2-D maps keep their layout."""
    was_tensor = torch.is_tensor(x)
    if was_tensor:
        x = x.detach().cpu()
    q = uint8_levels(x).to(torch.uint8)
    if was_tensor and q.dim() in (3, 4):
        q = q.permute(*range(q.dim() - 3), -2, -1, -3)
    return np.ascontiguousarray(q.numpy())


# ====================================================================== checksums and downloads
class OfflineError(RuntimeError):
    """A file that must be downloaded is not here and cannot be fetched."""


class ChecksumError(RuntimeError):
    pass


def sha256sum(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def md5sum(path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def cache_dir() -> Path:
    """Where downloaded weights live: ``$FSR_CACHE`` or ``~/.cache/fsrlib``."""
    return Path(os.environ.get("FSR_CACHE", Path.home() / ".cache" / "fsrlib"))


def verify(path, sha256: str | None = None, md5: str | None = None) -> None:
    if sha256 and sha256sum(path) != sha256:
        raise ChecksumError(f"{path}: sha256 mismatch (expected {sha256}); delete it and download again")
    if md5 and md5sum(path) != md5:
        raise ChecksumError(f"{path}: md5 mismatch (expected {md5}); delete it and download again")


def fetch(url: str, dest, sha256: str | None = None, md5: str | None = None, what: str = "file",
          offline_hint: str = "", timeout: float = 30.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (atomically) unless a verified copy is already there.

    Checksums are verified after download and on every reuse. With no network the error
    says which file is missing, where to put it, and ``offline_hint``."""
    dest = Path(dest)
    if dest.exists():
        verify(dest, sha256, md5)
        return dest
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            total = int(r.headers.get("Content-Length") or 0)
            with atomic_path(dest) as tmp, open(tmp, "wb") as f:
                bar = _bar(total, f"download {what}") if progress else None
                while chunk := r.read(1 << 20):
                    f.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                if bar is not None:
                    bar.close()
                f.flush()
                verify(tmp, sha256, md5)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        if isinstance(e, ChecksumError):
            raise
        raise OfflineError(
            f"cannot download {what} from {url} ({e.__class__.__name__}: {e}).\n"
            f"This machine looks offline. Put a copy at {dest}"
            + (f" (sha256 {sha256})" if sha256 else "")
            + (f"\n{offline_hint}" if offline_hint else "")
        ) from e
    return dest


def _bar(total, desc):
    return tqdm(total=total or None, unit="B", unit_scale=True, desc=desc, leave=False)


# ====================================================================== images
class BadImage(ValueError):
    """An image the pipeline cannot use. ``reason`` is a short code for the rejects table."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def read_image(path) -> tuple[np.ndarray, list[str]]:
    """Read an image as HxWx3 uint8 RGB, applying the project's rules.

    Returns ``(rgb, notes)`` where ``notes`` lists what was handled (``exif_rotated``,
    ``grayscale_to_rgb``, ``cmyk_to_rgb``, ``opaque_alpha_dropped``,
    ``semi_transparent_on_white`` (alpha between 1 and 254: composited on white),
    ``16bit_to_8bit``, ``palette_to_rgb``). Raises :class:`BadImage` with reason
    ``unreadable`` (missing, empty, truncated or not an image) or ``transparent`` (fully
    transparent pixels, alpha 0: there is no honest colour to put there).
    """
    path = Path(path)
    notes: list[str] = []
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadImage("unreadable", str(e)) from e
    if not data:
        raise BadImage("unreadable", "empty file")
    try:
        im = Image.open(_io.BytesIO(data))
        im.load()  # forces decoding: truncated files fail here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        msg = re.sub(r"<[^>]* at 0x[0-9a-fA-F]+>", "the file", str(e))  # no memory addresses in reports
        raise BadImage("unreadable", f"{e.__class__.__name__}: {msg}") from e

    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF: treat as unrotated
        orientation = 1
    if orientation not in (1, None):
        im = ImageOps.exif_transpose(im)
        notes.append("exif_rotated")

    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        notes.append("palette_to_rgb")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA"):
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() == 0:  # only a fully transparent pixel has no colour at all
            raise BadImage("transparent", f"{(alpha == 0).mean():.1%} of pixels are fully transparent")
        if alpha.min() < 255:  # semi-transparent: the photo as it shows on a white page
            a = alpha.astype(np.float32)[..., None] / 255.0
            rgb = np.asarray(im.convert("RGB"), np.float32)
            im = Image.fromarray(np.clip(rgb * a + 255.0 * (1.0 - a) + 0.5, 0, 255).astype(np.uint8))
            notes.append("semi_transparent_on_white")
        else:
            im = im.convert("RGB")
            notes.append("opaque_alpha_dropped")
    elif mode == "CMYK":
        im = im.convert("RGB")
        notes.append("cmyk_to_rgb")
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
        notes.append("16bit_to_8bit")
    elif mode in ("L", "1"):
        im = im.convert("RGB")
        notes.append("grayscale_to_rgb")
    elif mode != "RGB":
        try:
            im = im.convert("RGB")
        except Exception as e:
            raise BadImage("unreadable", f"unsupported mode {mode}") from e
        notes.append(f"{mode.lower()}_to_rgb")
    rgb = np.asarray(im, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BadImage("unreadable", f"unexpected shape {rgb.shape}")
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise BadImage("unreadable", f"image is {rgb.shape[1]}x{rgb.shape[0]} px")
    return np.ascontiguousarray(rgb), notes


def read_u8(path) -> np.ndarray:
    """A PNG written by the pipeline as a uint8 array: HxWx3 RGB, or HxW for a grey (``L``) map."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB") if im.mode != "L" else im)


def is_effectively_gray(rgb: np.ndarray, tol: int = 3) -> bool:
    """True when all three channels are (nearly) equal: a grayscale photo stored as RGB."""
    a = rgb.astype(np.int16)
    return bool(np.abs(a[..., 0] - a[..., 1]).max() <= tol and np.abs(a[..., 1] - a[..., 2]).max() <= tol)


MANIFEST = "MANIFEST.md5"


def write_manifest(root, name: str = MANIFEST) -> Path:
    """``root/MANIFEST.md5``: one ``md5  relative/path`` line per file below ``root`` (sorted).

    Pipeline stages depend on this one small file instead of a folder of thousands of images:
    any change of content changes the manifest, and DVC checks one file instead of thousands."""
    root = Path(root)
    lines = [f"{md5sum(p)}  {p.relative_to(root).as_posix()}" for p in sorted(root.rglob("*"))
             if p.is_file() and p.name != name and not p.name.startswith(".")]
    return write_text(root / name, "\n".join(lines) + "\n")


def copy_tree(src, dst) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
