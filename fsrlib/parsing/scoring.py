"""Face parsing judged against human labels: confusion matrix, per-class IoU / F1, mIoU, and
the same scores on the maps the methods use (derived from the label maps by :mod:`fsrlib.labels`).

- :func:`confusion` accumulates a 19x19 pixel confusion matrix (rows: human label, columns:
  prediction); :func:`scores` turns it into per-class ``iou`` and ``f1`` (NaN for a class
  absent from both), ``miou`` (mean over the classes present in the labels or the prediction,
  of the 19) and ``miou_producible`` (mean over the classes the parser can produce, e.g. the
  landmark rasteriser's: no hair, ears or neck; a producible class absent from both is left out).
- :func:`derived_scores`: IoU of FishFSRNet's / W-Net's binary skin map, W-Net's four key
  regions and the thesis' 11 maps, each a binary map computed from both label maps.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..labels import CLASSES, N_CLASSES, PARTS11, PARTS11_NAMES, REGIONS4, REGIONS4_NAMES

__all__ = ["confusion", "scores", "binary_counts", "derived_scores", "DERIVED"]


def confusion(gt, pred, n: int = N_CLASSES, cm: np.ndarray | None = None) -> np.ndarray:
    """Add the pixels of ``gt`` / ``pred`` (same shape, class ids) to an ``n x n`` matrix."""
    g = np.asarray(gt).astype(np.int64).ravel()
    p = np.asarray(pred).astype(np.int64).ravel()
    if g.shape != p.shape:
        raise ValueError(f"label shapes differ: {np.shape(gt)} vs {np.shape(pred)}")
    if g.size and (max(g.max(), p.max()) >= n or min(g.min(), p.min()) < 0):
        raise ValueError(f"class ids outside 0..{n - 1}")
    c = np.bincount(g * n + p, minlength=n * n).reshape(n, n)
    return c if cm is None else cm + c


def _iou_f1(tp, fp, fn):
    tp, fp, fn = (np.asarray(v, np.float64) for v in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        f1 = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    return iou, f1


def scores(cm: np.ndarray, producible: Iterable[int] | None = None, names: Sequence[str] = CLASSES) -> dict:
    """Per-class ``iou``/``f1`` (by name), ``miou``, ``miou_producible``, ``pixel_acc`` from a
    confusion matrix. ``producible``: class ids the parser can output (default: all)."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    iou, f1 = _iou_f1(tp, fp, fn)
    prod = sorted(set(range(len(cm))) if producible is None else {int(c) for c in producible})
    return {
        "iou": dict(zip(names, iou.tolist())), "f1": dict(zip(names, f1.tolist())),
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "miou_producible": float(np.nanmean(iou[prod])) if np.isfinite(iou[prod]).any() else float("nan"),
        "mf1": float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan"),
        "pixel_acc": float(tp.sum() / max(cm.sum(), 1.0)),
        "producible": [names[c] for c in prod],
    }


#: name -> the class ids whose union is the binary map (skin; W-Net's regions; the 11 maps)
DERIVED: dict[str, tuple[int, ...]] = {"skin_map": (1,)}
DERIVED.update({f"region_{n}": tuple(cs) for n, cs in zip(REGIONS4_NAMES, REGIONS4)})
DERIVED.update({f"parts11_{n}": (c,) for n, c in zip(PARTS11_NAMES, PARTS11)})


def binary_counts(cm: np.ndarray, classes: Sequence[int]) -> tuple[float, float, float]:
    """(tp, fp, fn) of the binary map "pixel in ``classes``", read off the confusion matrix."""
    cm = np.asarray(cm, np.float64)
    idx = list(classes)
    tp = cm[np.ix_(idx, idx)].sum()
    return tp, cm[:, idx].sum() - tp, cm[idx, :].sum() - tp


def derived_scores(cm: np.ndarray) -> dict:
    """IoU and F1 of every map of :data:`DERIVED` (binary maps are unions of classes, so a
    confusion matrix holds everything needed): ``{name: {"iou", "f1"}}``."""
    out = {}
    for name, cs in DERIVED.items():
        iou, f1 = _iou_f1(*binary_counts(cm, cs))
        out[name] = {"iou": float(iou), "f1": float(f1)}
    return out
