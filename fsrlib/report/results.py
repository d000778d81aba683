"""Reading results: the papers' published numbers and ours.

- :func:`load_paper_results`: ``paper_results.csv``, every number of every results table of
  the five papers (long format);
- :func:`load_results`: ``results/{run}/{testset}/metrics.json`` and ``downstream.json`` (and
  ``runs/{run}/run.json``) as one long DataFrame, one row per (run, testset, metric), with the
  reason when a metric is missing and the protocol fields that the captions quote;
- :func:`load_per_image`: one run's per-image CSV (figures);
- :func:`check_results` and the strict readers (:func:`read_json_strict`, ...): a results
  file that exists but cannot be read raises :class:`BrokenResultsError`.

Run names follow :data:`fsrlib.config.RUN_NAME`: ``{method_key}-x{scale}`` (e.g. ``sparnet-x8``,
``wnet_expA-x4``), optionally followed by a tag (``sparnet-x8-seed2``); the untagged run is preferred.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from ..config import parse_run_name

__all__ = ["PAPER_CSV", "PAPER_KEY", "PROTOCOL_COLS", "load_paper_results", "run_scale", "run_label",
           "load_results", "load_per_image", "BrokenResultsError", "read_json_strict", "read_csv_strict",
           "read_png_strict", "check_results"]

PAPER_CSV = Path(__file__).with_name("paper_results.csv")
PAPER_KEY = ["paper", "table", "block", "method", "dataset", "scale", "metric"]

PROTOCOL_COLS = ["data", "degradation", "crop_border", "color", "parser", "budget"]


def load_paper_results(path: str | Path = PAPER_CSV) -> pd.DataFrame:
    """The transcribed paper numbers. ``value_str`` keeps the printed text (``"0.7210"``),
    ``value`` is its float; ``scale`` is a nullable integer (empty for averages and for
    SPARNetHD's blind setting)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df["value_str"] = df["value"]
    df["value"] = df["value"].astype(float)
    df["scale"] = pd.to_numeric(df["scale"].replace("", None)).astype("Int64")
    return df


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return {"_error": f"{path.name} unreadable ({e.__class__.__name__})"}


def _budget_str(b: Any) -> str:
    if b is None or b == "":
        return ""
    if isinstance(b, dict):
        if not b.get("iters") and not b.get("epochs"):
            return ""  # nothing trained (bicubic, the HR reference): no budget to describe
        parts = []
        if "iters" in b:
            parts.append(f"{b['iters']} iters")
        if "epochs" in b:
            parts.append(f"{b['epochs']} epochs")
        if "batch" in b:
            parts.append(f"batch {b['batch']}")
        # wall time and device are per-run facts (reports/tables/runs.md), not protocol: a rerun
        # with the same numbers on another machine writes the same captions
        parts += [f"{k}={v}" for k, v in b.items() if k not in ("iters", "epochs", "batch", "train_time_s", "device")]
        return " × ".join(parts[:2]) + ("; " + ", ".join(parts[2:]) if len(parts) > 2 else "")
    return str(b)


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def load_results(results_dir: str | Path = "results", runs_dir: str | Path | None = "runs",
                 downstream_dir: str | Path | None = None) -> pd.DataFrame:
    """Every metric of every evaluated run, long format. ``downstream_dir``: where the
    downstream stage wrote ``{run}/{testset}/downstream.json`` (default: ``results_dir``).

    Columns: ``run, method_key, method, scale, tag, testset, source`` (metrics | downstream |
    protocol | run), ``metric, value`` (float or NaN), ``missing_reason, n_images``, the
    protocol fields ``data, degradation, crop_border, color, parser, budget`` and
    ``protocol`` (the whole protocol dict as JSON). Complexity numbers (``params_M``,
    ``macs_G``, ``time_ms``) found in a protocol or in ``run.json`` become metric rows with
    ``source`` protocol / run. A run with a ``run.json`` and no results yet appears with
    ``testset == ""`` so that tables can say "trained, not evaluated"."""
    results_dir = Path(results_dir)
    runs_dir = Path(runs_dir) if runs_dir is not None else None
    records: list[dict] = []
    run_json_cache: dict[str, dict] = {}

    def run_json(run: str) -> dict:
        if run not in run_json_cache:
            p = runs_dir / run / "run.json" if runs_dir is not None else None
            run_json_cache[run] = _read_json(p) if p is not None and p.is_file() else {}
        return run_json_cache[run]

    def base(run: str, obj: dict, testset: str) -> dict:
        key, scale, tag = parse_run_name(run)
        rj = run_json(run)
        protocol = {}
        if isinstance(rj.get("protocol"), dict):
            protocol.update(rj["protocol"])
        for k in ("budget", "data", "degradation", "parser", "profile"):
            if k in rj and k not in protocol:
                protocol[k] = rj[k]
        if isinstance(obj.get("protocol"), dict):
            protocol.update(obj["protocol"])
        if scale is None:
            scale = obj.get("scale", rj.get("scale"))
            key = obj.get("method") or rj.get("method") or key
        return {
            "run": run, "method_key": key, "method": obj.get("method", rj.get("method", key)),
            "scale": int(scale) if scale is not None else None, "tag": tag, "testset": testset,
            "n_images": obj.get("n_images"),
            **{c: (_budget_str(protocol.get(c)) if c == "budget" else
                   (None if protocol.get(c) is None else str(protocol.get(c)))) for c in PROTOCOL_COLS},
            "protocol": json.dumps(protocol, sort_keys=True, default=str),
            "_protocol": protocol,
        }

    seen_runs: set[str] = set()
    downstream_dir = results_dir if downstream_dir is None else Path(downstream_dir)
    roots = [(results_dir, (("metrics.json", "metrics"), ("downstream.json", "downstream")))]
    if downstream_dir != results_dir:
        roots = [(results_dir, (("metrics.json", "metrics"),)), (downstream_dir, (("downstream.json", "downstream"),))]
    for root, files in roots:
        if not root.is_dir():
            continue
        for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for ts_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
                for fname, source in files:
                    f = ts_dir / fname
                    if not f.is_file():
                        continue
                    seen_runs.add(run_dir.name)
                    obj = _read_json(f)
                    b = base(run_dir.name, obj, obj.get("testset", ts_dir.name))
                    metrics = obj.get("metrics") or {}
                    missing = obj.get("missing") or {}
                    if "_error" in obj:
                        records.append({**b, "source": source, "metric": "_file",
                                        "value": None, "missing_reason": obj["_error"]})
                    for m, v in metrics.items():
                        val = _num(v)
                        reason = "" if val is not None else (missing.get(m) or "value is null, no reason recorded")
                        records.append({**b, "source": source, "metric": m, "value": val, "missing_reason": reason})
                    for m, r in missing.items():
                        if m not in metrics:
                            records.append({**b, "source": source, "metric": m, "value": None,
                                            "missing_reason": str(r)})
                    if source == "metrics":
                        records += _complexity_rows(b, metrics, run_json(run_dir.name))
    if runs_dir is not None and runs_dir.is_dir():
        for p in sorted(runs_dir.glob("*/run.json")):
            run = p.parent.name
            if run in seen_runs:
                continue
            b = base(run, {}, "")
            rows = _complexity_rows(b, {}, run_json(run))
            records += rows or [{**b, "source": "run", "metric": "_trained", "value": None,
                                 "missing_reason": "trained, not evaluated"}]
    cols = ["run", "method_key", "method", "scale", "tag", "testset", "source", "metric", "value",
            "missing_reason", "n_images", *PROTOCOL_COLS, "protocol"]
    df = pd.DataFrame([{k: r.get(k) for k in cols} for r in records], columns=cols)
    df["value"] = df["value"].astype(float)
    df["scale"] = df["scale"].astype("Int64")
    df["missing_reason"] = df["missing_reason"].fillna("")
    for c in PROTOCOL_COLS:  # text as written ("0", not 0.0)
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def _complexity_rows(b: dict, metrics: dict, rj: dict) -> list[dict]:
    out = []
    sources = [("protocol", b["_protocol"]), ("run", rj)]
    if isinstance(rj.get("complexity"), dict):
        sources.append(("run", rj["complexity"]))
    for m in ("params_M", "macs_G", "time_ms"):
        if m in metrics:
            continue
        for src, d in sources:
            v = _num(d.get(m)) if isinstance(d, dict) else None
            if v is not None:
                out.append({**b, "source": src, "metric": m, "value": v, "missing_reason": ""})
                break
    return out


def load_per_image(results_dir: str | Path, run: str, testset: str, downstream: bool = False,
                   downstream_dir: str | Path | None = None) -> pd.DataFrame:
    """``per_image.csv`` (or ``downstream_per_image.csv``, under ``downstream_dir`` when given)
    of one run and test set, for figures."""
    name = "downstream_per_image.csv" if downstream else "per_image.csv"
    root = Path(downstream_dir) if (downstream and downstream_dir is not None) else Path(results_dir)
    return pd.read_csv(root / run / testset / name, dtype={"name": str})


def run_scale(run: str) -> int | None:
    """The scale of a run name (``None`` when it is not one)."""
    return parse_run_name(run)[1]


def run_label(run: str) -> str:
    """A run's label in figures: its key, with its tag when it has one (``sparnet-seed2``)."""
    key, _, tag = parse_run_name(run)
    return f"{key}-{tag}" if tag else key


# ---------------------------------------------------------------------------------------------
# strict readers
class BrokenResultsError(ValueError):
    """A results file exists but cannot be read (corrupt JSON, CSV or image)."""


def read_json_strict(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BrokenResultsError(f"{path}: unreadable results file ({e.__class__.__name__}: {e})") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("metrics", {}), dict):
        raise BrokenResultsError(f"{path}: not a results object (expected a JSON object with a `metrics` object)")
    return obj


def read_csv_strict(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"name": str})
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as e:
        raise BrokenResultsError(f"{path}: unreadable results file ({e.__class__.__name__}: {e})") from e


def read_png_strict(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise BrokenResultsError(f"{path}: unreadable SR image ({e.__class__.__name__}: {e})") from e


def check_results(results_root: str | Path = "results", downstream_root: str | Path | None = None) -> dict[str, int]:
    """Read every results file once (``results_root`` and ``downstream_root``); raise
    :class:`BrokenResultsError` on the first broken one. Returns how many of each kind were found."""
    counts = {"metrics.json": 0, "downstream.json": 0, "per_image.csv": 0, "downstream_per_image.csv": 0}
    roots = [Path(results_root)] + ([Path(downstream_root)] if downstream_root is not None else [])
    for root in dict.fromkeys(roots):
        if not root.is_dir():
            continue
        for name in counts:
            for f in sorted(root.glob(f"*/*/{name}")):
                (read_json_strict if name.endswith(".json") else read_csv_strict)(f)
                counts[name] += 1
    return counts
