"""Parsers judged against human labels: the CelebAMask-HQ faces of the prepare stage
(``data/faces/celebamask/``, their warped labels ``data/faces/labels/celebamask/``) parsed by a
parser and scored with :mod:`fsrlib.parsing.scoring`; the table ``parsing_quality.md/.csv``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from PIL import Image

from ..data.faces import load_landmarks, read_faces
from ..io import write_csv, write_text
from ..labels import CLASSES
from ..parsing.scoring import confusion, derived_scores, scores

__all__ = ["score_parser", "quality_table", "write_quality_table"]


def score_parser(parser, faces_root="data/faces", split: str = "test", dataset: str = "celebamask",
                 batch_size: int = 16, return_examples: int = 0) -> dict:
    """Parse every ``dataset``/``split`` face and score it against its human label map.
    Returns ``{"parser", "n_faces", "scores", "derived"[, "examples"]}``."""
    faces_root = Path(faces_root)
    df = read_faces(faces_root)
    df = df[(df.dataset == dataset) & (df.split == split)].sort_values("name")
    if df.empty:
        raise FileNotFoundError(f"no {dataset} {split} faces in {faces_root}/faces.csv: add {dataset!r} to "
                                "data.datasets and rerun download + prepare")
    lms = load_landmarks(faces_root) if getattr(parser, "needs_landmarks", False) else None
    cm = None
    examples = []
    rows = list(df.itertuples(index=False))
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        imgs = np.stack([np.asarray(Image.open(faces_root / dataset / f"{r.name}.png").convert("RGB")) for r in chunk])
        gts = np.stack([np.asarray(Image.open(faces_root / "labels" / dataset / f"{r.name}.png")) for r in chunk])
        lm = np.stack([lms[f"{dataset}/{r.name}"]["detected"] for r in chunk]) if lms is not None else None
        pred = parser.parse(imgs, lm)
        cm = confusion(gts, pred, cm=cm)
        for im, g, p in zip(imgs, gts, pred):
            if len(examples) < return_examples:
                examples.append((im, g, p))
    producible = [CLASSES.index(c) for c in getattr(parser, "classes", CLASSES)]
    out = {"parser": parser.name, "n_faces": len(rows), "scores": scores(cm, producible), "derived": derived_scores(cm),
           "confusion": cm.tolist()}
    if return_examples:
        out["examples"] = examples
    return out


def quality_table(results: Mapping[str, dict]) -> pd.DataFrame:
    """One row per class / derived map / mean, columns ``{parser}_iou``, ``{parser}_f1``."""
    rows = []
    for c in CLASSES:
        rows.append({"item": c, "kind": "class", **{f"{k}_{m}": r["scores"][m][c] for k, r in results.items()
                                                     for m in ("iou", "f1")}})
    for name in next(iter(results.values()))["derived"]:
        rows.append({"item": name, "kind": "derived", **{f"{k}_{m}": r["derived"][name][m] for k, r in results.items()
                                                         for m in ("iou", "f1")}})
    rows.append({"item": "mIoU (19 classes)", "kind": "mean",
                 **{f"{k}_iou": r["scores"]["miou"] for k, r in results.items()},
                 **{f"{k}_f1": r["scores"]["mf1"] for k, r in results.items()}})
    rows.append({"item": "mIoU (classes the parser produces)", "kind": "mean",
                 **{f"{k}_iou": r["scores"]["miou_producible"] for k, r in results.items()}})
    return pd.DataFrame(rows)


def write_quality_table(results: Mapping[str, dict], out_base) -> pd.DataFrame:
    """``{out_base}.csv`` and ``{out_base}.md`` (values in %, '-' where a class is absent)."""
    t = quality_table(results)
    write_csv(Path(f"{out_base}.csv"), t)
    cols = [c for c in t.columns if c not in ("item", "kind")]
    n = {k: r["n_faces"] for k, r in results.items()}
    lines = ["# Face parsing against human labels (CelebAMask-HQ test faces, 128 px)", "",
             "Faces: " + ", ".join(f"{k} {v}" for k, v in n.items()) + " (dlib-aligned; misses in rejects.csv). "
             "IoU / F1 in %; '-': class absent from labels and prediction.", "",
             "| item | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for r in t.itertuples(index=False):
        vals = [getattr(r, c) for c in cols]
        lines.append(f"| {r.item} | " + " | ".join("-" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"
                                                  for v in vals) + " |")
    write_text(Path(f"{out_base}.md"), "\n".join(lines) + "\n")
    return t
