"""The inspection notebook's logic (``notebooks/inspect.ipynb``): one face of a test set
through one trained run, with the error map, PSNR / SSIM and every intermediate map the
model returns (:func:`inspect_face`)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch.utils.data import default_collate

from ..config import load_and_validate
from ..data.datasets import FaceSRDataset
from ..inference import RunPredictor, torch_threads
from ..io import write_bytes
from ..labels import PARTS11_NAMES, REGIONS4_NAMES
from ..metrics.image import psnr, ssim
from ..report import figures as F
from .evaluate import TESTSET_SPLITS

__all__ = ["inspect_face", "figure_png"]


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure (what a notebook displays with ``IPython.display.Image``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return buf.getvalue()


def _face_index(df: pd.DataFrame, face: int | str) -> int:
    keys = [f"{d}/{n}" for d, n in zip(df["dataset"].astype(str), df["name"].astype(str))]
    names = list(df["name"].astype(str))
    if isinstance(face, (int, np.integer)) and not isinstance(face, bool):
        if 0 <= int(face) < len(df):
            return int(face)
        # papermill -p face 296961468_1 passes the int 2969614681 (Python reads the "_" as a digit separator)
        hits = [i for i, n in enumerate(names) if n.replace("_", "") == str(int(face))]
        if len(hits) == 1:
            return hits[0]
        raise IndexError(f"face index {face} out of range: the test set has {len(df)} faces "
                         "(give a name as a string; with papermill: -r face <name>)")
    s = str(face)
    for cand in (keys, names):
        if s in cand:
            return cand.index(s)
    if s.isdigit() and int(s) < len(df):
        return int(s)
    raise KeyError(f"face {face!r} is not in the test set (e.g. {names[:3]})")


def _np_img(t) -> np.ndarray:
    """(3,H,W) tensor -> HxWx3 float32 in [0, 1]."""
    return np.ascontiguousarray(t.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0))


def _np_map(t) -> np.ndarray:
    a = t.detach().float().cpu().numpy()
    return a[0] if a.ndim == 3 and a.shape[0] == 1 else a


def inspect_face(run: str | Path, testset: str = "helen50", face: int | str = 0,
                 params_path: str | Path | None = "params.yaml", runs_root: str | Path | None = None,
                 data_root: str | Path = "data", device: str = "cpu", crop_border: int | None = None,
                 out_path: str | Path | None = None, threads: int = 1) -> dict:
    """One face of ``testset`` through the trained ``run`` (a run name, run folder or model.pt).

    Returns a dict of numpy arrays and a matplotlib figure:
    ``lr`` (h x w x 3), ``lr_up``, ``hr``, ``sr`` (128 x 128 x 3 in [0, 1]; None for a parsing-only
    model), ``error`` (128 x 128: |SR - HR| averaged over RGB), ``psnr`` / ``ssim`` (Y BT.601,
    the evaluate stage's ``crop_border``), ``attention`` (one map per FAU with attention,
    (H, W) or (C, H, W), values in (0, 1)) and ``attention_fau``, ``parsing`` (C x h x w),
    ``prior`` (FishFSRNet: its ParsingNet prior), ``coarse`` (PGNet's coarse SR, H x W x 3),
    ``labels`` (the parse stage's 19-class map, when present), ``maps`` (every other output),
    ``name``, ``dataset``, ``index``, ``scale``, ``run``, ``testset`` and ``figure``. With
    ``out_path`` the figure is also saved there as a PNG. ``threads``: torch intra-op threads
    for the one-face forward pass (restored afterwards)."""
    with torch_threads(threads):
        return _inspect_face(run, testset, face, params_path, runs_root, data_root, device, crop_border, out_path)


def _inspect_face(run, testset, face, params_path, runs_root, data_root, device, crop_border, out_path) -> dict:
    params: dict = {}
    if params_path is not None and Path(params_path).is_file():
        params = load_and_validate(params_path)
    runs_root = Path(runs_root or (params.get("train") or {}).get("runs_root", "runs"))
    crop = int(crop_border if crop_border is not None else (params.get("evaluate") or {}).get("crop_border", 0))
    if testset not in TESTSET_SPLITS:
        raise KeyError(f"unknown test set {testset!r}; known: {sorted(TESTSET_SPLITS)}")
    pred = RunPredictor.from_run(run, runs_root, device)
    model = pred.model
    scale = int(model.scale)
    data_root = Path(data_root)
    ds_name, split = TESTSET_SPLITS[testset]
    probe = FaceSRDataset(data_root, ds_name, split, scale, keys=("hr",))
    idx = _face_index(probe.df, face)
    r = probe.df.iloc[idx]
    on_disk = (data_root / "lr" / f"x{scale}" / r["dataset"] / f"{r['name']}.png").is_file() and \
        (data_root / "lr" / f"x{scale}" / "up" / r["dataset"] / f"{r['name']}.png").is_file()
    has_labels = (data_root / "parsing" / "labels" / r["dataset"] / f"{r['name']}.png").is_file()
    keys = {"hr", "lr", "lr_up"} | ({"labels"} if has_labels else set())
    if pred.prior_gt:
        keys.add(pred.prior_gt)
    ds = FaceSRDataset(data_root, ds_name, split, scale, keys=tuple(sorted(keys)),
                       lr_source="disk" if on_disk else "online")
    item = ds[idx]
    batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in default_collate([item]).items()}
    with torch.no_grad():
        out = pred.maps({k: v for k, v in batch.items() if torch.is_tensor(v)})

    res: dict[str, Any] = {"run": str(run), "testset": testset, "index": idx, "name": str(item["name"]),
                           "dataset": str(item["dataset"]), "scale": scale,
                           "lr": _np_img(item["lr"]), "lr_up": _np_img(item["lr_up"]), "hr": _np_img(item["hr"]),
                           "sr": None, "error": None, "psnr": None, "ssim": None, "attention": [],
                           "attention_fau": [], "parsing": None, "prior": None, "coarse": None,
                           "labels": item["labels"].numpy() if "labels" in item else None, "maps": {}}
    if "sr" in out:
        sr = out["sr"][0].float().clamp(0, 1).cpu()
        hr = item["hr"].float()
        res["sr"] = _np_img(sr)
        res["error"] = (sr - hr).abs().mean(0).numpy().astype(np.float32)
        res["psnr"] = float(psnr(sr[None], hr[None], crop_border=crop)[0])
        res["ssim"] = float(ssim(sr[None], hr[None], crop_border=crop)[0])
    if out.get("attention"):
        res["attention"] = [_np_map(a[0]) for a in out["attention"]]
        res["attention_fau"] = [int(j) for j in (out.get("attention_fau") or range(1, len(out["attention"]) + 1))]
    for k in ("parsing", "prior"):
        if out.get(k) is not None:
            res[k] = out[k][0].detach().float().cpu().numpy()
    if out.get("coarse") is not None:
        res["coarse"] = _np_img(out["coarse"][0])
    for k, v in out.items():
        if k in ("sr", "attention", "attention_fau", "parsing", "prior", "coarse"):
            continue
        if torch.is_tensor(v):
            res["maps"][k] = v[0].detach().float().cpu().numpy()
    res["figure"] = _inspect_figure(res, crop)
    if out_path is not None:
        write_bytes(out_path, figure_png(res["figure"]))
    return res


def _inspect_figure(res: Mapping, crop: int):
    """Rows: images (LR, coarse, SR, HR, error); attention per FAU; each parsing / prior map
    (label colours, then one panel per channel)."""
    size = res["hr"].shape[:2]
    rows: list[list[tuple[str, str, Any]]] = []
    top = [("LR (nearest)", "img", F.nearest_upscale(res["lr"], size))]
    if res["coarse"] is not None:
        top.append(("coarse SR", "img", res["coarse"]))
    if res["sr"] is not None:
        top.append(("SR", "img", res["sr"]))
    top.append(("HR", "img", res["hr"]))
    if res["error"] is not None:
        top.append((f"|SR-HR| (mean RGB)\nPSNR {res['psnr']:.2f} dB, SSIM {res['ssim']:.4f}", "err", res["error"]))
    rows.append(top)
    if res["attention"]:
        rows.append([(f"FAU #{j} attention {tuple(a.shape)}\n[{a.min():.2f}, {a.max():.2f}]", "att", a)
                     for j, a in zip(res["attention_fau"], res["attention"])])
    for key in ("parsing", "prior"):
        m = res[key]
        if m is None:
            continue
        m = np.clip(m, 0, 1)
        row = []
        same3 = m.ndim == 3 and m.shape[0] == 3 and np.allclose(m[0], m[1]) and np.allclose(m[0], m[2])
        if m.ndim == 3 and (m.shape[0] == 1 or same3):
            row.append((f"{key} ({m.shape[-1]} px)", "soft", m[0]))
        elif m.ndim == 3 and m.shape[0] == 3:  # ParsingNet: three skin channels, channel 0 is the scored one
            row += [(f"{key} ch{c} ({m.shape[-1]} px)", "soft", m[c]) for c in range(3)]
        else:
            lab, _ = F.parsing_to_labels(m)
            row.append((f"{key}: labels ({m.shape[0]} maps)", "lab", lab))
            names = {11: PARTS11_NAMES, 4: REGIONS4_NAMES}.get(m.shape[0], [f"ch{c}" for c in range(m.shape[0])])
            row += [(f"{key}: {n}", "soft", m[c]) for c, n in enumerate(names)]
        rows.append(row)
    if res["labels"] is not None and (res["parsing"] is not None or res["prior"] is not None):
        rows.append([("target labels (parse stage)", "lab", res["labels"])])
    for k, v in res["maps"].items():
        if isinstance(v, np.ndarray) and v.ndim in (2, 3):
            a = v if v.ndim == 2 else (v.transpose(1, 2, 0) if v.shape[0] == 3 else v.mean(0))
            rows.append([(f"{k} {tuple(v.shape)}", "img" if a.ndim == 3 else "soft", np.clip(a, 0, 1))])
    ncol = min(8, max(len(r) for r in rows))
    wrapped: list[list] = []
    for r in rows:
        wrapped += [r[i:i + ncol] for i in range(0, len(r), ncol)]
    fig = Figure(figsize=(2.0 * ncol, 2.25 * len(wrapped)), dpi=100)
    axes = np.asarray(fig.subplots(len(wrapped), ncol, squeeze=False))
    for i, r in enumerate(wrapped):
        for j in range(ncol):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(r):
                ax.set_visible(False)
                continue
            title, kind, a = r[j]
            if kind == "img":
                ax.imshow(F.to_uint8(a), interpolation="nearest")
            elif kind == "err":
                im = ax.imshow(a, cmap="inferno", vmin=0, vmax=max(float(a.max()), 1e-6))
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            elif kind == "att":
                a2 = a if a.ndim == 2 else a.mean(0)
                lo, hi = float(a2.min()), float(a2.max())
                ax.imshow((a2 - lo) / (hi - lo) if hi > lo else np.zeros_like(a2), cmap="jet", vmin=0, vmax=1,
                          interpolation="bilinear")
            elif kind == "lab":
                lab = np.asarray(a, np.int64)
                ax.imshow(F.label_colors(int(lab.max()) + 1)[lab], interpolation="nearest")
            else:
                ax.imshow(a, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=7)
    fig.suptitle(f"{res['run']} on {res['testset']} {res['dataset']}/{res['name']} (×{res['scale']}"
                 f"{', crop ' + str(crop) if crop else ''})", fontsize=9)
    fig.tight_layout()
    return fig


# =============================================================================== the notebook's widgets
def available_runs(runs_root: str | Path = "runs") -> list[str]:
    """Run names with a ``model.pt`` under ``runs_root`` (the inspect notebook's run drop-down)."""
    root = Path(runs_root)
    return sorted(p.parent.name for p in root.glob("*/model.pt") if not p.parent.name.startswith(("_", ".")))


def face_names(testset: str, data_root: str | Path = "data", scale: int = 8) -> list[str]:
    """``dataset/name`` of every face of ``testset`` in the data set's order (the face drop-down)."""
    ds_name, split = TESTSET_SPLITS[testset]
    df = FaceSRDataset(Path(data_root), ds_name, split, scale, keys=("hr",)).df
    return [f"{d}/{n}" for d, n in zip(df["dataset"], df["name"])]


def compare_figure(a: Mapping, b: Mapping):
    """Two runs on the same face: LR, SR of each, HR; error map of each (same colour scale)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 4, figsize=(12, 6.4))
    vmax = max(float(np.max(r["error"])) if r["error"] is not None else 0.0 for r in (a, b)) or 1.0
    tiles = [("LR", a["lr"]), (f"{a['run']}", a["sr"]), (f"{b['run']}", b["sr"]), ("HR", a["hr"])]
    for k, (title, img) in enumerate(tiles):
        if img is not None:
            ax[0, k].imshow(np.clip(img, 0, 1), interpolation="nearest")
        ax[0, k].set_title(title, fontsize=9)
    for k, r in ((1, a), (2, b)):
        if r["error"] is not None:
            ax[1, k].imshow(r["error"], cmap="magma", vmin=0, vmax=vmax)
            ax[1, k].set_title(f"|SR-HR| {r['run']}\nPSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f}", fontsize=8)
    for x in ax.ravel():
        x.axis("off")
    fig.suptitle(f"{a['testset']}: {a['dataset']}/{a['name']} (x{a['scale']})", fontsize=10)
    fig.tight_layout()
    return fig
