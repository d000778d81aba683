"""Seeds: a run ``<key>-x<s>`` and its ``<key>-x<s>-seed<k>`` copies (another seed for the
init, the data order and the augmentation; params.yaml ``runs:``) pooled into mean, standard
deviation and standard error per test set and metric, and the tie rule of the tables: two
means closer than two standard errors of their difference are a tie.

:func:`seed_stats` works on :func:`fsrlib.report.results.load_results`' long table;
:func:`add_seed_columns` gives ``ours_summary`` its ``n_seeds``, ``psnr_std`` and ``ssim_std``
(``psnr`` / ``ssim`` of a seeded run become the means over its seeds).
"""
from __future__ import annotations

import math
import re

import pandas as pd

from .vocabulary import METRIC_DECIMALS

__all__ = ["SEED_TAG", "base_run", "seed_stats", "add_seed_columns", "is_tie", "compare"]

SEED_TAG = re.compile(r"^seed(\d+)$")


def base_run(run: str) -> str:
    """``sparnet-x8-seed2`` -> ``sparnet-x8``; any other name is its own base."""
    head, _, tag = run.rpartition("-")
    return head if head and SEED_TAG.match(tag) else run


def seed_stats(ours: pd.DataFrame, metrics=("psnr", "ssim")) -> pd.DataFrame:
    """One row per (base run, test set, metric): ``mean, std`` (sample, ddof 1; 0 for one
    seed), ``sem`` (std / sqrt(n)), ``n`` and ``runs`` (the pooled run names)."""
    sub = ours[(ours["testset"] != "") & ours["metric"].isin(metrics) & ours["value"].notna()].copy()
    cols = ["run", "testset", "metric", "mean", "std", "sem", "n", "runs"]
    if sub.empty:
        return pd.DataFrame(columns=cols)
    sub["base"] = sub["run"].map(base_run)
    recs = []
    for (b, ts, m), g in sub.groupby(["base", "testset", "metric"]):
        g = g.drop_duplicates("run")
        v = g["value"].astype(float)
        n = len(v)
        sd = float(v.std(ddof=1)) if n > 1 else 0.0
        recs.append({"run": b, "testset": ts, "metric": m, "mean": float(v.mean()), "std": sd,
                     "sem": sd / math.sqrt(n), "n": n, "runs": ",".join(sorted(g["run"]))})
    return pd.DataFrame(recs, columns=cols)


def is_tie(a_mean: float, a_sem: float, b_mean: float, b_sem: float) -> bool:
    """True when ``|a - b|`` is below two standard errors of the difference
    (``2 sqrt(sem_a^2 + sem_b^2)``). Unseeded numbers (sem 0) never tie unless equal."""
    return abs(a_mean - b_mean) < 2 * math.hypot(a_sem, b_sem)


def compare(a_mean: float, a_sem: float, b_mean: float, b_sem: float, decimals: int = 2) -> str:
    """``"tie (a vs b)"`` or ``"a > b"`` / ``"a < b"``, the numbers rounded to ``decimals``."""
    fa, fb = f"{a_mean:.{decimals}f}", f"{b_mean:.{decimals}f}"
    if is_tie(a_mean, a_sem, b_mean, b_sem):
        return f"tie ({fa} vs {fb}, within 2 SE)"
    return f"{fa} {'>' if a_mean > b_mean else '<'} {fb}"


def add_seed_columns(summary: pd.DataFrame, ours: pd.DataFrame) -> pd.DataFrame:
    """``summary`` (run x testset, formatted strings) with ``n_seeds``, ``psnr_std`` and
    ``ssim_std`` after ``psnr`` / ``ssim``; a base run's ``psnr`` / ``ssim`` are the means over
    its seeds (a ``-seed<k>`` row keeps its own value and ``n_seeds`` 1)."""
    if summary.empty:
        return summary.assign(n_seeds=[], psnr_std=[], ssim_std=[])
    st = seed_stats(ours).set_index(["run", "testset", "metric"])
    out = summary.copy()
    n_seeds, stds = [], {"psnr": [], "ssim": []}
    for i, r in out.iterrows():
        n = 1
        for m in ("psnr", "ssim"):
            key = (r["run"], r["testset"], m)
            if key in st.index and base_run(r["run"]) == r["run"]:
                s = st.loc[key]
                n = max(n, int(s["n"]))
                d = METRIC_DECIMALS.get(m, 4)
                if m in out.columns and int(s["n"]) > 1:
                    out.at[i, m] = f"{s['mean']:.{d}f}"
                stds[m].append(f"{s['std']:.{d}f}" if int(s["n"]) > 1 else "")
            else:
                stds[m].append("")
        n_seeds.append(n)
    cols = list(out.columns)
    out["n_seeds"] = n_seeds
    out["psnr_std"], out["ssim_std"] = stds["psnr"], stds["ssim"]
    order = []
    for c in cols:
        order.append(c)
        if c == "testset":
            order.append("n_seeds")
        if c in ("psnr", "ssim"):
            order.append(f"{c}_std")
    order += [c for c in ("psnr_std", "ssim_std") if c not in order]
    return out.loc[:, order]


def _stats_index(ours: pd.DataFrame) -> pd.DataFrame:
    return seed_stats(ours).set_index(["run", "testset", "metric"])


def add_margin_column(summary: pd.DataFrame, ours: pd.DataFrame, reference: str = "bicubic") -> pd.DataFrame:
    """``summary`` with ``psnr_vs_bicubic``: the (seed-mean) PSNR minus ``bicubic-x<s>``'s on the
    same test set, ``"+0.31"``, or ``"+0.03 (tie)"`` when inside two standard errors
    (:func:`is_tie`; bicubic has none). Blank for the reference itself and where either is missing."""
    st = _stats_index(ours)
    cells = []
    for _, r in summary.iterrows():
        run, ts = r["run"], r["testset"]
        scale = base_run(run).rpartition("-x")[2]
        ref = f"{reference}-x{scale}"
        a, b = (run, ts, "psnr"), (ref, ts, "psnr")
        if run.startswith(reference + "-") or a not in st.index or b not in st.index or base_run(run) != run:
            cells.append("")
            continue
        sa, sb = st.loc[a], st.loc[b]
        d = float(sa["mean"]) - float(sb["mean"])
        tie = is_tie(float(sa["mean"]), float(sa["sem"]), float(sb["mean"]), float(sb["sem"]))
        cells.append(f"{d:+.2f}" + (" (tie)" if tie else ""))
    out = summary.copy()
    out[f"psnr_vs_{reference}"] = cells
    return out


#: The ablations of the seed papers that the demo runs, as (run, its ablation, what the paper reports).
ABLATIONS = [("sparnet-x8", "sparnet_baseline-x8", "SPARNet Table I: SPARNet (with FAU attention) above its Baseline")]


def ablation_notes(ours: pd.DataFrame, ablations=ABLATIONS, metric: str = "psnr") -> list[str]:
    """One line per (ablation, test set): the two seed means and whether ours agrees with the
    paper's ordering, ties within two standard errors, or contradicts it outside the noise."""
    st = _stats_index(ours)
    lines = []
    for full, abl, claim in ablations:
        for ts in sorted({t for (r, t, m) in st.index if r == full and m == metric}):
            if (abl, ts, metric) not in st.index:
                continue
            a, b = st.loc[(full, ts, metric)], st.loc[(abl, ts, metric)]
            verdict = compare(float(a["mean"]), float(a["sem"]), float(b["mean"]), float(b["sem"]))
            if verdict.startswith("tie"):
                word = "a tie at this budget"
            elif float(a["mean"]) > float(b["mean"]):
                word = "agrees"
            else:
                word = "CONTRADICTS the paper outside the noise"
            lines.append(f"{claim}; ours on {ts} ({metric}, mean of {int(a['n'])}/{int(b['n'])} seeds): "
                         f"{full} {float(a['mean']):.2f} ± {float(a['std']):.2f} vs {abl} "
                         f"{float(b['mean']):.2f} ± {float(b['std']):.2f}: {word}.")
    return lines


def below_reference_notes(ours: pd.DataFrame, parents: dict, reference: str = "bicubic",
                          testset: str = "helen50", stage_images: int | None = None) -> list[str]:
    """For every run started from another (GAN fine-tunes, FishFSRNet) whose PSNR on ``testset``
    ends below ``bicubic-x<s>``: its PSNR / SSIM change against the parent it started from, the
    measured reason a table row gives (a GAN trades PSNR for its adversarial term)."""
    st = _stats_index(ours)
    lines = []
    for run, parent in sorted(parents.items()):
        ref = f"{reference}-x{run.rpartition('-x')[2].split('-')[0]}"
        keys = [(x, testset, m) for x in (run, parent, ref) for m in ("psnr", "ssim")]
        if base_run(run) != run or not all(k in st.index for k in keys):
            continue
        p = {k: float(st.loc[k]["mean"]) for k in keys}
        if p[(run, testset, "psnr")] >= p[(ref, testset, "psnr")]:
            continue
        lines.append(f"{run} ends below {ref} on {testset} ({p[(run, testset, 'psnr')]:.2f} vs "
                     f"{p[(ref, testset, 'psnr')]:.2f} dB): against {parent}, the run it starts from, "
                     f"PSNR {p[(run, testset, 'psnr')] - p[(parent, testset, 'psnr')]:+.2f} dB and SSIM "
                     f"{p[(run, testset, 'ssim')] - p[(parent, testset, 'ssim')]:+.4f} in its own stage"
                     + (f" ({stage_images:,} images)." if stage_images else "."))
    return lines
