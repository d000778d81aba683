"""``reports/tables/runs.md`` / ``.csv``: the facts of every run, once (the tables' captions
link here instead of repeating them): iterations, batch, images seen, wall time, device,
seed, parameters, MACs, where it started from. Read from ``runs/{run}/run.json`` (written by
the train stage), the run's config in params (seed) and, for MACs, ``run.json``'s
``complexity`` or the counts the report stage made on ``model.pt``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import pandas as pd

from ..config import all_runs, run_config
from ..io import write_csv, write_text
from .captions import portable

__all__ = ["RUNS_COLUMNS", "build_runs_table", "write_runs_table"]

RUNS_COLUMNS = ["run", "method", "scale", "recipe", "iterations", "batch", "images_seen", "wall_time_s", "device",
                "seed", "params_M", "macs_G", "init_from", "prior_from", "finished"]
MISSING = "–"


def _seed(params: Mapping | None, run: str, rj: Mapping):
    if rj.get("seed") is not None:
        return rj["seed"]
    if params and run in all_runs(params):
        try:
            return run_config(params, run).get("seed", 0)
        except Exception:  # noqa: BLE001 - a run params can no longer build: no seed to report
            return MISSING
    return MISSING


def build_runs_table(runs_root: str | Path = "runs", params: Mapping | None = None,
                     complexity: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """One row per ``runs_root/*/run.json`` (sorted by run name); ``–`` where a fact is unknown."""
    recs = []
    for p in sorted(Path(runs_root).glob("*/run.json")):
        run = p.parent.name
        if run.startswith(("_", ".")):
            continue
        try:
            rj = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            rj = {}
        cx = {**(rj.get("complexity") or {}), **((complexity or {}).get(run) or {})}
        it, bs, ws = rj.get("iterations"), rj.get("batch_size"), rj.get("world_size") or 1

        def num(v, fmt):
            return MISSING if v is None else format(v, fmt)

        params_m = cx.get("params_M", rj.get("params_M"))
        recs.append({
            "run": run, "method": rj.get("method", MISSING), "scale": rj.get("scale", MISSING),
            "recipe": rj.get("recipe", MISSING), "iterations": num(it, "d"), "batch": num(bs, "d"),
            "images_seen": num(it * bs * ws if isinstance(it, int) and isinstance(bs, int) else None, "d"),
            "wall_time_s": num(rj.get("train_time_s"), ".1f"),
            "device": rj.get("device_name") or rj.get("device") or MISSING,
            "seed": _seed(params, run, rj), "params_M": num(params_m, ".4f"),
            "macs_G": num(cx.get("macs_G"), ".3f"),
            "init_from": portable(rj.get("init_from") or "") or MISSING,
            "prior_from": portable(rj.get("prior_from") or "") or MISSING,
            "finished": rj.get("finished", MISSING),
        })
    return pd.DataFrame(recs, columns=RUNS_COLUMNS)


def write_runs_table(out_dir: str | Path, runs_root: str | Path = "runs", params: Mapping | None = None,
                     complexity: Mapping[str, Mapping] | None = None) -> tuple[Path, Path]:
    """Write ``{out_dir}/runs.md`` and ``runs.csv``."""
    df = build_runs_table(runs_root, params, complexity)
    out_dir = Path(out_dir)
    head = ["# Our runs: budget, time, size", "",
            "One row per run (its `run.json`). Images seen = iterations × batch × processes; wall time = "
            "training seconds on the device named (machine and load dependent); MACs of one 128-px face's "
            "inference, prior network included (`fsrlib.models.common.count_macs`). Model cards: "
            "`runs/<run>/README.md`.", ""]
    if df.empty:
        body = ["(no run.json under runs/ yet)"]
    else:
        cols = list(df.columns)
        body = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        body += ["| " + " | ".join(str(v) for v in r) + " |" for r in df.itertuples(index=False)]
    md = write_text(out_dir / "runs.md", "\n".join(head + body + [""]))
    return md, write_csv(out_dir / "runs.csv", df)
