"""The ``degrade`` stage: the LR face and its bicubic upsampling at every scale, for every face.

:func:`degrade_all` writes ``data/lr/x{s}/{dataset}/{name}.png`` and
``data/lr/x{s}/up/{dataset}/{name}.png`` with :func:`fsrlib.data.degrade.degrade` (MATLAB
``imresize`` bicubic, uint8 semantics) and one ``MANIFEST.md5`` per scale.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..data.degrade import degrade
from ..data.faces import read_faces
from ..io import save_image, write_manifest
from ..settings import stage_settings
from .pool import run_jobs

__all__ = ["degrade_all"]


def _degrade_one(job):
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
    cfg = stage_settings(params, "degrade")
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
    run_jobs(_degrade_one, jobs, int(cfg.get("workers", 1)), progress, "degrade")
    for s in scales:  # per scale: a run at x8 depends on data/lr/x8/MANIFEST.md5 only
        write_manifest(out_root / f"x{s}")
    return pd.DataFrame(rows)
