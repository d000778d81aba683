"""``reports/tables/protocol_sensitivity.md|csv``: the same SR outputs of every run scored under
each metric convention of the literature (:data:`fsrlib.metrics.scoring.CONVENTIONS`): how many
dB and SSIM points each choice moves, per run, and whether it changes the ranking of the runs.

It reads the SR faces the evaluate stage saved (``results/{run}/{testset}/sr/``) and the HR
faces (``data/faces``); nothing is re-inferred. (The LR convention, MATLAB imresize vs PIL
bicubic, needs the models run again on another LR: not part of this table.)
"""
from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ..config import parse_run_name
from ..data.faces import read_faces
from ..io import write_csv, write_text
from ..metrics.scoring import CONVENTIONS, score_conventions

__all__ = ["protocol_sensitivity", "write_protocol_sensitivity"]


def _pairs(run_dir: Path, faces: pd.DataFrame, faces_root: Path):
    sr_root = run_dir / "sr"
    sr, hr = [], []
    for r in faces.itertuples():
        p = sr_root / r.dataset / f"{r.name}.png"
        if p.exists():
            sr.append(np.asarray(Image.open(p).convert("RGB")))
            hr.append(np.asarray(Image.open(faces_root / r.dataset / f"{r.name}.png").convert("RGB")))
    return sr, hr


def protocol_sensitivity(results_root="results", data_root="data", testsets: Sequence[str] = ("helen50",),
                         runs: Sequence[str] | None = None) -> pd.DataFrame:
    """Long table: run, scale, testset, n_images, convention, psnr, ssim, d_psnr, d_ssim (vs ``ref``)."""
    from .evaluate import TESTSET_SPLITS

    results_root, faces_root = Path(results_root), Path(data_root) / "faces"
    faces = read_faces(faces_root)
    rows = []
    for run_dir in sorted(p for p in results_root.iterdir() if p.is_dir()):
        if runs is not None and run_dir.name not in runs:
            continue
        try:
            scale = parse_run_name(run_dir.name)[1]
        except Exception:  # not a run folder
            continue
        for ts in testsets:
            mj = run_dir / ts / "metrics.json"
            if not mj.exists() or not json.loads(mj.read_text()).get("outputs_sr", True):
                continue
            ds, split = TESTSET_SPLITS[ts]
            f = faces[faces.dataset == ds]
            f = f[f.helen50.astype(bool)] if split == "helen50" else f[f.split == split]
            sr, hr = _pairs(run_dir / ts, f.sort_values("name"), faces_root)
            if not sr:
                continue
            sc = score_conventions(sr, hr, scale)
            for conv, v in sc.items():
                rows.append({"run": run_dir.name, "scale": scale, "testset": ts, "n_images": len(sr),
                             "convention": conv, "psnr": v["psnr"], "ssim": v["ssim"],
                             "d_psnr": v["psnr"] - sc["ref"]["psnr"], "d_ssim": v["ssim"] - sc["ref"]["ssim"]})
    return pd.DataFrame(rows, columns=["run", "scale", "testset", "n_images", "convention", "psnr", "ssim",
                                       "d_psnr", "d_ssim"])


def _swaps(ref: pd.Series, other: pd.Series) -> int:
    """Pairs of runs whose PSNR order differs between two conventions."""
    return sum(1 for a, b in combinations(ref.index, 2)
               if np.sign(ref[a] - ref[b]) != np.sign(other[a] - other[b]))


def write_protocol_sensitivity(df: pd.DataFrame, out_dir="reports/tables") -> Path:
    """The csv (long) and the md: per test set and scale, each run's ``ref`` PSNR / SSIM and the
    shift of every convention (dB / SSIM points x 100), the pairs of runs whose order changes."""
    out_dir = Path(out_dir)
    write_csv(out_dir / "protocol_sensitivity.csv", df)
    convs = [c for c in CONVENTIONS if c != "ref"]
    lines = ["# Protocol sensitivity: the same SR outputs under each metric convention", "",
             "Each cell: the shift of PSNR (dB) / SSIM (x100) from the project's protocol (`ref`: "
             + CONVENTIONS["ref"]["label"] + "). Conventions:", ""]
    lines += [f"- `{c}`: {CONVENTIONS[c]['label']}" for c in convs]
    lines += ["", "The LR convention (MATLAB imresize vs PIL bicubic) needs re-inference and is not in this table.", ""]
    if df.empty:
        lines.append("No SR outputs found (run the evaluate stage).")
    for (ts, scale), g in df.groupby(["testset", "scale"], sort=True):
        n = int(g.n_images.max())
        lines += [f"## {ts}, x{scale} ({n} faces)", "",
                  "| run | PSNR ref | SSIM ref | " + " | ".join(convs) + " |",
                  "|---|---|---|" + "---|" * len(convs)]
        piv_p = g.pivot(index="run", columns="convention", values="psnr")
        piv_s = g.pivot(index="run", columns="convention", values="ssim")
        for run in piv_p.index:
            p0, s0 = piv_p.loc[run, "ref"], piv_s.loc[run, "ref"]
            cells = [f"{piv_p.loc[run, c] - p0:+.2f} / {100 * (piv_s.loc[run, c] - s0):+.2f}" for c in convs]
            lines.append(f"| {run} | {p0:.2f} | {s0:.4f} | " + " | ".join(cells) + " |")
        swaps = [f"{c}: {_swaps(piv_p['ref'], piv_p[c])}" for c in convs]
        lines += ["", f"Run pairs whose PSNR order differs from `ref` (of {len(piv_p) * (len(piv_p) - 1) // 2}): "
                  + ", ".join(swaps), ""]
    if not df.empty:
        big = df[df.convention != "ref"].assign(a=lambda d: d.d_psnr.abs()).sort_values("a", ascending=False).head(5)
        lines += ["## Largest PSNR shifts", ""]
        lines += [f"- {r.run} on {r.testset}, `{r.convention}`: {r.d_psnr:+.2f} dB (SSIM {r.d_ssim:+.4f})"
                  for r in big.itertuples()]
    return write_text(out_dir / "protocol_sensitivity.md", "\n".join(lines) + "\n")
