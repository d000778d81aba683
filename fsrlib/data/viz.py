"""Plotting helpers for the data notebooks (matplotlib; no state kept)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..io import to_uint8
from ..labels import colorize, overlay
from .align import template_points
from .faces import load_landmarks, read_faces

__all__ = ["image_grid", "show_faces_with_landmarks", "show_lr_hr", "show_parsing", "counts_table"]


def _as_uint8(img) -> np.ndarray:
    if torch.is_tensor(img):
        img = img.detach().cpu().numpy()
        if img.ndim == 3 and img.shape[0] in (1, 3):
            img = img.transpose(1, 2, 0)
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = to_uint8(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    return img


def image_grid(images: Sequence, titles: Sequence[str] | None = None, ncols: int = 8, size: float = 1.6,
               landmarks: Sequence | None = None, path=None, suptitle: str | None = None):
    """A grid of images (uint8 HxWx3, float [0,1], or CHW tensors), optional titles and
    landmark points. Saves to ``path`` when given; returns the figure."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        img = _as_uint8(images[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        if landmarks is not None and landmarks[i] is not None:
            pts = np.asarray(landmarks[i])
            ax.scatter(pts[:, 0], pts[:, 1], s=2, c="lime", linewidths=0)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def show_faces_with_landmarks(faces_root="data/faces", faces=None, n: int = 16, seed: int = 0,
                              show_gt: bool = True, template: bool = True, **kw):
    """Sample crops with their detected landmarks (green), Helen ground truth (red) and the
    template key points (cyan crosses)."""
    faces_root = Path(faces_root)
    df = read_faces(faces_root) if faces is None else faces
    df = df.sample(min(n, len(df)), random_state=seed) if len(df) > n else df
    lms = load_landmarks(faces_root)
    ncols = min(8, len(df))
    nrows = int(np.ceil(len(df) / max(ncols, 1)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.8 * ncols, 1.9 * nrows), squeeze=False)
    tp = template_points()
    for ax, r in zip(axes.ravel(), df.itertuples(index=False)):
        img = np.asarray(Image.open(faces_root / r.dataset / f"{r.name}.png"))
        ax.imshow(img)
        lm = lms.get(f"{r.dataset}/{r.name}")
        if lm is not None:
            ax.scatter(lm["detected"][:, 0], lm["detected"][:, 1], s=2, c="lime", linewidths=0)
            if show_gt and lm["gt"] is not None:
                ax.scatter(lm["gt"][:, 0], lm["gt"][:, 1], s=2, c="red", linewidths=0)
        if template:
            ax.scatter(tp[:, 0], tp[:, 1], marker="+", s=30, c="cyan", linewidths=0.8)
        ax.set_title(f"{r.dataset}/{r.name} ({r.split})", fontsize=6)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    return fig


def show_lr_hr(hr, lrs: dict, ups: dict | None = None, title: str | None = None):
    """One HR face, its LR per scale (shown at LR size, nearest) and the upsampled LR."""
    scales = sorted(lrs)
    ncols = 1 + len(scales) * (2 if ups else 1)
    fig, axes = plt.subplots(1, ncols, figsize=(1.9 * ncols, 2.1), squeeze=False)
    axes = axes.ravel()
    axes[0].imshow(_as_uint8(hr))
    axes[0].set_title("HR 128", fontsize=7)
    i = 1
    for s in scales:
        lr = _as_uint8(lrs[s])
        axes[i].imshow(lr, interpolation="nearest")
        axes[i].set_title(f"x{s} LR {lr.shape[1]}", fontsize=7)
        i += 1
        if ups:
            axes[i].imshow(_as_uint8(ups[s]))
            axes[i].set_title(f"x{s} bicubic up", fontsize=7)
            i += 1
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def show_parsing(images: Sequence, labels: Sequence, alpha: float = 0.5, ncols: int = 6, titles=None):
    """Image, colour-coded 19-class labels, and their overlay, per face."""
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(5.4, 1.8 * n), squeeze=False)
    for i in range(n):
        img = _as_uint8(images[i])
        lab = np.asarray(labels[i])
        for ax, im, t in zip(axes[i], (img, colorize(lab), overlay(img, lab, alpha)),
                             ("face", "labels", "overlay")):
            ax.imshow(im, interpolation="nearest")
            ax.set_title(t if titles is None else f"{titles[i]} {t}", fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    return fig


def counts_table(faces, rejects=None):
    """Counts per dataset/split (and per reject reason) as DataFrames."""
    kept = faces.groupby(["dataset", "split"]).size().rename("kept").reset_index()
    if "helen50" in faces.columns:
        h50 = int(faces["helen50"].astype(bool).sum())
        kept = pd.concat([kept, pd.DataFrame([{"dataset": "helen", "split": "helen50 (of test)", "kept": h50}])],
                         ignore_index=True)
    if rejects is None:
        return kept
    rej = rejects.groupby(["dataset", "reason"]).size().rename("rejected").reset_index()
    return kept, rej
