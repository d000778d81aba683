"""Paper-vs-ours tables: the renderer of :data:`fsrlib.report.specs.TABLES`.

:func:`build_table` puts the paper value beside ours in every cell (``"paper / ours"``); a
cell without a number says why. :func:`write_table` writes ``reports/tables/{name}.md`` and
``.csv``; :func:`build_all` writes every table, our summary and an index. The pieces it
renders: :mod:`fsrlib.report.vocabulary` (labels), :mod:`fsrlib.report.specs` (the tables as
data), :mod:`fsrlib.report.results` (the paper's numbers and ours).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from ..config import parse_run_name
from ..io import write_csv, write_text
from ..metrics.scoring import CONVENTIONS
from .captions import RUNS_LINK, caption_lines, ours_line, portable
from .results import PROTOCOL_COLS, load_paper_results, load_results
from .runs_table import write_runs_table
from .seeds import ablation_notes, add_margin_column, add_seed_columns, below_reference_notes
from .specs import TABLES, Row, TableSpec
from .vocabulary import METRIC_DECIMALS, MISSING, OURS_METRIC, PAPERS, PROXY_MARK, RUN_LEVEL_METRICS, TESTSETS

__all__ = ["CONVENTION_METRICS", "convention_label", "expected_method_keys", "build_table",
           "table_caption", "table_details", "protocol_caption", "write_table",
           "build_summary", "build_all"]


def expected_method_keys(paper: pd.DataFrame | None = None) -> list[str]:
    """Every method key some table looks for (the run names the lead should produce)."""
    pidx = _PaperIndex(load_paper_results() if paper is None else paper)
    keys: set[str] = set()
    for spec in TABLES:
        for row in spec.rows:
            keys.update(_row_keys(spec, row, pidx))
    return sorted(keys)


#: the metrics a table's convention (``TableSpec.convention``) applies to
CONVENTION_METRICS = ("psnr", "ssim")
#: after our PSNR / SSIM: under the project's protocol, the test set not re-scored under the paper's
REF_MARK = "‡"


def convention_label(name: str) -> str:
    """``"family B (Y round, crop 8, SSIM 7x7)"``: a convention's name and its settings, short."""
    return f"{name.replace('_', ' ')} ({_SHORT.get(name) or CONVENTIONS[name]['label'].rsplit(': ', 1)[-1]})"


#: the captions' short form of a convention (the full one: the table's notes, protocol_sensitivity.md)
_SHORT = {"family_A": "PIL LR, Y trunc, crop 0, SSIM Gaussian", "family_B": "Y round, crop 8, SSIM 7x7"}


# ---------------------------------------------------------------------------------------------
# building
@dataclass
class _Cell:
    paper: str | None = None
    paper_reason: str = ""
    ours: float | None = None
    ours_reason: str = ""
    proxy: bool = False
    ref_fallback: bool = False   # the paper's convention was not computed for this test set: ref value
    run: str = ""
    testset: str = ""


class _PaperIndex:
    """Fast lookups into ``paper_results``: printed values and method keys."""

    def __init__(self, paper: pd.DataFrame):
        self.values: dict[tuple, str] = {}
        self.keys: dict[tuple, list[str]] = {}
        for r in paper.to_dict("records"):
            sc = None if pd.isna(r["scale"]) else int(r["scale"])
            self.values[(r["paper"], r["table"], r["block"], r["method"], r["dataset"], sc, r["metric"])] = \
                r["value_str"]
            ks = self.keys.setdefault((r["paper"], r["table"], r["block"], r["method"]), [])
            if r["method_key"] and r["method_key"] not in ks:
                ks.append(r["method_key"])


def _row_keys(spec: TableSpec, row: Row, paper: pd.DataFrame | _PaperIndex) -> tuple[str, ...]:
    if row.keys is not None:
        return tuple(row.keys) + tuple(row.also)
    pidx = paper if isinstance(paper, _PaperIndex) else _PaperIndex(paper)
    table, block, method = row.source or (spec.table, row.block if row.block is not None else spec.block, row.method)
    keys: list[str] = []
    for (pp, tt, bb, mm), ks in pidx.keys.items():
        # a block named by the row, the spec or the source; else any (e.g. AMINet's SCface cases)
        if pp == spec.paper and tt == table and mm == method and (not block or bb == block):
            keys += ks
    return tuple(dict.fromkeys([*keys, *row.also]))


class _Ours:
    """Lookup of our results: preferred run per (key, scale), values per test set, and (given
    ``conventions``, :func:`fsrlib.pipeline.protocol_sensitivity.protocol_sensitivity`'s long
    frame) PSNR / SSIM of the same SR images under each metric convention."""

    def __init__(self, ours: pd.DataFrame, conventions: pd.DataFrame | None = None):
        self.df = ours if ours is not None else pd.DataFrame(columns=["run", "method_key", "scale", "testset",
                                                                       "metric", "value", "missing_reason"])
        self.runs: dict[tuple[str, int | None], str] = {}
        for (key, scale), g in self.df.groupby(["method_key", "scale"], dropna=False):
            runs = sorted(g["run"].unique(), key=lambda r: (parse_run_name(r)[2] != "", r))
            self.runs[(key, None if pd.isna(scale) else int(scale))] = runs[0]
        self.by_run = {run: g for run, g in self.df.groupby("run")}
        self.scored = None if conventions is None else {
            (r.run, r.testset, r.convention): {"psnr": r.psnr, "ssim": r.ssim, "n": r.n_images}
            for r in conventions.itertuples()}

    def value_under(self, run: str, testset: str, metric: str, convention: str) -> tuple[float | None, str]:
        v = self.scored.get((run, testset, convention))
        if v is None:
            return None, f"not re-scored under {convention}: no saved SR images of run {run} on {testset}"
        return self._checked(run, testset, metric, convention, v)

    def rescored(self, testset: str) -> bool:
        """Whether the conventions frame covers ``testset`` at all (``report.protocol_testsets``)."""
        return self.scored is not None and any(k[1] == testset for k in self.scored)

    def _checked(self, run: str, testset: str, metric: str, convention: str, v: dict) -> tuple[float | None, str]:
        g = self.by_run[run]
        n = pd.to_numeric(g.loc[g["testset"] == testset, "n_images"], errors="coerce").dropna()
        if len(n) and int(n.max()) != int(v["n"]):  # evaluate's save_images: N keeps the first N faces only
            return None, (f"not re-scored under {convention}: {int(v['n'])} of the {int(n.max())} faces of "
                          f"{testset} have saved SR images (run {run})")
        return float(v[metric]), ""

    def run_for(self, keys: Iterable[str], scale: int | None) -> str | None:
        for k in keys:
            if scale is None:
                cands = sorted(r for (kk, _), r in self.runs.items() if kk == k)
                if cands:
                    return cands[0]
            elif (k, scale) in self.runs:
                return self.runs[(k, scale)]
        return None

    def value(self, run: str, testset: str, metric: str) -> tuple[float | None, str]:
        g = self.by_run[run]
        if testset != "*":
            g_ts = g[g["testset"] == testset]
            if g_ts.empty:
                return None, f"not evaluated on {testset}: run {run} has no results there"
        else:
            g_ts = g
        m = g_ts[g_ts["metric"] == metric]
        if m.empty:
            return None, f"metric missing: {metric} not computed by run {run}"
        ok = m[m["value"].notna()]
        if not ok.empty:
            return float(ok["value"].iloc[0]), ""
        reason = next((r for r in m["missing_reason"] if r), "no reason recorded")
        return None, f"metric missing: {reason}"


def _decimals(s: str) -> int:
    return len(s.split(".")[1]) if "." in s else 0


def _fmt(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}"


def _cell_text(c: _Cell, decimals: int) -> str:
    p = c.paper if c.paper is not None else f"{MISSING} ({c.paper_reason})"
    if c.ours is not None:
        o = _fmt(c.ours, decimals) + (PROXY_MARK if c.proxy else "") + (REF_MARK if c.ref_fallback else "")
    else:
        o = f"{MISSING} ({c.ours_reason})"
    return f"{p} / {o}"


def _convention(spec: TableSpec, O: _Ours) -> str:
    """The convention ours' PSNR / SSIM are under: the spec's, when the re-scored values were given."""
    return spec.convention if O.scored is not None else "ref"


def _compute_cells(spec: TableSpec, ours: pd.DataFrame | _Ours, paper: pd.DataFrame):
    pidx = _PaperIndex(paper)
    O = ours if isinstance(ours, _Ours) else _Ours(ours)
    convention = _convention(spec, O)
    grid: list[tuple[Row, tuple[str, ...], list[_Cell], set[str]]] = []
    for row in spec.rows:
        keys = _row_keys(spec, row, pidx)
        cells: list[_Cell] = []
        runs_used: set[str] = set()
        for col in spec.cols:
            c = _Cell()
            # paper side
            if row.method or row.source:
                block = next(b for b in (row.block, col.block, spec.block) if b is not None)
                table, block, method = row.source or (spec.table, block, row.method)
                pr = pidx.values.get((spec.paper, table, block, method, col.dataset, col.scale, col.metric))
                if pr is not None:
                    c.paper = pr
                else:
                    c.paper_reason = "not reported by the paper"
            else:
                c.paper_reason = "not reported by the paper"
            # ours side
            if not keys:
                c.ours_reason = "not implemented in fsrlib"
            elif col.mean_of:
                c.ours_reason = ""  # filled below, from the other cells of the row
            else:
                testset, note = col.our_testset()
                run = O.run_for(keys, col.scale)
                if run is None:
                    c.ours_reason = (f"not trained in this profile: no run {keys[0]}-x{col.scale}"
                                     if col.scale else f"not trained in this profile: no run {keys[0]}-x<scale>")
                elif testset is None:
                    c.ours_reason = f"test set not available: {note}"
                else:
                    our_metric, conv = OURS_METRIC.get(col.metric, (col.metric, None))
                    v, reason = O.value(run, testset, our_metric)
                    if v is not None and convention != "ref" and col.metric in CONVENTION_METRICS:
                        if O.rescored(testset):
                            v, reason = O.value_under(run, testset, col.metric, convention)
                        else:   # this test set was not re-scored (report.protocol_testsets): ref, marked
                            c.ref_fallback = True
                    if v is not None:
                        c.ours, c.run, c.proxy = (conv(v) if conv else v), run, bool(note)
                        c.testset = testset
                        runs_used.add(run)
                    else:
                        c.ours_reason = reason
            cells.append(c)
        # derived mean columns
        for j, col in enumerate(spec.cols):
            if not col.mean_of or not keys:
                continue
            vals = []
            for k, other in enumerate(spec.cols):
                if (other.dataset, other.scale) in col.mean_of and other.metric == col.metric:
                    vals.append(cells[k].ours)
            if vals and all(v is not None for v in vals) and len(vals) == len(col.mean_of):
                cells[j].ours = sum(vals) / len(vals)
                cells[j].proxy = any(cells[k].proxy for k, o in enumerate(spec.cols)
                                     if (o.dataset, o.scale) in col.mean_of and o.metric == col.metric)
            else:
                n = sum(v is not None for v in vals)
                cells[j].ours_reason = f"mean needs all {len(col.mean_of)} settings ({n} available)"
        if row.optional and all(c.ours is None for c in cells) and all(c.paper is None for c in cells):
            continue
        grid.append((row, keys, cells, runs_used))
    return grid


def _col_decimals(spec: TableSpec, grid) -> list[int]:
    out = []
    for j, col in enumerate(spec.cols):
        ds = [_decimals(cells[j].paper) for _, _, cells, _ in grid if cells[j].paper is not None]
        d = max(ds) if ds else METRIC_DECIMALS.get(col.metric, 3)
        if col.metric in RUN_LEVEL_METRICS:  # sizes and times: never coarser than the default
            d = max(d, METRIC_DECIMALS.get(col.metric, 0))
        out.append(d)
    return out


def _config_note(spec: TableSpec, row: Row, paper: pd.DataFrame) -> str:
    sel = paper[(paper["paper"] == spec.paper) & (paper["table"] == spec.table) & (paper["method"] == row.method)]
    for n in sel["note"]:
        m = re.search(r"config: ([^;]*)", n)
        if m:
            return m.group(1).strip()
    return ""


def _convention_text(spec: TableSpec, convention: str) -> str | None:
    """The caption's PSNR / SSIM convention of a table re-scored under its paper's (else ``None``:
    the results' own protocol is quoted)."""
    if convention == "ref" or not any(c.metric in CONVENTION_METRICS for c in spec.cols):
        return None
    return f"ours under {convention_label(convention)}"


def build_table(spec: TableSpec, ours: pd.DataFrame | None, paper: pd.DataFrame | None = None,
                conventions: pd.DataFrame | None = None) -> pd.DataFrame:
    """One paper table with ours beside it.

    Every value cell reads ``"<paper> / <ours>"``; a side without a number reads
    ``"– (<why>)"`` (e.g. ``"27.38 / – (not trained in this profile: no run srcnn-x4)"``).
    ``†`` after our number: measured on a stand-in test set (see the caption). Columns:
    ``Method``, ``ours run`` and, for ablations, ``config``, then one column per
    dataset × scale × metric. ``conventions``: the long frame of
    :func:`fsrlib.pipeline.protocol_sensitivity.protocol_sensitivity`; with it, ours' PSNR / SSIM
    are under the spec's ``convention`` (without it, under ``ref``). ``df.attrs`` holds ``spec``
    name, ``runs`` used, ``proxies`` (the stand-in notes) and ``convention`` (ours' PSNR / SSIM)."""
    paper = load_paper_results() if paper is None else paper
    ours = _Ours(ours if ours is not None else pd.DataFrame(columns=["run", "method_key", "scale", "testset",
                                                                   "metric", "value", "missing_reason"]),
                 conventions)
    grid = _compute_cells(spec, ours, paper)
    decs = _col_decimals(spec, grid)
    headers = [c.header() for c in spec.cols]
    if len(set(headers)) != len(headers):  # disambiguate repeated labels
        headers = [f"{h} [{i}]" if headers.count(h) > 1 else h for i, h in enumerate(headers)]
    records = []
    all_runs: set[str] = set()
    used = sorted({(c.run, c.testset) for _, _, cells, _ in grid for c in cells if c.run})
    for row, keys, cells, runs_used in grid:
        rec = {"Method": row.label or row.method, "ours run": ", ".join(sorted(runs_used)) or
               (f"({', '.join(keys)})" if keys else "—")}
        if spec.kind == "ablation":
            rec["config"] = _config_note(spec, row, paper)
        for h, c, d in zip(headers, cells, decs):
            rec[h] = _cell_text(c, d)
        records.append(rec)
        all_runs |= runs_used
    df = pd.DataFrame(records)
    if "config" in df and not df["config"].astype(bool).any():
        df = df.drop(columns="config")
    proxies = sorted({TESTSETS[c.dataset][1] for c in spec.cols
                      if c.dataset in TESTSETS and TESTSETS[c.dataset][0] and TESTSETS[c.dataset][1]})
    conv = _convention(spec, ours)
    df.attrs.update({"spec": spec.name, "runs": sorted(all_runs), "used": used, "proxies": proxies,
                     "convention": conv, "convention_text": _convention_text(spec, conv)})
    return df


# ---------------------------------------------------------------------------------------------
# captions and writing
def _describe(values: dict[str, list[str]], fmt=lambda v: v) -> str:
    """``{value: [runs]}`` -> ``"a"``, or ``"a (r1, r2); b (r3)"`` when the runs differ
    (a value shared by more than three runs is summarised as ``"a (N runs)"``)."""
    vals = {k: sorted(set(v)) for k, v in values.items() if k not in ("", "None", "nan")}
    if not vals:
        return "not recorded"
    if len(vals) == 1:
        return fmt(next(iter(vals)))
    items = sorted(vals.items(), key=lambda kv: -len(kv[1]))
    return "; ".join(f"{fmt(k)} ({len(v)} runs)" if len(v) > 3 else f"{fmt(k)} ({', '.join(v)})" for k, v in items)


def _color_str(c: str) -> str:
    c = str(c)
    low = c.lower()
    if low.startswith("y"):
        return f"Y channel ({c})"
    if low.startswith("rgb"):
        return f"RGB ({c})"
    return c


_STANDARD_PROTOCOL = {*PROTOCOL_COLS, "params_M", "macs_G", "time_ms", "profile",
                      "n_images", "testset", "scale"}  # the last three are in "test sets" / "scale"


def protocol_caption(ours: pd.DataFrame | None, runs: Sequence[str],
                     used: Sequence[tuple[str, str]] | None = None) -> str:
    """The protocol of our numbers, from the results' protocol fields of ``runs``.

    ``used``: the (run, test set) pairs that fill the table (``build_table``'s
    ``df.attrs["used"]``); the test sets listed and the extra protocol fields (e.g. the
    identity or landmark model of ``downstream.json``) come from those only."""
    if ours is None or not len(runs):
        return "Ours: no results in this profile yet."
    sub = ours[ours["run"].isin(runs)]
    if used:
        pairs = set(map(tuple, used))
        mask = [(r, t) in pairs for r, t in zip(sub["run"], sub["testset"])]
        sub_used = sub[mask] if any(mask) else sub  # only run-level numbers (params, time): all of the run
    else:
        sub_used = sub
    sub_ts = sub_used[sub_used["testset"] != ""]

    def collect(col):
        d: dict[str, list[str]] = {}
        for run, g in sub.groupby("run"):
            for v in g[col].dropna().astype(str).unique():
                d.setdefault(v, []).append(run)
        return d

    scales = sorted({int(s) for s in sub["scale"].dropna()})
    ts = []
    for t, g in sub_ts.groupby("testset"):
        n = sorted({int(x) for x in g["n_images"].dropna()})
        ts.append(f"{t} (n={'/'.join(map(str, n))})" if n else t)
    parts = [
        f"data: {_describe(collect('data'))}",
        f"degradation: {_describe(collect('degradation'))}",
        f"training budget: {_describe(collect('budget'))}",
        f"scale: {', '.join('×' + str(s) for s in scales) or 'n/a'}",
        f"metric convention: {_describe(collect('color'), _color_str)}, crop border "
        f"{_describe(collect('crop_border'), lambda v: v + ' px')}",
        f"parser: {_describe(collect('parser'))}",
        f"test sets: {', '.join(ts) or 'n/a'}",
    ]
    extra: dict[str, set[str]] = {}
    for pj in sub_used["protocol"].dropna().unique():
        try:
            d = json.loads(pj)
        except (TypeError, json.JSONDecodeError):
            continue
        for k, v in d.items():
            if k not in _STANDARD_PROTOCOL and isinstance(v, (str, int, float, bool)) and len(str(v)) <= 80:
                extra.setdefault(k, set()).add(str(v))
    parts += [f"{k}: {' | '.join(sorted(v))}" for k, v in sorted(extra.items())]
    return "Ours: " + "; ".join(parts) + "."


def table_caption(spec: TableSpec, df: pd.DataFrame, ours: pd.DataFrame | None) -> str:
    """Title, the paper's protocol and ours in one short line each, and the link to ``runs.md``
    (:mod:`fsrlib.report.captions`; under ``CAPTION_MAX`` characters, no wall time)."""
    return "\n".join(caption_lines(spec, df, ours))


def table_details(spec: TableSpec, df: pd.DataFrame, ours: pd.DataFrame | None) -> list[str]:
    """What goes below a table: stand-in test sets, the spec's notes, and both protocols in full."""
    out = [f"{PROXY_MARK} stand-in test set: {p}." for p in df.attrs.get("proxies", [])]
    out += list(spec.notes)
    conv = df.attrs.get("convention", "ref")
    if df.attrs.get("convention_text"):
        out.append(f"Ours' PSNR/SSIM: the saved SR images scored under {conv} ({CONVENTIONS[conv]['label']}; "
                   "fsrlib.metrics.scoring, shift per run: protocol_sensitivity.md); the other metrics and "
                   "ours_summary are under the project's protocol (ref).")
        if any(REF_MARK in str(v) for v in df.to_numpy().ravel()):
            out.append(f"{REF_MARK} under the project's protocol (ref): that test set is not re-scored under "
                       f"{conv} in this profile (report.protocol_testsets).")
    elif spec.convention != conv and any(c.metric in CONVENTION_METRICS for c in spec.cols):
        out.append(f"Ours' PSNR/SSIM are the evaluate stage's, not re-scored under the paper's {spec.convention} "
                   f"({CONVENTIONS[spec.convention]['label']}).")
    if spec.paper_protocol:
        out.append(f"Paper ({PAPERS.get(spec.paper, spec.paper)}), full protocol: {spec.paper_protocol}.")
    out.append(protocol_caption(ours, df.attrs.get("runs", []), df.attrs.get("used")).replace(
        "Ours: ", "Ours, full protocol: ", 1))
    return out


_SIDE_RE = re.compile(rf"^{MISSING} \((?P<why>.*)\)$")


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _markdown(df: pd.DataFrame) -> tuple[str, list[str]]:
    """Markdown table; missing-side reasons become numbered footnotes ``[n]``."""
    notes: list[str] = []

    def side(s: str) -> str:
        m = _SIDE_RE.match(s)
        if not m:
            return s
        why = m["why"]
        if why not in notes:
            notes.append(why)
        return f"{MISSING} [{notes.index(why) + 1}]"

    def cell(v: Any) -> str:
        s = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        if s.startswith(f"{MISSING} (") and ") / " in s:  # both sides missing, or paper side missing
            end = s.index(") / ") + 1
            s = f"{side(s[:end])} / {side(s[end + 3:])}"
        elif _SIDE_RE.match(s):
            s = side(s)
        elif " / " in s:
            p, o = s.split(" / ", 1)
            s = f"{side(p)} / {side(o)}"
        return _md_escape(s)

    cols = list(df.columns)
    out = ["| " + " | ".join(_md_escape(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(cell(r[c]) for c in cols) + " |")
    return "\n".join(out), notes


def write_table(df: pd.DataFrame, name: str, caption: str, out_dir: str | Path = "reports/tables",
                details: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write ``{out_dir}/{name}.md`` (caption, table, footnotes, ``details`` as notes below)
    and ``{name}.csv`` (the cells with their inline reasons; the caption goes to the Markdown
    only). Machine paths in any text become portable (:func:`fsrlib.report.captions.portable`)."""
    out_dir = Path(out_dir)
    df = df.map(lambda v: portable(v) if isinstance(v, str) else v) if len(df) else df
    table_md, notes = _markdown(df) if len(df.columns) else ("(empty table)", [])
    cap_lines = [portable(c) for c in caption.splitlines()] or [name]
    md = [f"# {cap_lines[0]}", ""]
    if len(cap_lines) > 1:
        md += [*(f"{ln}  " for ln in cap_lines[1:]), ""]
    md += [table_md, ""]
    if notes:
        md += ["Missing values:", ""] + [f"[{i}] {n}  " for i, n in enumerate(notes, 1)] + [""]
    if details:
        md += ["Notes:", ""] + [f"- {portable(d)}" for d in details] + [""]
    md_path = write_text(out_dir / f"{name}.md", "\n".join(md))
    csv_path = write_csv(out_dir / f"{name}.csv", df)
    return md_path, csv_path


def build_summary(ours: pd.DataFrame) -> pd.DataFrame:
    """All our runs × test sets × image metrics (no paper side)."""
    metrics = ["psnr", "ssim", "lpips", "vif", "fid", "identity_cos", "lmk_dist_px", "lmk_auc10"]
    sub = ours[(ours["testset"] != "") & ours["metric"].isin(metrics)]
    if sub.empty:
        return pd.DataFrame(columns=["run", "testset", *metrics])
    recs = []
    for (run, ts), g in sub.groupby(["run", "testset"]):
        rec = {"run": run, "testset": ts}
        for m in metrics:
            mm = g[g["metric"] == m]
            if mm.empty:
                rec[m] = ""
            elif mm["value"].notna().any():
                rec[m] = _fmt(float(mm["value"].dropna().iloc[0]), METRIC_DECIMALS.get(m, 4))
            else:
                rec[m] = f"{MISSING} ({next((r for r in mm['missing_reason'] if r), 'no reason recorded')})"
        recs.append(rec)
    df = pd.DataFrame(recs)
    return df.loc[:, [c for c in df.columns if c in ("run", "testset") or (df[c] != "").any()]]


def build_all(results_dir: str | Path = "results", runs_dir: str | Path | None = "runs",
              out_dir: str | Path = "reports/tables", paper: pd.DataFrame | None = None,
              specs: Sequence[TableSpec] = TABLES, downstream_dir: str | Path | None = None,
              params: dict | None = None, complexity: dict | None = None,
              conventions: pd.DataFrame | None = None) -> list[Path]:
    """Every table of :data:`TABLES` (ours' PSNR / SSIM under each spec's convention, given
    ``conventions``: see :func:`build_table`), a summary of our runs (the project's protocol),
    ``runs.md``/``.csv`` (the per-run facts, :mod:`fsrlib.report.runs_table`; ``params`` for the seeds, ``complexity``
    ``{run: {params_M, macs_G}}`` counted on the models) and ``README.md`` (the index)."""
    out_dir = Path(out_dir)
    paper = load_paper_results() if paper is None else paper
    ours = load_results(results_dir, runs_dir, downstream_dir)
    written: list[Path] = []
    index = ["# Tables: paper vs ours", "",
             "Generated by `fsrlib.report.tables.build_all`. Each cell reads `paper / ours`; "
             f"`–` marks a missing number with its reason; `{PROXY_MARK}` marks ours measured on a stand-in test set.",
             "", "| table | paper | kind | cells with ours | title |", "|---|---|---|---|---|"]
    for spec in specs:
        df = build_table(spec, ours, paper, conventions)
        cap = table_caption(spec, df, ours)
        md, csv = write_table(df, spec.name, cap, out_dir, table_details(spec, df, ours))
        written += [md, csv]
        value_cols = [c for c in df.columns if c not in ("Method", "ours run", "config")]
        n_cells = len(df) * len(value_cols)
        n_ours = sum(not str(df.at[i, c]).split(" / ", 1)[-1].startswith(MISSING)
                     for i in df.index for c in value_cols) if n_cells else 0
        index.append(f"| [{spec.name}]({spec.name}.md) | {spec.paper} {spec.table} | {spec.kind} | "
                     f"{n_ours}/{n_cells} | {_md_escape(spec.title)} |")
    summary = add_margin_column(add_seed_columns(build_summary(ours), ours), ours)
    all_ours = sorted(ours["run"].unique())
    cap = ("Summary of our runs: every evaluated run and test set; a run with `-seed<k>` copies shows the "
           "seed mean (`n_seeds`, `psnr_std`, `ssim_std`); closer than 2 standard errors = a tie\n"
           f"{ours_line(ours, all_ours)} {RUNS_LINK}")
    md, csv = write_table(summary, "ours_summary", cap, out_dir,
                          [protocol_caption(ours, all_ours).replace("Ours: ", "Ours, full protocol: ", 1)]
                          + ablation_notes(ours)
                          + below_reference_notes(ours, {r: c["from"] for r, c in
                                                         ((params or {}).get("chained") or {}).items()},
                                                  stage_images=(((params or {}).get("train") or {})
                                                                .get("budget") or {}).get("images")))
    written += [md, csv]
    index.append(f"| [ours_summary](ours_summary.md) | — | ours | {len(summary)} rows | all our runs |")
    if runs_dir is not None:
        written += list(write_runs_table(out_dir, runs_dir, params, complexity))
        index.append("| [runs](runs.md) | — | runs | one row per run | iterations, batch, wall time, device, "
                     "seed, parameters, MACs |")
    index += ["", "Method keys the tables look for (runs are named `<key>-x<scale>`): "
              + ", ".join(f"`{k}`" for k in expected_method_keys(paper)), ""]
    written.append(write_text(out_dir / "README.md", "\n".join(index)))
    return written
