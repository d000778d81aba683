"""Figures of the report. Every function takes data (arrays, DataFrames, dicts), writes one
PNG atomically (``fsrlib.io.atomic_path``) and returns its path.

- :func:`qualitative_grid`: rows = faces; columns = LR (nearest-upscaled), each method, HR;
  with 68-point landmarks, a zoom row per face (eyes above mouth).
- :func:`attention_maps`: attention maps (SPARNet's per FAU, AMINet's per LGFI), one panel per stage
  (optional overlay).
- :func:`parsing_maps`: predicted parsing maps (ParsingNet / W-Net binary maps, thesis 11
  maps, 19-class label maps) with label colours.
- :func:`training_curves` (+ :func:`read_dvclive`): curves from dvclive's
  ``dvclive/plots/metrics/**.tsv``.
- :func:`psnr_vs_cost` (+ :func:`cost_points`): PSNR vs params / MACs (/ time, marker area
  ∝ params, as AMINet Fig. 1), paper points and ours.
- :func:`identity_threshold_curve`: W-Net Fig. 6, fraction of faces with SR–HR cosine ≥ t.
- :func:`ced_curve` (+ :func:`ced_auc`): SPARNet Fig. 5b, CED of the landmark NME up to 10 %.
- :func:`ranking_agreement`: one measure by two networks (dlib vs MobileFaceNet, dlib vs PFLD), a
  point per run (the rank correlations: :mod:`fsrlib.report.ranking`).

Loaders that touch the project layout (:func:`read_dvclive`, :func:`load_landmarks`) take an
explicit path; nothing here looks in a fixed place.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from ..io import atomic_path, uint8_levels
from ..labels import CLASSES as LABELS19  # the label space and colours of data/parsing's visualisations
from ..labels import COLORS as _PALETTE19
from ..labels import PARTS11 as _PARTS11_IDX

#: channel -> 19-class index of the thesis' 11 maps and of W-Net's 4 key regions
CHANNEL_CLASSES = {11: tuple(_PARTS11_IDX), 4: (4, 2, 10, 11)}
REGIONS4 = ("eyes", "brows", "nose", "mouth")

# iBUG 68-point indices
LMK_EYES = tuple(range(36, 48))
LMK_BROWS = tuple(range(17, 27))
LMK_MOUTH = tuple(range(48, 68))


# ---------------------------------------------------------------------------------------------
# helpers
def _subplots(nrows: int, ncols: int, figsize: tuple[float, float]):
    """A pyplot-free figure (no global state, no backend choice): ``(fig, axes[r, c])``."""
    fig = Figure(figsize=figsize, dpi=110)
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def _save(fig, path) -> Path:
    """Save as PNG to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi, bbox_inches="tight")
    return path


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def to_uint8(img: Any) -> np.ndarray:
    """HxWx3 uint8 for display from uint8 / float [0,1] arrays or tensors, HWC, CHW or HxW
    (values: :func:`fsrlib.io.uint8_levels`, the conversion of the scored PNGs)."""
    a = _np(img)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    if a.dtype != np.uint8:
        a = uint8_levels(a).numpy().astype(np.uint8)
    return np.ascontiguousarray(a)


def _resize(a: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize a uint8 image (or float map) to ``size = (h, w)``."""
    h, w = size
    if a.dtype == np.uint8:
        im = Image.fromarray(a)
        return np.asarray(im.resize((w, h), Image.NEAREST if nearest else Image.BICUBIC))
    im = Image.fromarray(a.astype(np.float32))  # 2-D float32 -> mode "F"
    return np.asarray(im.resize((w, h), Image.NEAREST if nearest else Image.BILINEAR))


def nearest_upscale(img: Any, size: tuple[int, int]) -> np.ndarray:
    """LR shown at HR size with nearest-neighbour upscaling (pixels stay visible)."""
    a = to_uint8(img)
    h, w = a.shape[:2]
    if (h, w) == tuple(size):
        return a
    if size[0] % h == 0 and size[1] % w == 0:
        return np.repeat(np.repeat(a, size[0] // h, 0), size[1] // w, 1)
    return _resize(a, size, nearest=True)


def load_landmarks(npz_path: str | Path, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """68-point landmarks from ``landmarks.npz``: ``{name: (68, 2) array (x, y)}``.

    Reads either ``names`` + ``landmarks`` (N x 68 x 2) arrays or one array per face key.
    With ``names``, returns those faces (a key may also match as ``dataset/name``)."""
    z = np.load(npz_path, allow_pickle=False)
    files = set(z.files)
    out: dict[str, np.ndarray] = {}
    arr_key = next((k for k in ("landmarks", "lmk", "points", "pts") if k in files), None)
    if "names" in files and arr_key is not None:
        for n, p in zip(z["names"].astype(str), z[arr_key]):
            out[str(n)] = np.asarray(p, dtype=np.float64)
    else:
        out = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
    if names is None:
        return out
    sel = {}
    for n in names:
        hit = out.get(n) if n in out else next((v for k, v in out.items() if k.endswith("/" + n) or
                                                 n.endswith("/" + k)), None)
        if hit is None:
            raise KeyError(f"no landmarks for {n!r} in {npz_path}")
        sel[n] = hit
    return sel


def landmark_box(lmk: np.ndarray, idx: Sequence[int], shape: tuple[int, int], margin: float = 0.35,
                 min_size: int = 12) -> tuple[int, int, int, int]:
    """Square-ish crop box ``(x0, y0, x1, y1)`` around the landmarks ``idx``, clamped to ``shape``."""
    p = np.asarray(lmk, dtype=np.float64)[list(idx)]
    x0, y0 = p.min(0)
    x1, y1 = p.max(0)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    side_w = max(w * (1 + 2 * margin), min_size)
    side_h = max(h * (1 + 2 * margin), min_size, side_w / 3.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    H, W = shape
    bx0 = int(np.clip(round(cx - side_w / 2), 0, W - 1))
    by0 = int(np.clip(round(cy - side_h / 2), 0, H - 1))
    bx1 = int(np.clip(round(cx + side_w / 2), bx0 + 1, W))
    by1 = int(np.clip(round(cy + side_h / 2), by0 + 1, H))
    return bx0, by0, bx1, by1


def _zoom_panel(img: np.ndarray, lmk: np.ndarray, width: int) -> np.ndarray:
    """Eyes crop above mouth crop, each resized to ``width``."""
    parts = []
    for idx in (LMK_EYES, LMK_MOUTH):
        x0, y0, x1, y1 = landmark_box(lmk, idx, img.shape[:2])
        crop = img[y0:y1, x0:x1]
        h = max(1, int(round(crop.shape[0] * width / crop.shape[1])))
        parts.append(_resize(crop, (h, width)))
    sep = np.full((2, width, 3), 255, np.uint8)
    return np.concatenate([parts[0], sep, parts[1]], 0)


def _off(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


# ---------------------------------------------------------------------------------------------
# qualitative grid
def qualitative_grid(lr: Sequence[Any], hr: Sequence[Any], sr: Mapping[str, Sequence[Any]], out_path,
                     landmarks: Sequence[np.ndarray] | None = None, names: Sequence[str] | None = None,
                     title: str | None = None, metrics: Mapping[str, Sequence[float]] | None = None,
                     cell_in: float = 1.5) -> Path:
    """Rows = faces; columns = LR (nearest-upscaled to HR size), each method of ``sr``, HR.

    ``landmarks[i]``: the face's 68 HR-pixel landmarks (x, y); when given, a zoom row
    under each face shows the eyes (top) and the mouth (bottom) of every column.
    ``metrics[method][i]``: a number printed under that panel (e.g. PSNR)."""
    n = len(hr)
    if len(lr) != n or any(len(v) != n for v in sr.values()):
        raise ValueError("lr, hr and every sr list must have one image per face")
    cols = ["LR (nearest)", *sr.keys(), "HR"]
    zoom = landmarks is not None
    n_rows = n * (2 if zoom else 1)
    fig, axes = _subplots(n_rows, len(cols), figsize=(cell_in * len(cols), cell_in * n_rows))
    for i in range(n):
        H = to_uint8(hr[i])
        size = H.shape[:2]
        panels = [nearest_upscale(lr[i], size), *(to_uint8(v[i]) for v in sr.values()), H]
        panels = [p if p.shape[:2] == size else _resize(p, size) for p in panels]
        r = i * (2 if zoom else 1)
        for j, (c, p) in enumerate(zip(cols, panels)):
            ax = axes[r, j]
            ax.imshow(p, interpolation="nearest")
            _off(ax)
            if i == 0:
                ax.set_title(c, fontsize=8)
            if metrics and c in metrics:
                ax.set_xlabel(f"{metrics[c][i]:.2f}", fontsize=7)
            if zoom:
                axz = axes[r + 1, j]
                axz.imshow(_zoom_panel(p, np.asarray(landmarks[i]), size[1]), interpolation="nearest")
                _off(axz)
        if names is not None:
            axes[r, 0].set_ylabel(str(names[i]), fontsize=7)
        if zoom:
            axes[r + 1, 0].set_ylabel("eyes / mouth", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out_path)


# ---------------------------------------------------------------------------------------------
# attention maps
def _map2d(m: Any) -> np.ndarray:
    a = _np(m).astype(np.float64)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        a = a.mean(0)  # 3D attention: mean over channels
    if a.ndim != 2:
        raise ValueError(f"attention map must be HxW or CxHxW, got {a.shape}")
    return a


def attention_maps(maps: Sequence[Any], out_path, image: Any | None = None,
                   stage_names: Sequence[str] | None = None, title: str | None = None,
                   cmap: str = "jet", alpha: float = 0.5) -> Path:
    """One panel per FAU stage (SPARNet Fig. 6): each map (HxW, or CxHxW averaged over C)
    upsampled to the image size; with ``image``, a second row overlays it on the face."""
    if not len(maps):
        raise ValueError("no attention maps")
    arrs = [_map2d(m) for m in maps]
    img = to_uint8(image) if image is not None else None
    size = img.shape[:2] if img is not None else max((a.shape for a in arrs), key=lambda s: s[0] * s[1])
    names = list(stage_names) if stage_names is not None else [f"FAU {i + 1}" for i in range(len(arrs))]
    n_rows = 2 if img is not None else 1
    ncol = len(arrs) + (1 if img is not None else 0)
    fig, axes = _subplots(n_rows, ncol, figsize=(1.7 * ncol, 1.8 * n_rows))
    off = 0
    if img is not None:
        axes[0, 0].imshow(img)
        axes[0, 0].set_title("input / SR", fontsize=8)
        _off(axes[0, 0])
        _off(axes[1, 0])
        off = 1
    for j, (a, nm) in enumerate(zip(arrs, names)):
        up = _resize(a, size) if a.shape != tuple(size) else a
        lo, hi = float(up.min()), float(up.max())
        norm = (up - lo) / (hi - lo) if hi > lo else np.zeros_like(up)
        ax = axes[0, j + off]
        im = ax.imshow(norm, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(f"{nm}\n[{lo:.2f}, {hi:.2f}]", fontsize=7)
        _off(ax)
        if img is not None:
            ax2 = axes[1, j + off]
            ax2.imshow(img.mean(-1), cmap="gray")
            ax2.imshow(norm, cmap=cmap, alpha=alpha, vmin=0, vmax=1)
            _off(ax2)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02, label="normalised attention")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, out_path)


# ---------------------------------------------------------------------------------------------
# parsing maps
def label_colors(n: int) -> np.ndarray:
    """``n`` RGB colours (uint8), background black; the 19-class palette first."""
    if n <= len(_PALETTE19):
        return np.asarray(_PALETTE19[:n], dtype=np.uint8).copy()
    extra = (np.array(matplotlib.colormaps["tab20"](np.linspace(0, 1, n - len(_PALETTE19)))[:, :3]) * 255)
    return np.concatenate([np.asarray(_PALETTE19, dtype=np.uint8), extra.astype(np.uint8)], 0)


def parsing_to_labels(m: Any, threshold: float = 0.5,
                      channel_classes: Sequence[int] | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Normalise a parsing map to ``(labels, soft)``, one of them ``None``.

    - integer HxW map with values > 1: a 19-class label map, returned as is;
    - one channel, or three identical channels (ParsingNet / W-Net binary skin map): ``soft``,
      a float map in [0, 1];
    - C channels (thesis' 11 maps, W-Net's 4 regions, ...): argmax where the max ≥
      ``threshold``, else background, mapped to 19-class indices with ``channel_classes``
      (default: known for C = 11 and C = 4; otherwise 19 + channel index, extra colours)."""
    a = _np(m)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        if np.issubdtype(a.dtype, np.integer) and a.max(initial=0) > 1:
            return a.astype(np.int64), None
        return None, np.clip(a.astype(np.float64), 0, 1)
    if a.ndim == 3 and a.shape[-1] in (1, 3) and a.shape[0] not in (1, 3):
        a = np.moveaxis(a, -1, 0)
    a = a.astype(np.float64)
    if a.shape[0] == 1 or (a.shape[0] == 3 and np.allclose(a[0], a[1]) and np.allclose(a[0], a[2])):
        return None, np.clip(a[0], 0, 1)
    c = a.shape[0]
    cls = channel_classes or CHANNEL_CLASSES.get(c) or tuple(len(LABELS19) + k for k in range(c))
    lut = np.array([0, *cls], dtype=np.int64)
    lab = a.argmax(0) + 1
    lab[a.max(0) < threshold] = 0
    return lut[lab], None


def parsing_maps(parsings: Mapping[str, Sequence[Any]], out_path, images: Sequence[Any] | None = None,
                 targets: Sequence[Any] | None = None, channel_classes: Mapping[str, Sequence[int]] | None = None,
                 title: str | None = None, cell_in: float = 1.6) -> Path:
    """Rows = faces; columns = input image (optional), each model's predicted parsing map,
    target (optional). Label maps (19-class CelebAMask-HQ, or multi-channel maps such as the
    thesis' 11 and W-Net's 4 regions, mapped onto the same classes) are coloured with the
    project's label colours and a legend; binary maps (ParsingNet / W-Net skin map, 1 or 3
    identical channels) are grey levels. LR-size maps are shown at full panel size.
    ``channel_classes[model]``: 19-class index of each channel, when not the defaults."""
    cols = list(parsings.keys())
    n = len(next(iter(parsings.values()))) if cols else len(targets or [])
    if any(len(v) != n for v in parsings.values()):
        raise ValueError("every model needs one map per face")
    all_cols = (["image"] if images is not None else []) + cols + (["target"] if targets is not None else [])
    fig, axes = _subplots(n, len(all_cols), figsize=(cell_in * len(all_cols), cell_in * n + 0.6))
    used: set[int] = set()
    for i in range(n):
        items = ([("image", images[i])] if images is not None else []) + [(c, parsings[c][i]) for c in cols] + \
                ([("target", targets[i])] if targets is not None else [])
        for j, (c, m) in enumerate(items):
            ax = axes[i, j]
            if c == "image":
                ax.imshow(to_uint8(m))
            else:
                lab, soft = parsing_to_labels(m, channel_classes=(channel_classes or {}).get(c))
                if lab is not None:
                    pal = label_colors(int(lab.max()) + 1)
                    ax.imshow(pal[lab], interpolation="nearest")
                    used.update(int(k) for k in np.unique(lab))
                else:
                    ax.imshow(soft, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            _off(ax)
            if i == 0:
                ax.set_title(c, fontsize=8)
    if used:
        pal = label_colors(max(used) + 1)
        names = [LABELS19[k] if k < len(LABELS19) else f"ch{k - len(LABELS19)}" for k in sorted(used)]
        handles = [Patch(color=pal[k] / 255.0, label=nm) for k, nm in zip(sorted(used), names)]
        fig.legend(handles=handles, loc="lower center", ncol=min(7, len(handles)), fontsize=6, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08 if used else 0, 1, 1))
    return _save(fig, out_path)


# ---------------------------------------------------------------------------------------------
# training curves
def read_dvclive(dvclive_dir: str | Path) -> pd.DataFrame:
    """dvclive's scalar logs as a long DataFrame ``metric, step, value`` (+ ``timestamp``).

    dvclive writes one TSV per logged metric under ``{dir}/plots/metrics/``, with the metric's
    path as sub-folders (``train/loss`` -> ``plots/metrics/train/loss.tsv``), columns
    ``step``, the metric's last name component and, optionally, ``timestamp``."""
    root = Path(dvclive_dir) / "plots" / "metrics"
    frames = []
    for f in sorted(root.rglob("*.tsv")):
        d = pd.read_csv(f, sep="\t")
        name = f.relative_to(root).with_suffix("").as_posix()
        val_col = next((c for c in d.columns if c not in ("step", "timestamp")), None)
        if val_col is None or d.empty:
            continue
        out = pd.DataFrame({"metric": name, "step": d["step"] if "step" in d else np.arange(len(d)),
                            "value": pd.to_numeric(d[val_col], errors="coerce")})
        if "timestamp" in d:
            out["timestamp"] = d["timestamp"]
        frames.append(out)
    if not frames:
        return pd.DataFrame(columns=["metric", "step", "value"])
    return pd.concat(frames, ignore_index=True)


def training_curves(curves: Mapping[str, pd.DataFrame], out_path, metrics: Sequence[str] | None = None,
                    title: str | None = None, smooth: int = 1, scale_loss: float = 1.0) -> Path:
    """One panel per metric, one line per run. ``curves[run]`` is :func:`read_dvclive`'s
    frame. ``smooth``: rolling-mean window; ``scale_loss``: multiply metrics whose name
    contains "loss" (AMINet Fig. 12 plots loss ×100)."""
    if metrics is None:
        metrics = sorted({m for d in curves.values() for m in d["metric"].unique()})
    metrics = list(metrics)
    if not metrics:
        raise ValueError("no metrics to plot")
    ncol = min(3, len(metrics))
    nrow = int(np.ceil(len(metrics) / ncol))
    fig, axes = _subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow))
    cmap = matplotlib.colormaps["tab10"]
    colors = {run: cmap(i % 10) for i, run in enumerate(curves)}
    for k, m in enumerate(metrics):
        ax = axes[k // ncol, k % ncol]
        for run, d in curves.items():
            s = d[d["metric"] == m].sort_values("step")
            if s.empty:
                continue
            y = s["value"].rolling(smooth, min_periods=1).mean() if smooth > 1 else s["value"]
            if "loss" in m:
                y = y * scale_loss
            ax.plot(s["step"], y, label=run, color=colors[run], lw=1.2)
        ax.set_title(m + (f" (×{scale_loss:g})" if "loss" in m and scale_loss != 1 else ""), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        if "loss" in m and (d_all := [d[d["metric"] == m]["value"] for d in curves.values()]) and \
                all((v.dropna() > 0).all() for v in d_all):
            ax.set_yscale("log")
    for k in range(len(metrics), nrow * ncol):
        axes[k // ncol, k % ncol].set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06 if handles else 0, 1, 1))
    return _save(fig, out_path)


# ---------------------------------------------------------------------------------------------
# PSNR vs cost
def cost_points(paper: pd.DataFrame | None = None, ours: pd.DataFrame | None = None,
                paper_table: tuple[str, str] = ("aminet", "T10"), testset: str = "celeba_test",
                scale: int = 8, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Points for :func:`psnr_vs_cost`: ``label, source, psnr, params_M, macs_G, time_ms``.

    Paper points from ``paper_results`` (default AMINet Table X); ours from
    :func:`fsrlib.report.tables.load_results` (PSNR on ``testset``, complexity from the run)."""
    rows = []
    if paper is not None:
        p = paper[(paper["paper"] == paper_table[0]) & (paper["table"] == paper_table[1])]
        for meth, g in p.groupby("method", sort=False):
            d = dict(zip(g["metric"], g["value"].astype(float)))
            if "time_s" in d and "time_ms" not in d:
                d["time_ms"] = d["time_s"] * 1000
            rows.append({"label": meth, "source": "paper", **{k: d.get(k) for k in
                                                               ("psnr", "params_M", "macs_G", "time_ms")}})
    if ours is not None and len(ours):
        o = ours[ours["scale"] == scale] if "scale" in ours else ours
        for run, g in o.groupby("run"):
            key = g["method_key"].iloc[0]
            if methods is not None and key not in methods:
                continue
            ps = g[(g["testset"] == testset) & (g["metric"] == "psnr")]["value"].dropna()
            rec = {"label": run, "source": "ours", "psnr": float(ps.iloc[0]) if len(ps) else None}
            for m in ("params_M", "macs_G", "time_ms"):
                v = g[g["metric"] == m]["value"].dropna()
                rec[m] = float(v.iloc[0]) if len(v) else None
            rows.append(rec)
    return pd.DataFrame(rows, columns=["label", "source", "psnr", "params_M", "macs_G", "time_ms"])


def psnr_vs_cost(points: pd.DataFrame, out_path, title: str | None = None, annotate: bool = True) -> Path:
    """PSNR vs parameters and vs MACs; plus PSNR vs time with marker area ∝ params (AMINet
    Fig. 1) when times exist. Paper points hollow grey, ours filled."""
    pts = points.copy()
    for c in ("psnr", "params_M", "macs_G", "time_ms"):
        if c not in pts:
            pts[c] = np.nan
        pts[c] = pd.to_numeric(pts[c], errors="coerce")
    pts = pts[pts["psnr"].notna()]
    panels = [("params_M", "Parameters (M)"), ("macs_G", "MACs (G)")]
    if pts["time_ms"].notna().any():
        panels.append(("time_ms", "Inference time (ms)"))
    fig, axes = _subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8))
    for ax, (x, xl) in zip(axes[0], panels):
        for src, style in (("paper", dict(facecolors="none", edgecolors="0.35")),
                           ("ours", dict(color="tab:red", edgecolors="k"))):
            s = pts[(pts["source"] == src) & pts[x].notna()]
            if s.empty:
                continue
            size = 30 if x != "time_ms" else 20 + 12 * s["params_M"].fillna(s["params_M"].median()).fillna(5)
            ax.scatter(s[x], s["psnr"], s=size, label=src, linewidths=1, **style)
            if annotate:
                for _, r in s.iterrows():
                    ax.annotate(str(r["label"]), (r[x], r["psnr"]), fontsize=6, xytext=(3, 3),
                                textcoords="offset points")
        ax.set_xlabel(xl)
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        if x == "time_ms":
            ax.set_title("marker area ∝ parameters", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out_path)


# ---------------------------------------------------------------------------------------------
# downstream curves
def identity_threshold_curve(similarities: Mapping[str, Sequence[float]], out_path,
                             thresholds: Sequence[float] | None = None, title: str | None = None) -> Path:
    """W-Net Fig. 6: for each method, the fraction of test faces whose SR–HR identity cosine
    similarity is ≥ the threshold, as a function of the threshold."""
    t = np.linspace(0, 1, 101) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    fig, axes = _subplots(1, 1, figsize=(5, 3.8))
    ax = axes[0, 0]
    for name, s in similarities.items():
        s = np.asarray(_np(s), dtype=np.float64)
        s = s[np.isfinite(s)]
        if not len(s):
            continue
        frac = (s[None, :] >= t[:, None]).mean(1)
        ax.plot(t, frac, label=f"{name} (mean {s.mean():.3f})", lw=1.4)
    ax.set_xlabel("cosine similarity threshold")
    ax.set_ylabel("fraction of faces ≥ threshold")
    ax.set_xlim(t.min(), t.max())
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out_path)


def ced_auc(nme: Sequence[float], max_err: float = 0.10, n: int = 1001) -> float:
    """Area under the CED curve up to ``max_err``, normalised to [0, 1] (x100 for %)."""
    e = np.asarray(_np(nme), dtype=np.float64)
    e = e[np.isfinite(e)]
    if not len(e):
        return float("nan")
    x = np.linspace(0, max_err, n)
    ced = (e[None, :] <= x[:, None]).mean(1)
    trapz = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed it
    return float(trapz(ced, x) / max_err)


def ced_curve(nme: Mapping[str, Sequence[float]], out_path, max_err: float = 0.10, title: str | None = None,
              percent: bool = True) -> Path:
    """SPARNet Fig. 5b: cumulative error distribution of the per-image landmark NME, up to
    ``max_err``; the legend gives each method's AUC (as the paper's Table I)."""
    x = np.linspace(0, max_err, 501)
    fig, axes = _subplots(1, 1, figsize=(5, 3.8))
    ax = axes[0, 0]
    for name, e in nme.items():
        e = np.asarray(_np(e), dtype=np.float64)
        e = e[np.isfinite(e)]
        if not len(e):
            continue
        ced = (e[None, :] <= x[:, None]).mean(1)
        auc = ced_auc(e, max_err)
        ax.plot(x * (100 if percent else 1), ced, lw=1.4, label=f"{name} (AUC {auc * 100:.2f}%)")
    ax.set_xlabel("NME (%)" if percent else "NME")
    ax.set_ylabel("fraction of images")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out_path)


def roc_curves(curves: Mapping[str, tuple], out_path, title: str | None = None) -> Path:
    """Face-verification ROC, one curve per run: ``{label: (far, tar)}`` (log FAR axis from
    1e-3); the legend gives each run's ROC AUC."""
    fig, axes = _subplots(1, 1, figsize=(5, 3.8))
    ax = axes[0, 0]
    for name, (far, tar) in curves.items():
        far, tar = np.asarray(far, np.float64), np.asarray(tar, np.float64)
        ax.plot(np.clip(far, 1e-3, 1), tar, lw=1.2, label=f"{name} (AUC {np.trapezoid(tar, far):.3f})")
    ax.set_xscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out_path)


__all__ = [
    "LABELS19", "CHANNEL_CLASSES", "REGIONS4", "to_uint8", "nearest_upscale", "load_landmarks", "landmark_box",
    "qualitative_grid", "attention_maps", "label_colors", "parsing_to_labels", "parsing_maps", "read_dvclive",
    "training_curves", "cost_points", "psnr_vs_cost", "identity_threshold_curve", "ced_auc", "ced_curve",
    "roc_curves",
]


def ranking_agreement(panels: Sequence[Mapping], out_path, title: str | None = None) -> Path:
    """Scatter of one measure by two networks, one labelled point per run, one panel each
    (``{points: DataFrame run/v1/v2, xlabel, ylabel, title}``,
    :func:`fsrlib.report.ranking.agreement_panels`: rank correlations in the titles)."""
    fig, axes = _subplots(1, max(len(panels), 1), figsize=(5.0 * max(len(panels), 1), 4.4))
    for ax, p in zip(axes[0], panels):
        pts = p["points"]
        ax.scatter(pts["v1"], pts["v2"], s=22, color="tab:blue", edgecolors="k", linewidths=0.5)
        for r in pts.itertuples():
            ax.annotate(str(r.run), (r.v1, r.v2), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(p["xlabel"], fontsize=8)
        ax.set_ylabel(p["ylabel"], fontsize=8)
        ax.set_title(p["title"], fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out_path)
