"""``reports/tables/protocol_sensitivity.md|csv``: the same SR outputs of every run scored under
each metric convention of the literature (:data:`fsrlib.metrics.scoring.CONVENTIONS`): how many
dB and SSIM points each choice moves, per run, and whether it changes the ranking of the runs.

It reads the SR faces the evaluate stage saved and the HR faces (``data/faces``); nothing is
re-inferred. Two sets of SR faces per run and test set:

* ``results/{run}/{testset}/sr/{dataset}/{name}.png``: the project's LR (MATLAB imresize);
* ``results/{run}/{testset}/sr_pil/{dataset}/{name}.png`` (same names; the evaluate stage writes
  it for ``evaluate.pil_lr_testsets``): the same model on an LR made by PIL bicubic
  (``Image.resize(..., BICUBIC)``, upsampled back by PIL for upsampled-input models).

The conventions marked ``"lr": "pil"`` (``lr_pil``, ``family_A``) are scored on ``sr_pil/``.
Without a complete ``sr_pil/``, ``lr_pil`` is left out and ``family_A`` is scored on ``sr/``,
which the csv (``lr_source``) and the md (a footnote) say. Family A also reports VIF (steerable
pyramid on PIL 'L' grey, :mod:`fsrlib.metrics.vif_pyramid`) and LPIPS (AlexNet, RGB) next to the
project's VIFp (Y) and LPIPS of ``ref``; LPIPS is NaN with its reason when the weights are absent.
"""
from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ..config import parse_run_name
from ..data.faces import read_faces
from ..io import write_csv, write_text
from ..metrics.scoring import CONVENTIONS, build_metric, score_conventions
from ..metrics.vif_pyramid import VIFPyramid

__all__ = ["protocol_testsets", "protocol_sensitivity", "write_protocol_sensitivity", "COLUMNS"]

COLUMNS = ["run", "scale", "testset", "n_images", "convention", "lr_source", "psnr", "ssim", "vif", "lpips",
           "d_psnr", "d_ssim", "d_vif", "d_lpips"]
FALLBACK = "sr (no sr_pil)"  # lr_source of family_A when the PIL-LR outputs are absent


def _read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _pairs(run_dir: Path, faces: pd.DataFrame, faces_root: Path, folder: str = "sr"):
    """SR faces of ``run_dir/folder`` and their HR faces, for the faces that have an SR image."""
    sr, hr = [], []
    for r in faces.itertuples():
        p = run_dir / folder / r.dataset / f"{r.name}.png"
        if p.exists():
            sr.append(_read_rgb(p))
            hr.append(_read_rgb(faces_root / r.dataset / f"{r.name}.png"))
    return sr, hr


def _perceptual(sr, hr, vif_metric, lpips_metric) -> dict[str, float]:
    """Mean VIF and LPIPS of the images (LPIPS NaN when its weights are absent)."""
    ok, _ = lpips_metric.available()
    return {"vif": float(vif_metric(sr, hr).mean()),
            "lpips": float(lpips_metric(sr, hr).mean()) if ok else float("nan")}


def _score_run(sr, hr, sr_pil, scale: int, lpips_metric) -> list[dict]:
    """One row per convention: PSNR / SSIM (VIF, LPIPS for ``ref``, ``lr_pil`` and ``family_A``)
    on ``sr`` or, for the ``"lr": "pil"`` conventions, on ``sr_pil`` (``None``: absent)."""
    own = {k: c for k, c in CONVENTIONS.items() if c.get("lr") != "pil"}
    pil = {k: c for k, c in CONVENTIONS.items() if c.get("lr") == "pil"}
    scores = {k: dict(v, lr_source="sr") for k, v in score_conventions(sr, hr, scale, own).items()}
    vifp = build_metric({"type": "vif", "backend": "fsrlib"})
    scores["ref"].update(_perceptual(sr, hr, vifp, lpips_metric))
    if sr_pil is not None:
        for k, v in score_conventions(sr_pil, hr, scale, pil).items():
            scores[k] = dict(v, lr_source="sr_pil")
        scores["lr_pil"].update(_perceptual(sr_pil, hr, vifp, lpips_metric))
    else:
        a = score_conventions(sr, hr, scale, {"family_A": pil["family_A"]})["family_A"]
        scores["family_A"] = dict(a, lr_source=FALLBACK)
    fam_sr = sr_pil if sr_pil is not None else sr
    scores["family_A"].update(_perceptual(fam_sr, hr, VIFPyramid(color="pil_l"), lpips_metric))
    ref = scores["ref"]
    rows = []
    for conv in CONVENTIONS:
        if conv not in scores:
            continue
        v = scores[conv]
        row = {"convention": conv, "lr_source": v["lr_source"]}
        for m in ("psnr", "ssim", "vif", "lpips"):
            row[m] = v.get(m, float("nan"))
            row[f"d_{m}"] = row[m] - ref[m] if m in v else float("nan")
        rows.append(row)
    return rows


def _testset_faces(faces: pd.DataFrame, ts: str) -> pd.DataFrame:
    from .evaluate import TESTSET_SPLITS

    ds, split = TESTSET_SPLITS[ts]
    f = faces[faces.dataset == ds]
    f = f[f.helen50.astype(bool)] if split == "helen50" else f[f.split == split]
    return f.sort_values("name")


def protocol_testsets(params: Mapping) -> list[str]:
    """The test sets to re-score: ``report.protocol_testsets`` (the demo: helen50, ~90 ms a face
    for every convention), else every test set of ``evaluate.testsets``."""
    rep = (params.get("report") or {}).get("protocol_testsets")
    return list(rep) if rep else list((params.get("evaluate") or {}).get("testsets") or ["helen50"])


def protocol_sensitivity(results_root="results", data_root="data", testsets: Sequence[str] = ("helen50",),
                         runs: Sequence[str] | None = None, lpips_weights: str | None = None) -> pd.DataFrame:
    """Long table (:data:`COLUMNS`): per run, test set and convention, PSNR / SSIM (and VIF, LPIPS
    where computed, else NaN) and their shifts from ``ref``; ``lr_source`` = the SR folder scored."""
    results_root, faces_root = Path(results_root), Path(data_root) / "faces"
    faces = read_faces(faces_root)
    lpips_metric = build_metric({"type": "lpips", "backbone_weights": lpips_weights}, offline=True)
    rows = []
    for run_dir in sorted(p for p in results_root.iterdir() if p.is_dir()):
        if runs is not None and run_dir.name not in runs:
            continue
        scale = parse_run_name(run_dir.name)[1]
        if scale is None:  # not a run folder
            continue
        for ts in testsets:
            mj = run_dir / ts / "metrics.json"
            if not mj.exists() or not json.loads(mj.read_text()).get("outputs_sr", True):
                continue
            f = _testset_faces(faces, ts)
            sr, hr = _pairs(run_dir / ts, f, faces_root)
            if not sr:
                continue
            sr_pil, hr_pil = _pairs(run_dir / ts, f, faces_root, "sr_pil")
            complete = len(sr_pil) == len(sr) and all(np.array_equal(a, b) for a, b in zip(hr, hr_pil))
            for row in _score_run(sr, hr, sr_pil if complete else None, scale, lpips_metric):
                rows.append({"run": run_dir.name, "scale": scale, "testset": ts, "n_images": len(sr), **row})
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs["lpips_missing"] = "" if lpips_metric.available()[0] else lpips_metric.available()[1]
    return df


def _swaps(ref: pd.Series, other: pd.Series) -> int:
    """Pairs of runs whose PSNR order differs between two conventions (runs scored under both)."""
    both = ref.index[ref.notna() & other.notna()]
    return sum(1 for a, b in combinations(both, 2)
               if np.sign(ref[a] - ref[b]) != np.sign(other[a] - other[b]))


def _fmt(x: float, digits: int) -> str:
    return "n/a" if pd.isna(x) else f"{x:.{digits}f}"


def _shift_table(g: pd.DataFrame, convs: list[str]) -> list[str]:
    """Per run: ``ref`` PSNR / SSIM and each convention's shift; † = family_A scored on sr/."""
    lines = ["| run | PSNR ref | SSIM ref | " + " | ".join(convs) + " |", "|---|---|---|" + "---|" * len(convs)]
    piv = {m: g.pivot(index="run", columns="convention", values=m).reindex(columns=CONVENTIONS)
           for m in ("psnr", "ssim", "lr_source")}
    for run in piv["psnr"].index:
        p0, s0 = piv["psnr"].loc[run, "ref"], piv["ssim"].loc[run, "ref"]
        cells = []
        for c in convs:
            p, s = piv["psnr"].loc[run, c], piv["ssim"].loc[run, c]
            cell = "n/a" if pd.isna(p) else f"{p - p0:+.2f} / {100 * (s - s0):+.2f}"
            cells.append(cell + (" †" if piv["lr_source"].loc[run, c] == FALLBACK else ""))
        lines.append(f"| {run} | {p0:.2f} | {s0:.4f} | " + " | ".join(cells) + " |")
    swaps = [f"{c}: {_swaps(piv['psnr']['ref'], piv['psnr'][c])}" for c in convs]
    n = len(piv["psnr"])
    lines += ["", f"Run pairs whose PSNR order differs from `ref` (of {n * (n - 1) // 2}): " + ", ".join(swaps), ""]
    return lines


def _perceptual_table(g: pd.DataFrame) -> list[str]:
    """Per run: VIF and LPIPS under ``ref`` (VIFp on Y), ``lr_pil`` and ``family_A`` (pyramid VIF, PIL 'L')."""
    convs = [c for c in ("ref", "lr_pil", "family_A") if c in set(g.convention)]
    lines = ["| run | " + " | ".join(f"VIF {c} | LPIPS {c}" for c in convs) + " |",
             "|---|" + "---|---|" * len(convs)]
    for run, r in g.groupby("run", sort=True):
        r = r.set_index("convention")
        cells = [f"{_fmt(r.vif.get(c, np.nan), 4)} | {_fmt(r.lpips.get(c, np.nan), 4)}" for c in convs]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return lines + [""]


def _footnotes(df: pd.DataFrame, lpips_missing: str) -> list[str]:
    lines = []
    fallback = sorted(set(df.run[(df.convention == "family_A") & (df.lr_source == FALLBACK)]))
    if fallback:
        lines.append(f"† `family_A` scored on `sr/` (MATLAB-imresize LR), not on a PIL-bicubic LR: no complete "
                     f"`sr_pil/` for {len(fallback)} run(s) ({', '.join(fallback)}); `lr_pil` is n/a for them.")
    if lpips_missing:
        lines.append(f"LPIPS missing: {lpips_missing}.")
    return [x for line in lines for x in (line, "")]  # one paragraph each


def write_protocol_sensitivity(df: pd.DataFrame, out_dir="reports/tables", lpips_missing: str | None = None) -> Path:
    """The csv (long) and the md: per test set and scale, each run's ``ref`` PSNR / SSIM and the
    shift of every convention (dB / SSIM points x 100), the pairs of runs whose order changes, and
    the VIF / LPIPS of ``ref``, ``lr_pil`` and ``family_A``. ``lpips_missing``: the reason LPIPS is
    NaN (default: what :func:`protocol_sensitivity` recorded in ``df.attrs``)."""
    out_dir = Path(out_dir)
    write_csv(out_dir / "protocol_sensitivity.csv", df)
    lpips_missing = df.attrs.get("lpips_missing", "") if lpips_missing is None else lpips_missing
    convs = [c for c in CONVENTIONS if c != "ref"]
    lines = ["# Protocol sensitivity: the same SR outputs under each metric convention", "",
             "Each cell: the shift of PSNR (dB) / SSIM (x100) from the project's protocol (`ref`: "
             + CONVENTIONS["ref"]["label"] + "). Conventions:", ""]
    lines += [f"- `{c}`: {CONVENTIONS[c]['label']}" for c in convs]
    lines += ["", "`lr_pil` and `family_A` score the run's outputs on an LR made by PIL bicubic "
              "(`sr_pil/`); every other row scores the outputs on the project's MATLAB-imresize LR (`sr/`).", ""]
    if df.empty:
        lines.append("No SR outputs found (run the evaluate stage).")
    for (ts, scale), g in df.groupby(["testset", "scale"], sort=True):
        lines += [f"## {ts}, x{scale} ({int(g.n_images.max())} faces)", ""]
        lines += _shift_table(g, convs)
        lines += ["VIF (`ref`, `lr_pil`: VIFp on Y; `family_A`: steerable-pyramid VIF on PIL 'L') and LPIPS "
                  "(AlexNet, RGB):", ""]
        lines += _perceptual_table(g)
    lines += _footnotes(df, lpips_missing)
    if not df.empty:
        big = df[df.convention != "ref"].assign(a=lambda d: d.d_psnr.abs()).sort_values("a", ascending=False).head(5)
        lines += ["## Largest PSNR shifts", ""]
        lines += [f"- {r.run} on {r.testset}, `{r.convention}`: {r.d_psnr:+.2f} dB (SSIM {r.d_ssim:+.4f})"
                  for r in big.itertuples()]
    return write_text(out_dir / "protocol_sensitivity.md", "\n".join(lines) + "\n")
