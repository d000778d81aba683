"""Do two networks rank the methods alike? The identity measure of dlib vs MobileFaceNet and the
landmark NME of dlib vs PFLD, per test set, over our runs (``downstream.json``, as
``metrics/downstream.json`` holds them: ``{run: {testset: {metric: value}}}``).

:func:`rank_agreement`: Spearman's rho, Kendall's tau-b and the pairs of runs the two order
differently; :func:`agreement_table` writes them for every test set and measure
(``reports/tables/downstream_ranking_agreement.md|csv``); :func:`agreement_panels` is the data
of the figure (:func:`fsrlib.report.figures.ranking_agreement`).
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from .results import run_label
from .tables import write_table

__all__ = ["MEASURES", "rank_agreement", "agreement_points", "agreement_panels", "agreement_table",
           "write_agreement_table"]

#: (measure, metric of network 1, metric of network 2, network 1, network 2, axis label)
MEASURES = (("identity", "identity_cos", "identity_cos_mobilefacenet", "dlib", "MobileFaceNet",
             "identity cosine SR vs HR ↑"),
            ("landmarks", "lmk_nme_io", "lmk_pfld_nme_io", "dlib", "PFLD", "landmark NME (inter-ocular) ↓"))


def rank_agreement(a: Sequence[float], b: Sequence[float]) -> dict:
    """``{"n", "rho", "tau", "discordant", "pairs"}`` of two scores of the same items: Spearman's
    rho, Kendall's tau-b (NaN under 3 items) and the item pairs ordered differently (a tie on one
    side only counts as a disagreement)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = len(a)
    disc = sum(1 for i, j in combinations(range(n), 2) if np.sign(a[i] - a[j]) != np.sign(b[i] - b[j]))
    rho = tau = float("nan")
    if n >= 3:
        rho, tau = float(spearmanr(a, b).statistic), float(kendalltau(a, b).statistic)
    return {"n": n, "rho": rho, "tau": tau, "discordant": disc, "pairs": n * (n - 1) // 2}


def agreement_points(downstream: Mapping, testset: str, metric_1: str, metric_2: str) -> pd.DataFrame:
    """``run, v1, v2`` of every run (not the HR rows) with both metrics on ``testset``."""
    rows = []
    for run, by_ts in sorted(downstream.items()):
        m = (by_ts or {}).get(testset) or {}
        v1, v2 = m.get(metric_1), m.get(metric_2)
        if run_label(run) != "hr" and isinstance(v1, (int, float)) and isinstance(v2, (int, float)) \
                and np.isfinite(v1) and np.isfinite(v2):
            rows.append({"run": run, "v1": float(v1), "v2": float(v2)})
    return pd.DataFrame(rows, columns=["run", "v1", "v2"])


def _r2(v: float) -> str:
    return "–" if np.isnan(v) else f"{v:.2f}"


def _stats_text(s: dict) -> str:
    return f"Spearman ρ = {_r2(s['rho'])}, Kendall τ = {_r2(s['tau'])} (n = {s['n']})"


def agreement_panels(downstream: Mapping, testset: str) -> list[dict]:
    """One panel per measure with points: ``{points, xlabel, ylabel, title, stats}``."""
    panels = []
    for measure, m1, m2, net1, net2, label in MEASURES:
        pts = agreement_points(downstream, testset, m1, m2)
        if len(pts) < 2:
            continue
        s = rank_agreement(pts["v1"], pts["v2"])
        panels.append({"points": pts, "xlabel": f"{net1}: {label}", "ylabel": f"{net2}: {label}",
                       "title": f"{measure}: {_stats_text(s)}", "stats": s})
    return panels


def agreement_table(downstream: Mapping, testsets: Sequence[str] | None = None) -> pd.DataFrame:
    """Per test set and measure: the two networks, number of runs, rho, tau, pairs in disagreement."""
    testsets = testsets or sorted({ts for by_ts in downstream.values() for ts in (by_ts or {})})
    rows = []
    for ts in testsets:
        for measure, m1, m2, net1, net2, _ in MEASURES:
            pts = agreement_points(downstream, ts, m1, m2)
            if len(pts) < 2:
                continue
            s = rank_agreement(pts["v1"], pts["v2"])
            rows.append({"testset": ts, "measure": measure, "networks": f"{net1} ({m1}) vs {net2} ({m2})",
                         "n_runs": s["n"], "spearman_rho": _r2(s["rho"]), "kendall_tau": _r2(s["tau"]),
                         "pairs_in_disagreement": f"{s['discordant']} of {s['pairs']}"})
    return pd.DataFrame(rows, columns=["testset", "measure", "networks", "n_runs", "spearman_rho", "kendall_tau",
                                       "pairs_in_disagreement"])


def write_agreement_table(df: pd.DataFrame, out_dir: str | Path = "reports/tables") -> list[Path]:
    """``downstream_ranking_agreement.md|csv`` (:func:`fsrlib.report.tables.write_table`)."""
    cap = ("Downstream ranking agreement: do dlib and MobileFaceNet (identity cosine), dlib and PFLD "
           "(landmark NME) rank our runs alike? Spearman ρ, Kendall τ-b, run pairs ordered differently")
    details = ["dlib's identity cosine is over the downstream stage's dlib subset (downstream.dlib_max_images), "
               "MobileFaceNet's over every face of the test set; the HR rows (HR against itself) are left out.",
               "Spearman ρ and Kendall τ-b need 3 runs or more (else –); a pair is in disagreement when the two "
               "networks order its runs differently."]
    return list(write_table(df, "downstream_ranking_agreement", cap, out_dir, details))
