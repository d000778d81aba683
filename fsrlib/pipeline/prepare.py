"""The ``prepare`` stage: every raw photo aligned to the 128x128 template, or rejected with a reason.

:func:`prepare` runs :class:`fsrlib.data.align.FaceAligner` over the raw index (in a pool of
workers), splits CelebA by identity (:func:`fsrlib.data.align.split_identities`), marks
``helen50`` and writes ``data/faces/``: the faces, ``faces.csv``, ``landmarks.npz``,
``rejects.csv`` and ``MANIFEST.md5``; for CelebAMask-HQ faces also their human label maps,
warped with the face's own similarity (nearest neighbour) into fsrlib's classes:
``labels/celebamask/{name}.png`` (:mod:`fsrlib.data.celebamask`). The rules (template, rejects,
splits) are documented in :mod:`fsrlib.data.align`; its ``DEFAULTS`` are this stage's settings.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from ..data.align import FaceAligner, apply_transform, read_pts, split_identities
from ..data.celebamask import mask_file, to_fsrlib, warp_labels
from ..io import BadImage, atomic_path, is_effectively_gray, read_image, save_image, write_csv, write_manifest
from ..settings import stage_settings
from .pool import run_jobs

__all__ = ["prepare"]


_WORKER: dict = {}


def _init_worker(cfg):
    cv2.setNumThreads(1)
    _WORKER["aligner"] = FaceAligner(cfg["hr_size"], cfg["margin"], cfg["detect_max_side"], cfg["detect_upsample"])
    _WORKER["cfg"] = cfg


def _reject(job, reason, detail=""):
    return {"ok": False, "file": job["file"], "dataset": job["dataset"], "reason": reason, "detail": detail}


def _process(job) -> dict:
    """One raw image -> a face record or a reject record (runs in a worker)."""
    cfg, al = _WORKER["cfg"], _WORKER["aligner"]
    try:
        rgb, notes = read_image(job["path"])
    except BadImage as e:
        return _reject(job, e.reason, e.detail)
    if cfg["reject_grayscale"] and ("grayscale_to_rgb" in notes or is_effectively_gray(rgb)):
        return _reject(job, "grayscale", "single-channel photo" if "grayscale_to_rgb" in notes
                       else "RGB photo with equal channels")
    ext_index = job.get("face_extent_px")
    if ext_index is not None and np.isfinite(ext_index) and ext_index < cfg["min_face_size"]:
        return _reject(job, "too_small", f"face_extent_px {ext_index:.0f} < {cfg['min_face_size']} (index)")
    gt = None
    if job.get("pts"):
        try:
            gt = read_pts(job["pts"])
            if gt.shape != (68, 2):
                notes.append(f"pts_shape={gt.shape}")
                gt = None
        except (OSError, ValueError, StopIteration) as e:
            notes.append(f"pts_unreadable:{e.__class__.__name__}")
            gt = None
    r = al.align(rgb, gt_landmarks=gt, use_gt_if_missed=bool(cfg["helen_gt_fallback"]))
    if not r["ok"]:
        return _reject(job, r["reason"], r["detail"])
    extent = r["extent"]
    if not (ext_index is not None and np.isfinite(ext_index)) and extent < cfg["min_face_size"]:
        return _reject(job, "too_small", f"detected landmark extent {extent:.0f} px < {cfg['min_face_size']}")
    img = r["image"]
    black = float((img.max(axis=2) == 0).mean())
    if black > cfg["max_black_frac"]:
        return _reject(job, "out_of_frame", f"{black:.0%} of the crop is outside the photo (black)")
    if job.get("mask"):  # human labels (CelebAMask-HQ): the same similarity, nearest neighbour
        try:
            mask = np.asarray(Image.open(job["mask"]))
        except OSError as e:
            return _reject(job, "unreadable", f"label map: {e.__class__.__name__}")
        if mask.shape[:2] != rgb.shape[:2] or "exif_rotated" in notes:
            return _reject(job, "unreadable", f"label map {mask.shape[:2]} != image {rgb.shape[:2]}")
        save_image(job["labels_out"], warp_labels(to_fsrlib(mask), r["M"], img.shape[0]))
    save_image(job["out"], img)
    gt128 = apply_transform(r["M"], gt) if gt is not None else np.full((68, 2), np.nan)
    return {
        "ok": True, "file": job["file"], "dataset": job["dataset"], "name": job["name"],
        "score": r["score"], "det_size": r["det_size"], "extent_px": extent, "n_faces": r["n_faces"],
        "black_frac": round(black, 4), "notes": ";".join(notes + r["notes"]),
        "landmarks": r["landmarks"].astype(np.float32), "gt": gt128.astype(np.float32),
        "M": r["M"].astype(np.float32),
    }


def _jobs(raw_index, raw_root: Path, out_root: Path) -> list[dict]:
    jobs = []
    for r in raw_index.itertuples(index=False):
        name = Path(r.file).stem
        ext = getattr(r, "face_extent_px", None)
        ext = float(ext) if ext is not None and not (isinstance(ext, float) and math.isnan(ext)) else None
        pts = None
        if bool(getattr(r, "has_pts", False)):
            pts = str(raw_root / Path(r.file).with_suffix(".pts"))
        job = {"file": r.file, "dataset": r.dataset, "name": name, "path": str(raw_root / r.file),
               "face_extent_px": ext, "pts": pts, "out": str(out_root / r.dataset / f"{name}.png")}
        if r.dataset == "celebamask":  # human label maps -> {out_root}/labels/celebamask/{name}.png
            job["mask"] = str(raw_root / mask_file(r.file))
            job["labels_out"] = str(out_root / "labels" / r.dataset / f"{name}.png")
        jobs.append(job)
    return jobs


def prepare(raw_index, out_root="data/faces", params: dict | None = None, progress: bool = True,
            raw_root="data/raw"):
    """The prepare stage: align every raw image of ``raw_index`` (the DataFrame of
    :func:`fsrlib.pipeline.download.index_raw`) into ``{out_root}/{dataset}/{name}.png``.

    Writes ``faces.csv``, ``landmarks.npz`` (``keys`` "dataset/name", ``detected`` and
    ``gt`` (N,68,2) float32 in the crop frame, NaN where no ground truth, ``M`` (N,2,3)
    source -> crop) and ``rejects.csv``. Returns ``(faces_df, rejects_df)``.
    ``params``: the ``prepare`` section of params.yaml (see :data:`fsrlib.data.align.DEFAULTS`)."""
    cfg = stage_settings(params, "prepare")
    raw_root, out_root = Path(raw_root), Path(out_root)
    idx = raw_index.reset_index(drop=True)
    jobs = _jobs(idx, raw_root, out_root)

    results = run_jobs(_process, jobs, int(cfg.get("workers", 1)), progress, "prepare", initializer=_init_worker,
                       initargs=(cfg,), chunksize=16, min_jobs=32)

    # splits (from the raw index, before rejects)
    id_split = {}
    if "identity" in idx.columns:
        cel = idx[(idx.dataset == "celeba") & idx.identity.notna()]
        id_split = split_identities(cel.identity.astype(int), cfg["split_fractions"], cfg["split_seed"])
    info = {r.file: r for r in idx.itertuples(index=False)}

    rows, lms, gts, ms, rej = [], [], [], [], []
    for res in results:
        if not res["ok"]:
            rej.append({k: res[k] for k in ("file", "dataset", "reason", "detail")})
            continue
        r = info[res["file"]]
        ident = getattr(r, "identity", None)
        ident = int(ident) if ident is not None and not pd.isna(ident) else None
        if res["dataset"] == "celeba":
            split = id_split.get(ident, "train") if ident is not None else "train"
        else:
            split = str(getattr(r, "orig_split", "") or "train")
        ext_index = getattr(r, "face_extent_px", None)
        rows.append({
            "name": res["name"], "dataset": res["dataset"], "split": split,
            "identity": ident, "file": res["file"], "score": res["score"], "det_size": res["det_size"],
            "extent_px": round(res["extent_px"], 1), "face_extent_px": ext_index,
            "n_faces": res["n_faces"], "black_frac": res["black_frac"], "notes": res["notes"],
        })
        lms.append(res["landmarks"])
        gts.append(res["gt"])
        ms.append(res["M"])
    faces = pd.DataFrame(rows, columns=["name", "dataset", "split", "identity", "file", "score", "det_size",
                                        "extent_px", "face_extent_px", "n_faces", "black_frac", "notes"])
    faces["identity"] = faces["identity"].astype("Int64")
    # helen50: the first n kept Helen test faces in file-name order
    faces["helen50"] = False
    ht = faces[(faces.dataset == "helen") & (faces.split == "test")].sort_values("name")
    faces.loc[ht.index[: int(cfg["helen50_n"])], "helen50"] = True
    rejects = pd.DataFrame(rej, columns=["file", "dataset", "reason", "detail"])

    out_root.mkdir(parents=True, exist_ok=True)
    write_csv(out_root / "faces.csv", faces)
    write_csv(out_root / "rejects.csv", rejects)
    keys = np.array([f"{d}/{n}" for d, n in zip(faces.dataset, faces.name)])
    with atomic_path(out_root / "landmarks.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, keys=keys,
                     detected=np.stack(lms) if lms else np.zeros((0, 68, 2), np.float32),
                     gt=np.stack(gts) if gts else np.zeros((0, 68, 2), np.float32),
                     M=np.stack(ms) if ms else np.zeros((0, 2, 3), np.float32))
    write_manifest(out_root)  # what later stages depend on (one file, content hashes)
    return faces, rejects
