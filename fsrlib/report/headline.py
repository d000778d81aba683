"""The headline of ``reports/README.md``: every method at ×8 on CelebA and Helen, the paper's
PSNR beside ours, and each one's margin over bicubic (paper: over the bicubic row of the same
paper table; ours: over our ``bicubic-x8``)."""
from __future__ import annotations

import math

import pandas as pd

from ..config import parse_run_name
from .captions import RUNS_LINK

__all__ = ["SOURCES", "OWN_PAPER", "headline_table"]

#: paper tables the headline reads, in order of preference (paper, table, block)
SOURCES = (("aminet", "T7", ""), ("fishfsrnet", "T1", ""), ("wnet", "T1", "mode_I"), ("sparnet", "T1", ""),
           ("wnet", "T1", "mode_II"), ("aminet", "T8", ""))
#: a method's own paper comes first
OWN_PAPER = {"aminet": "aminet", "amigan": "aminet", "fishfsrnet": "fishfsrnet", "wnet": "wnet", "sparnet": "sparnet",
             "sparnethd": "sparnet", "pgnet": "thesis", "pgnet_gan": "thesis"}
TESTSETS = (("celeba", "celeba_test", "CelebA"), ("helen", "helen50", "Helen"))
MISSING = "–"


def _paper_value(paper: pd.DataFrame, key: str, dataset: str) -> tuple[float | None, float | None, str]:
    sel = paper[(paper["method_key"] == key) & (paper["dataset"] == dataset) & (paper["scale"] == 8)
                & (paper["metric"] == "psnr")]
    own = OWN_PAPER.get(key)
    order = sorted(SOURCES, key=lambda s: s[0] != own)
    for p, t, b in order:
        row = sel[(sel["paper"] == p) & (sel["table"] == t) & (sel["block"] == b)]
        if len(row):
            bic = paper[(paper["paper"] == p) & (paper["table"] == t) & (paper["block"] == b)
                        & (paper["method_key"] == "bicubic") & (paper["dataset"] == dataset)
                        & (paper["scale"] == 8) & (paper["metric"] == "psnr")]
            v = float(row["value"].iloc[0])
            return v, (v - float(bic["value"].iloc[0])) if len(bic) else None, f"{p} {t}"
    return None, None, ""


def _ours(ours: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{run: {testset: psnr}}`` of the preferred (untagged) ×8 run of each method key."""
    sub = ours[(ours["scale"] == 8) & (ours["metric"] == "psnr") & ours["value"].notna()]
    out: dict[str, dict[str, float]] = {}
    for key, g in sub.groupby("method_key"):
        if key == "hr":
            continue
        run = sorted(g["run"].unique(), key=lambda r: (parse_run_name(r)[2] != "", r))[0]
        gr = g[g["run"] == run]
        out[run] = {t: float(v) for t, v in zip(gr["testset"], gr["value"])}
    return out


def _f(v: float | None, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def headline_table(ours: pd.DataFrame, paper: pd.DataFrame) -> list[str]:
    """Markdown lines of the headline table (empty when no ×8 run has a PSNR)."""
    runs = _ours(ours) if len(ours) else {}
    if not runs:
        return []
    bic = next((v for r, v in runs.items() if parse_run_name(r)[0] == "bicubic"), {})
    head = "| method | run | " + " | ".join(f"{lab} PSNR paper / ours | {lab} Δ bicubic paper / ours"
                                           for _, _, lab in TESTSETS) + " | paper table |"
    lines = [head, "|---|---|" + "---|---|" * len(TESTSETS) + "---|"]
    order = sorted(runs, key=lambda r: (parse_run_name(r)[0] != "bicubic", r))
    for run in order:
        key = parse_run_name(run)[0]
        cells, srcs = [], []
        for ds, ts, _ in TESTSETS:
            pv, pm, src = _paper_value(paper, key, ds)
            ov = runs[run].get(ts)
            om = ov - bic[ts] if ov is not None and ts in bic and key != "bicubic" else None
            cells += [f"{_f(pv)} / {_f(ov)}", f"{_f(pm, True) if key != 'bicubic' else MISSING} / {_f(om, True)}"]
            if src and src not in srcs:
                srcs.append(src)
        lines.append(f"| {key} | {run} | " + " | ".join(cells) + f" | {', '.join(srcs) or MISSING} |")
    lines += ["", "Y-PSNR (dB), ours on celeba_test and helen50 at this profile's budget; the papers' numbers are "
              "from the table named (the method's own paper first). " + RUNS_LINK.replace("(runs.md)",
                                                                                       "(tables/runs.md)")]
    return lines
