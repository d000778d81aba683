"""``reports/tables/test_pick_bias.md|csv`` (issue 8): what picking the best saved checkpoint on
the test set would have added to each trained run, from the ``test_pick`` record the evaluate
stage writes into ``results/{run}/{testset}/metrics.json`` (``iters``, ``val_psnr``,
``test_psnr``, ``selected_iter``, ``selected_by``, ``test_at_selected``, ``test_best``,
``test_best_iter``, ``bias_db``; absent for untrained runs such as bicubic).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .results import read_json_strict
from .tables import write_table

__all__ = ["pick_bias_table", "write_pick_bias"]


def _rule(selected_by: str | None) -> str:
    """A short name of the run.json ``checkpoint_selection`` text (the full text: run.json)."""
    text = str(selected_by or "")
    if text.startswith("best val/psnr"):
        return "best val PSNR"
    return "last" if text.startswith("last") else text


def pick_bias_table(results_root: str | Path = "results", testset: str = "helen50") -> pd.DataFrame:
    """One row per run with a ``test_pick`` record on ``testset``, then a row with the mean and
    max bias over the runs (PSNR in dB, 2 decimals)."""
    rows, bias = [], []
    for mj in sorted(Path(results_root).glob(f"*/{testset}/metrics.json")):
        tp = read_json_strict(mj).get("test_pick")
        if not tp:
            continue
        bias.append(float(tp["bias_db"]))
        chosen = f"{tp['selected_iter']} ({_rule(tp['selected_by'])})"
        rows.append({"run": mj.parent.parent.name, "selected iter": chosen,
                     f"{testset} PSNR at selected": f"{tp['test_at_selected']:.2f}",
                     f"best {testset} PSNR (iter)": f"{tp['test_best']:.2f} ({tp['test_best_iter']})",
                     "bias (dB)": f"{tp['bias_db']:.2f}"})
    cols = ["run", "selected iter", f"{testset} PSNR at selected", f"best {testset} PSNR (iter)", "bias (dB)"]
    if rows:
        rows.append({"run": f"mean / max over {len(bias)} runs", "selected iter": "", cols[2]: "", cols[3]: "",
                     "bias (dB)": f"{sum(bias) / len(bias):.2f} / {max(bias):.2f}"})
    return pd.DataFrame(rows, columns=cols)


def write_pick_bias(results_root: str | Path = "results", out_dir: str | Path = "reports/tables",
                    testset: str = "helen50") -> list[Path]:
    """``test_pick_bias.md|csv`` (:func:`fsrlib.report.tables.write_table`); nothing when no run
    has a ``test_pick`` record."""
    df = pick_bias_table(results_root, testset)
    if df.empty:
        return []
    cap = (f"Test-pick bias on {testset}: the PSNR that choosing the saved checkpoint by {testset} PSNR, "
           "instead of as ours were chosen, would have added\n"
           "Ours: the best val/psnr on celeba:val among the saved validations (train.select); peers' "
           "published bests were picked on the test set.")
    return list(write_table(df, "test_pick_bias", cap, out_dir))
