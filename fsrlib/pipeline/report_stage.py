"""The ``report`` stage: every table and figure, and ``reports/README.md`` (the index).

:func:`build_report` reads what the earlier stages left (``results/{run}/{testset}/``:
``metrics.json``, ``per_image.csv``, ``sr/{dataset}/{name}.png``;
``downstream/{run}/{testset}/``: ``downstream.json``, ``downstream_per_image.csv`` (the older
layout kept them in ``results/``: read there when ``downstream/`` does not exist);
``runs/{run}/``: ``model.pt``, ``run.json``, ``dvclive/``) and writes

- ``{out}/tables/``: the paper-vs-ours tables (:func:`fsrlib.report.tables.build_all`);
- ``{out}/figures/``: qualitative grids per scale (LR, every method with SR images, HR, eye
  and mouth crops from the landmarks), the attention maps and predicted parsing maps of every
  model that declares them (``FSRModel.maps``: SPARNet, AMINet; ParsingNet, W-Net, PGNet),
  training curves (dvclive), PSNR vs parameters / MACs (ours
  and the papers'), identity-threshold curves (W-Net Fig. 6) and landmark CED curves
  (SPARNet Fig. 5b);
- ``{out}/README.md``: every table and figure with a one-line caption, the protocol of our
  numbers, a list of the model benchmarks found in ``{out}/benchmarks/``, and a note for
  everything skipped.

Attention and parsing maps are recomputed with :class:`fsrlib.inference.RunPredictor` on a
few faces (the evaluate stage keeps only the SR images), and MACs counted on the models
(:mod:`fsrlib.pipeline.report_models`); the README is written by :mod:`fsrlib.report.readme`.

What is missing (a run not trained or not evaluated, a metric not computed, no landmarks)
is skipped with a note in the README, never an exception; a results file that exists but
cannot be read raises :class:`fsrlib.report.results.BrokenResultsError`.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..config import all_runs, load_and_validate
from ..inference import torch_threads
from ..io import atomic_path, write_text
from ..report import figures as F
from ..report.cards import load_paper_profile, write_report_cards
from ..report.pick_bias import write_pick_bias
from ..report.ranking import agreement_panels, agreement_table, write_agreement_table
from ..report.readme import ReportLog, table_entries, write_readme
from ..report.results import (
    check_results,
    load_results,
    read_csv_strict,
    read_json_strict,
    read_png_strict,
    run_label,
    run_scale,
)
from ..report.tables import build_all
from .report_models import FigureFaces, cost_figures, maps_figures, run_complexities

REPORT_DEFAULTS: dict[str, Any] = {"figure_faces": 4, "figure_scales": None, "testset_for_figures": "helen50"}

#: every file name the stage writes under figures/ starts with one of these (stale ones are removed)
FIGURE_PREFIXES = ("qualitative_", "attention_", "parsing_", "training_", "psnr_vs_cost_", "identity_threshold_",
                   "ced_", "ranking_agreement_")

MAX_GRID_METHODS = 8        # methods per qualitative grid; more go to a second file
MAIN_CURVES = ("train/loss", "val/psnr", "val/ssim", "train/d_loss")

__all__ = ["REPORT_DEFAULTS", "build_report", "report_params"]


# =============================================================================== helpers
def report_params(params_path: str | Path | None = "params.yaml") -> dict:
    """The ``report`` section of params (validated) with the defaults filled in; the whole
    params dict is under ``"_params"``. A missing file gives the defaults."""
    params: dict = {}
    if params_path is not None and Path(params_path).is_file():
        params = load_and_validate(params_path)
    rep = {**REPORT_DEFAULTS, **(params.get("report") or {})}
    rep["_params"] = params
    return rep


def _resolve_downstream_root(downstream_root: str | Path | None, results_root: Path) -> Path:
    """``downstream/`` (the pipeline's layout) when it exists, else ``results/`` (older layout)."""
    if downstream_root is None:
        return results_root
    d = Path(downstream_root)
    return d if d.is_dir() else results_root


# =============================================================================== runs
def _discover_runs(params: Mapping, results_root: Path, runs_root: Path, downstream_root: Path) -> list[str]:
    """Runs of params (in order), then any other run folder found in results/, downstream/ or runs/."""
    names = list(all_runs(params)) if params else []
    extra = set()
    for root in (results_root, runs_root, downstream_root):
        if root.is_dir():
            extra |= {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    return names + sorted(extra - set(names))


# =============================================================================== figure makers (from files)
def _qualitative(log: ReportLog, faces: FigureFaces, results_root: Path, runs: Sequence[str], scales: Sequence[int],
                 fig_dir: Path) -> None:
    ts = faces.testset
    for s in scales:
        runs_s = [r for r in runs if run_scale(r) == s and (results_root / r / ts / "sr").is_dir()]
        if not runs_s:
            log.note(f"qualitative grid ×{s}: no run of scale ×{s} has SR images on {ts} "
                     f"(results/<run>/{ts}/sr/; run the evaluate stage with save_images: true)")
            continue
        b = faces.batch(s)
        names, dsets = list(b["name"]), list(b["dataset"])
        sr: dict[str, list] = {}
        metrics: dict[str, list] = {}
        labels = [run_label(r) for r in runs_s]
        labels = [r if labels.count(lab) > 1 else lab for r, lab in zip(runs_s, labels)]
        for r, lab in zip(runs_s, labels):
            paths = [results_root / r / ts / "sr" / d / f"{n}.png" for d, n in zip(dsets, names)]
            miss = [p.name for p in paths if not p.is_file()]
            if miss:
                log.note(f"qualitative grid ×{s}: {r} has no SR image for {', '.join(miss)} on {ts}; column left out")
                continue
            sr[lab] = [read_png_strict(p) for p in paths]
            per = results_root / r / ts / "per_image.csv"
            if per.is_file():
                df = read_csv_strict(per)
                if "psnr" in df and "name" in df:
                    by = dict(zip(df["name"].astype(str), pd.to_numeric(df["psnr"], errors="coerce")))
                    metrics[lab] = [float(by.get(n, math.nan)) for n in names]
        if not sr:
            continue
        lms = faces.landmarks()
        if lms is None:
            log.note(f"qualitative grid ×{s}: no landmarks for the figure faces (data/faces/landmarks.npz); "
                     "eye and mouth crops left out")
        cols = list(sr)
        chunks = [cols[i:i + MAX_GRID_METHODS] for i in range(0, len(cols), MAX_GRID_METHODS)]
        for k, chunk in enumerate(chunks):
            suffix = "" if len(chunks) == 1 else f"_part{k + 1}"
            path = F.qualitative_grid(
                list(b["lr"]), list(b["hr"]), {c: sr[c] for c in chunk}, fig_dir / f"qualitative_x{s}_{ts}{suffix}.png",
                landmarks=lms, names=names, metrics={c: metrics[c] for c in chunk if c in metrics},
                title=f"×{s} on {ts}: LR (nearest), SR, HR; Y-PSNR (dB) under each SR")
            part = f" (methods {k * MAX_GRID_METHODS + 1}-{k * MAX_GRID_METHODS + len(chunk)} of {len(cols)})" \
                if len(chunks) > 1 else ""
            log.fig(path, f"Qualitative ×{s} on {ts}{part}: {len(names)} faces; LR (nearest-upscaled), "
                          f"{', '.join(chunk)}, HR; per-image Y-PSNR under each SR"
                          + ("; below each face: eyes above mouth, cropped around the HR landmarks" if lms else ""),
                    "qualitative")


def _training_curves(log: ReportLog, runs: Sequence[str], runs_root: Path, fig_dir: Path) -> None:
    curves: dict[str, pd.DataFrame] = {}
    for r in runs:
        d = runs_root / r / "dvclive"
        if not d.is_dir():
            if (runs_root / r / "run.json").is_file():
                try:
                    rj = json.loads((runs_root / r / "run.json").read_text())
                except (OSError, json.JSONDecodeError):
                    rj = {}
                if isinstance(rj, dict) and rj.get("iterations", 1) == 0:
                    continue  # weight-free method (bicubic): nothing was trained
                log.note(f"training curves: {r} has no dvclive logs ({d})")
            continue
        df = F.read_dvclive(d)
        if df.empty:
            log.note(f"training curves: {r}'s dvclive folder holds no metric")
            continue
        curves[r] = df
    if not curves:
        log.note("training curves: no run has dvclive logs")
        return
    by_scale: dict[Any, dict] = {}
    for r, df in curves.items():
        by_scale.setdefault(run_scale(r), {})[r] = df
    for s, cur in sorted(by_scale.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        have = sorted({m for d in cur.values() for m in d["metric"].unique()})
        main = [m for m in MAIN_CURVES if m in have] or have
        other = [m for m in have if m not in main]
        tag = f"x{s}" if s is not None else "other"
        path = F.training_curves(cur, fig_dir / f"training_curves_{tag}.png", metrics=main,
                                 title=f"Training curves ×{s}" if s else "Training curves")
        log.fig(path, f"Training curves of the ×{s} runs ({', '.join(cur)}): {', '.join(main)} from dvclive "
                      "(validation on the train stage's small validation subset)", "training")
        if other:
            path = F.training_curves(cur, fig_dir / f"training_terms_{tag}.png", metrics=other,
                                     title=f"Loss terms and schedules ×{s}" if s else "Loss terms and schedules")
            log.fig(path, f"Every other dvclive metric of the ×{s} runs (loss terms, learning rates, "
                          f"discriminator): {', '.join(other)}", "training")


def _downstream(log: ReportLog, downstream_root: Path, runs: Sequence[str], fig_dir: Path) -> None:
    groups: dict[tuple[int, str], dict[str, pd.DataFrame]] = {}
    for r in runs:
        s = run_scale(r)
        d = downstream_root / r
        if s is None or not d.is_dir():
            continue
        for f in sorted(d.glob("*/downstream_per_image.csv")):
            groups.setdefault((s, f.parent.name), {})[r] = read_csv_strict(f)
    if not groups:
        log.note(f"downstream curves: no {downstream_root}/<run>/<testset>/downstream_per_image.csv "
                 "(run the downstream stage)")
        return
    for (s, ts), per in sorted(groups.items()):
        sr_runs = {r: df for r, df in per.items() if run_label(r) != "hr"}
        ident = {r: df["identity_cos"].to_numpy(float) for r, df in sr_runs.items()
                 if "identity_cos" in df and df["identity_cos"].notna().any()}
        if ident:
            path = F.identity_threshold_curve(ident, fig_dir / f"identity_threshold_x{s}_{ts}.png",
                                              title=f"Identity similarity ×{s} ({ts})")
            log.fig(path, f"Identity-threshold curve ×{s} on {ts} (W-Net Fig. 6): fraction of faces whose SR-HR "
                          "dlib face-descriptor cosine similarity is at least the threshold", "downstream")
        else:
            log.note(f"identity-threshold curve ×{s} on {ts}: no identity_cos values (see downstream.json `missing`)")
        for col_kind, ref, runs_for in (("lmk_nme_", "HR landmarks", sr_runs), ("lmk_nme_gt_", "ground truth", per)):
            nme = {}
            for r, df in runs_for.items():
                col = next((c for c in df.columns if c.startswith(col_kind) and
                            (col_kind == "lmk_nme_gt_" or not c.startswith("lmk_nme_gt_"))), None)
                if col is not None and df[col].notna().any():
                    nme[r] = df[col].to_numpy(float)
            name = "ced" if col_kind == "lmk_nme_" else "ced_gt"
            if not nme:
                if col_kind == "lmk_nme_":
                    log.note(f"CED ×{s} on {ts}: no landmark NME values (see downstream.json `missing`)")
                continue
            path = F.ced_curve(nme, fig_dir / f"{name}_x{s}_{ts}.png",
                               title=f"Landmark CED ×{s} ({ts}), NME vs {ref}")
            log.fig(path, f"Landmark CED ×{s} on {ts} (SPARNet Fig. 5b): dlib 68 points on SR vs {ref}, "
                          "inter-ocular NME up to 10 %, AUC in the legend", "downstream")


def _downstream_metrics(downstream_root: Path) -> dict:
    """``{run: {testset: metrics}}`` of every ``downstream.json`` (as ``metrics/downstream.json``)."""
    out: dict = {}
    for f in sorted(downstream_root.glob("*/*/downstream.json")):
        out.setdefault(f.parent.parent.name, {})[f.parent.name] = read_json_strict(f)["metrics"]
    return out


def _ranking(log: ReportLog, downstream: Mapping, fig_dir: Path) -> None:
    for ts in sorted({ts for by_ts in downstream.values() for ts in by_ts}):
        panels = agreement_panels(downstream, ts)
        if not panels:
            log.note(f"ranking agreement on {ts}: fewer than two runs with both networks' numbers "
                     "(MobileFaceNet / PFLD weights given to the downstream stage?)")
            continue
        path = F.ranking_agreement(panels, fig_dir / f"ranking_agreement_{ts}.png",
                                   title=f"Do the two networks rank our runs alike? ({ts})")
        log.fig(path, f"Ranking agreement on {ts}: {', '.join(p['title'].split(':')[0] for p in panels)} by "
                      "dlib vs the second network (MobileFaceNet, PFLD), one point per run; Spearman ρ and "
                      "Kendall τ in each panel title (table: downstream_ranking_agreement.md)", "downstream")


# =============================================================================== the stage
def _copy_parsing_quality(parser_dir: Path, tables_dir: Path, fig_dir: Path, log) -> None:
    """The train_parser stage's ``parsing_quality.md/.csv`` and parser figures, as they are."""
    if not (parser_dir / "parsing_quality.md").is_file():
        log.note(f"{parser_dir}/parsing_quality.md is missing (the train_parser stage writes it)")
        return
    for ext in ("md", "csv"):
        write_text(tables_dir / f"parsing_quality.{ext}", (parser_dir / f"parsing_quality.{ext}").read_text())
    for f in sorted((parser_dir / "figures").glob("parsing_*.png")):
        with atomic_path(fig_dir / f.name) as tmp:
            shutil.copyfile(f, tmp)


def build_report(params_path: str | Path = "params.yaml", results_root: str | Path = "results",
                 runs_root: str | Path = "runs", data_root: str | Path = "data", out: str | Path = "reports",
                 downstream_root: str | Path | None = "downstream", attention_faces: int = 2,
                 conventions: pd.DataFrame | None = None) -> dict:
    """Write ``{out}/tables/``, ``{out}/figures/`` and ``{out}/README.md``.

    Returns ``{"readme", "tables": [{name, path, csv, caption, kind}], "figures": [{path,
    caption, section}], "notes": [...], "seconds", "timings": {section: seconds}}``. Raises
    :class:`BrokenResultsError` on an unreadable results file; anything missing becomes a note.
    ``downstream_root``: the downstream stage's folder (``None`` or a missing folder: read
    ``downstream.json`` / ``downstream_per_image.csv`` from ``results_root``).
    ``attention_faces``: attention figures per run (the first faces of the figure set).
    ``conventions``: :func:`fsrlib.pipeline.protocol_sensitivity.protocol_sensitivity`'s frame;
    with it, each paper table's PSNR / SSIM are under its paper's convention (``TableSpec.convention``)."""
    t0 = time.perf_counter()
    results_root, runs_root, data_root, out = Path(results_root), Path(runs_root), Path(data_root), Path(out)
    rep = report_params(params_path)
    params = rep.pop("_params")
    log = ReportLog()
    if not params:
        log.note(f"no params file at {params_path}: every run found in {results_root} and {runs_root} is reported, "
                 "with the default report settings")
    ds_root = _resolve_downstream_root(downstream_root, results_root)
    check_results(results_root, ds_root)  # raises on a broken file, before anything is written

    # (1) tables
    tables_dir, fig_dir = out / "tables", out / "figures"
    complexity = run_complexities(runs_root, log)
    written = build_all(results_root, runs_root, tables_dir, downstream_dir=ds_root, params=params,
                        complexity=complexity, conventions=conventions)
    written += write_pick_bias(results_root, tables_dir)
    dmetrics = _downstream_metrics(ds_root)
    agreement = agreement_table(dmetrics)
    if len(agreement):
        written += write_agreement_table(agreement, tables_dir)
    tables = table_entries(tables_dir, written)
    _copy_parsing_quality(data_root / "parser", tables_dir, fig_dir, log)
    ours = load_results(results_root, runs_root, ds_root)
    # the model cards with their metrics (runs/<run>/README.md, the train stage's, links here)
    write_report_cards(out / "cards", ours, params, runs_root, complexity, load_paper_profile())

    # (2) figures
    fig_dir.mkdir(parents=True, exist_ok=True)
    runs = _discover_runs(params, results_root, runs_root, ds_root)
    for r in runs:
        if run_scale(r) is None:
            log.note(f"{r}: not a run name (<key>-x<scale>); left out of the figures")
    runs = [r for r in runs if run_scale(r) is not None]
    in_params = [*(params.get("runs") or {}), *(params.get("chained") or {})]
    not_trained = [r for r in in_params if not (runs_root / r / "model.pt").is_file()]
    not_evaluated = [r for r in in_params if r not in not_trained and not (results_root / r).is_dir()]
    if not_trained:
        log.note(f"not trained (no {runs_root}/<run>/model.pt), so no numbers, SR images, attention or parsing "
                 f"maps: {', '.join(not_trained)}")
    if not_evaluated:
        log.note(f"trained, not evaluated (no {results_root}/<run>/): {', '.join(not_evaluated)}")
    scales = rep.get("figure_scales") or sorted({run_scale(r) for r in runs if (results_root / r).is_dir() or
                                                 (runs_root / r).is_dir()})
    scales = [int(s) for s in scales]
    testset = str(rep["testset_for_figures"])
    faces = None
    if (data_root / "faces" / "faces.csv").is_file():
        try:
            faces = FigureFaces(data_root, testset, int(rep["figure_faces"]))
            faces.batch(scales[0] if scales else 8)
        except (FileNotFoundError, ValueError, KeyError) as e:
            log.note(f"figure faces: cannot load {testset} from {data_root} ({e}); qualitative, attention and "
                     "parsing figures skipped")
            faces = None
    else:
        log.note(f"figure faces: no {data_root / 'faces' / 'faces.csv'} (run the prepare stage); qualitative, "
                 "attention and parsing figures skipped")
    timings = {"tables": round(time.perf_counter() - t0, 2)}

    def timed(key, fn, *args):
        t = time.perf_counter()
        fn(*args)
        timings[key] = round(time.perf_counter() - t, 2)

    with torch_threads(1):
        if faces is not None:
            timed("qualitative", _qualitative, log, faces, results_root, runs, scales, fig_dir)
            timed("maps", maps_figures, log, faces, runs, runs_root, fig_dir, attention_faces)
        timed("training", _training_curves, log, runs, runs_root, fig_dir)
        if len(ours):
            timed("cost", cost_figures, log, ours, runs_root, scales, testset, fig_dir)
        else:
            log.note("PSNR vs cost: no results")
        timed("downstream", _downstream, log, ds_root, runs, fig_dir)
        timed("ranking", _ranking, log, dmetrics, fig_dir)

    made = {f["path"].name for f in log.figures} | {f"psnr_vs_cost_x{s}.csv" for s in scales}
    for p in fig_dir.iterdir():  # figures of an earlier report that this one did not make again
        if p.is_file() and p.name.startswith(FIGURE_PREFIXES) and p.name not in made:
            p.unlink()

    # (3) README
    readme = write_readme(out, tables, log, ours, params, rep, runs, results_root, runs_root)
    return {"readme": readme, "tables": tables, "figures": log.figures, "notes": log.notes,
            "seconds": round(time.perf_counter() - t0, 2), "timings": timings}
