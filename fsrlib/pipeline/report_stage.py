"""The ``report`` stage: every table and figure, and ``reports/README.md`` (the index).

:func:`build_report` reads what the earlier stages left (``results/{run}/{testset}/``:
``metrics.json``, ``per_image.csv``, ``sr/{dataset}/{name}.png``;
``downstream/{run}/{testset}/``: ``downstream.json``, ``downstream_per_image.csv`` (the older
layout kept them in ``results/``: read there when ``downstream/`` does not exist);
``runs/{run}/``: ``model.pt``, ``run.json``, ``dvclive/``) and writes

- ``{out}/tables/``: the paper-vs-ours tables (:func:`fsrlib.report.tables.build_all`);
- ``{out}/figures/``: qualitative grids per scale (LR, every method with SR images, HR, eye
  and mouth crops from the landmarks), SPARNet attention per FAU, predicted parsing maps
  (ParsingNet, W-Net, PGNet), training curves (dvclive), PSNR vs parameters / MACs (ours
  and the papers'), identity-threshold curves (W-Net Fig. 6) and landmark CED curves
  (SPARNet Fig. 5b);
- ``{out}/README.md``: every table and figure with a one-line caption, the protocol of our
  numbers, a list of the model benchmarks found in ``{out}/benchmarks/``, and a note for
  everything skipped.

Attention and parsing maps are recomputed with :class:`fsrlib.train.recipes.RunPredictor`
on a few faces (the evaluate stage keeps only the SR images); MACs are counted with
``torch.utils.flop_counter.FlopCounterMode`` on one 128-px face.

What is missing (a run not trained or not evaluated, a metric not computed, no landmarks)
is skipped with a note in the README, never an exception; a results file that exists but
cannot be read raises :class:`BrokenResultsError`.

:func:`inspect_face` is the inspection notebook's logic: one face through one run, with the
error map, PSNR / SSIM and every intermediate map the model returns.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

REPORT_DEFAULTS: dict[str, Any] = {"figure_faces": 4, "figure_scales": None, "testset_for_figures": "helen50"}

#: families of model types (``model.type`` of the run) whose maps the report recomputes
ATTENTION_TYPES = ("sparnet",)
PARSING_TYPES = ("parsingnet", "wnet", "pgnet")

#: every file name the stage writes under figures/ starts with one of these (stale ones are removed)
FIGURE_PREFIXES = ("qualitative_", "attention_", "parsing_", "training_", "psnr_vs_cost_", "identity_threshold_",
                   "ced_")

MAX_GRID_METHODS = 8        # methods per qualitative grid; more go to a second file
MAIN_CURVES = ("train/loss", "val/psnr", "val/ssim", "train/d_loss")

__all__ = ["BrokenResultsError", "REPORT_DEFAULTS", "build_report", "check_results", "inspect_face",
           "model_complexity", "report_params", "figure_png"]


class BrokenResultsError(ValueError):
    """A results file exists but cannot be read (corrupt JSON, CSV or image)."""


# =============================================================================== helpers
def report_params(params_path: str | Path | None = "params.yaml") -> dict:
    """The ``report`` section of params (validated) with the defaults filled in; the whole
    params dict is under ``"_params"``. A missing file gives the defaults."""
    from ..config import load_and_validate

    params: dict = {}
    if params_path is not None and Path(params_path).is_file():
        params = load_and_validate(params_path, check_models=False)
    rep = {**REPORT_DEFAULTS, **(params.get("report") or {})}
    rep["_params"] = params
    return rep


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure (what a notebook displays with ``IPython.display.Image``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return buf.getvalue()


@contextlib.contextmanager
def _torch_threads(n: int = 1):
    """Run small inferences on ``n`` intra-op threads (restored afterwards): on a busy 2-core
    machine, torch's 2-thread pool made a one-face forward pass ten times slower."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _scale_of(run: str) -> int | None:
    from ..report.tables import parse_run_name

    return parse_run_name(run)[1]


def _label_of(run: str) -> str:
    from ..report.tables import parse_run_name

    key, _, tag = parse_run_name(run)
    return f"{key}-{tag}" if tag else key


def _read_json_strict(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BrokenResultsError(f"{path}: unreadable results file ({e.__class__.__name__}: {e})") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("metrics", {}), dict):
        raise BrokenResultsError(f"{path}: not a results object (expected a JSON object with a `metrics` object)")
    return obj


def _read_csv_strict(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"name": str})
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as e:
        raise BrokenResultsError(f"{path}: unreadable results file ({e.__class__.__name__}: {e})") from e


def _read_png_strict(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

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
                (_read_json_strict if name.endswith(".json") else _read_csv_strict)(f)
                counts[name] += 1
    return counts


def _resolve_downstream_root(downstream_root: str | Path | None, results_root: Path) -> Path:
    """``downstream/`` (the pipeline's layout) when it exists, else ``results/`` (older layout)."""
    if downstream_root is None:
        return results_root
    d = Path(downstream_root)
    return d if d.is_dir() else results_root


class _Log:
    """What the stage produced and what it skipped (the README is written from this)."""

    def __init__(self):
        self.figures: list[dict] = []
        self.notes: list[str] = []

    def fig(self, path, caption: str, section: str):
        self.figures.append({"path": Path(path), "caption": caption, "section": section})

    def note(self, msg: str):
        if msg not in self.notes:
            self.notes.append(msg)


# =============================================================================== runs and faces
def _discover_runs(params: Mapping, results_root: Path, runs_root: Path, downstream_root: Path) -> list[str]:
    """Runs of params (in order), then any other run folder found in results/, downstream/ or runs/."""
    from ..config import all_runs

    names = list(all_runs(params)) if params else []
    extra = set()
    for root in (results_root, runs_root, downstream_root):
        if root.is_dir():
            extra |= {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    return names + sorted(extra - set(names))


def _model_type(params: Mapping, run: str, runs_root: Path) -> str | None:
    """``model.type`` of a run: from params when the run is there, else from its model.pt."""
    from ..config import all_runs, run_config

    try:
        if params and run in all_runs(params):
            return str(run_config(params, run)["model"]["type"])
    except Exception:  # noqa: BLE001 - a method not in params: fall back to the file
        pass
    f = runs_root / run / "model.pt"
    if not f.is_file():
        return None
    import torch

    blob = torch.load(f, map_location="cpu", weights_only=False)
    return str((blob.get("model") or {}).get("type"))


class _Faces:
    """The figure faces of one test set, loaded per scale (HR, LR, upsampled LR, labels)."""

    def __init__(self, data_root: Path, testset: str, n: int):
        from .evaluate import TESTSET_SPLITS

        self.data_root, self.testset, self.n = data_root, testset, int(n)
        self.dataset, self.split = TESTSET_SPLITS[testset]
        self._cache: dict[int, dict] = {}
        self._landmarks = None

    def batch(self, scale: int) -> dict:
        """Collated batch of the first ``n`` faces at ``scale`` (LR from disk when the degrade
        stage made it, else recomputed with the same MATLAB resize)."""
        if scale not in self._cache:
            import torch
            from torch.utils.data import default_collate

            from ..data.datasets import FaceSRDataset

            probe = FaceSRDataset(self.data_root, self.dataset, self.split, scale, keys=("hr",), limit=self.n)
            rows = list(probe.df.itertuples())
            on_disk = all((self.data_root / "lr" / f"x{scale}" / r.dataset / f"{r.name}.png").is_file() and
                          (self.data_root / "lr" / f"x{scale}" / "up" / r.dataset / f"{r.name}.png").is_file()
                          for r in rows)
            has_labels = all((self.data_root / "parsing" / "labels" / r.dataset / f"{r.name}.png").is_file()
                             for r in rows)
            keys = ("hr", "lr", "lr_up") + (("labels",) if has_labels else ())
            ds = FaceSRDataset(self.data_root, self.dataset, self.split, scale, keys=keys, limit=self.n,
                               lr_source="disk" if on_disk else "online")
            with torch.no_grad():
                self._cache[scale] = default_collate([ds[i] for i in range(len(ds))])
            self._cache[scale]["_lr_online"] = not on_disk
        return self._cache[scale]

    def landmarks(self) -> list[np.ndarray] | None:
        """Detected 68-point landmarks of the faces (HR crop frame), or None."""
        f = self.data_root / "faces" / "landmarks.npz"
        if not f.is_file():
            return None
        from ..data.align import load_landmarks

        if self._landmarks is None:
            self._landmarks = load_landmarks(self.data_root / "faces")
        b = self.batch(next(iter(self._cache)) if self._cache else 8)
        out = []
        for d, n in zip(b["dataset"], b["name"]):
            lm = self._landmarks.get(f"{d}/{n}")
            if lm is None or lm["detected"] is None or not np.isfinite(lm["detected"]).all():
                return None
            out.append(np.asarray(lm["detected"], np.float64))
        return out


# =============================================================================== complexity
def model_complexity(run: str | Path, runs_root: str | Path = "runs", size: int = 128) -> dict:
    """Parameters and MACs of a run's inference on one ``size``-px face (the prior network of a
    two-stage run included): ``{"params_M", "macs_G", "input"}``. MACs = FLOPs / 2 counted by
    ``FlopCounterMode`` (convolutions, matrix products; not element-wise operations), on the
    ``meta`` device (shapes only, no arithmetic) and on the CPU when an operation has no meta
    implementation."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..models.common import count_params
    from ..train.recipes import RunPredictor

    pred = RunPredictor.from_run(run, runs_root, "cpu")
    model = pred.model
    n_params = count_params(model) + (count_params(pred.prior.model) if pred.prior is not None else 0)
    s = int(model.scale)
    up = int(model.expected_input_size()) if getattr(model, "input_kind", "lr") == "upsampled" else size

    def count(device: str) -> float:
        model.to(device)
        if pred.prior is not None:
            pred.prior.to(device)
        batch = {"lr": torch.rand(1, 3, size // s, size // s, device=device),
                 "lr_up": torch.rand(1, 3, up, up, device=device)}
        if pred.prior_gt:
            batch[pred.prior_gt] = torch.rand(1, 3, size, size, device=device)
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            pred.maps(batch)
        return fc.get_total_flops() / 2 / 1e9

    try:
        macs = count("meta")
    except Exception:  # noqa: BLE001 - an op without a meta kernel: count on real tensors
        pred = RunPredictor.from_run(run, runs_root, "cpu")
        model = pred.model
        macs = count("cpu")
    return {"params_M": n_params / 1e6, "macs_G": macs,
            "input": f"{pred.input_key} {size // s if pred.input_key == 'lr' else up} px"}


# =============================================================================== figure makers
def _qualitative(log: _Log, faces: _Faces, results_root: Path, runs: Sequence[str], scales: Sequence[int],
                 fig_dir: Path) -> None:
    from ..report import figures as F

    ts = faces.testset
    for s in scales:
        runs_s = [r for r in runs if _scale_of(r) == s and (results_root / r / ts / "sr").is_dir()]
        if not runs_s:
            log.note(f"qualitative grid ×{s}: no run of scale ×{s} has SR images on {ts} "
                     f"(results/<run>/{ts}/sr/; run the evaluate stage with save_images: true)")
            continue
        b = faces.batch(s)
        names, dsets = list(b["name"]), list(b["dataset"])
        sr: dict[str, list] = {}
        metrics: dict[str, list] = {}
        labels = [_label_of(r) for r in runs_s]
        labels = [r if labels.count(lab) > 1 else lab for r, lab in zip(runs_s, labels)]
        for r, lab in zip(runs_s, labels):
            paths = [results_root / r / ts / "sr" / d / f"{n}.png" for d, n in zip(dsets, names)]
            miss = [p.name for p in paths if not p.is_file()]
            if miss:
                log.note(f"qualitative grid ×{s}: {r} has no SR image for {', '.join(miss)} on {ts}; column left out")
                continue
            sr[lab] = [_read_png_strict(p) for p in paths]
            per = results_root / r / ts / "per_image.csv"
            if per.is_file():
                df = _read_csv_strict(per)
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


def _recompute(pred, batch: Mapping) -> dict:
    import torch

    b = {k: v for k, v in batch.items() if torch.is_tensor(v)}
    with torch.no_grad():
        return pred.maps(b)


def _maps_figures(log: _Log, faces: _Faces, params: Mapping, runs: Sequence[str], runs_root: Path,
                  fig_dir: Path, attention_faces: int) -> None:
    """SPARNet attention per FAU (one figure per run and face) and predicted parsing maps
    (one figure per scale, a column per run)."""
    from ..report import figures as F
    from ..train.recipes import RunPredictor

    parsing_cols: dict[int, dict[str, list]] = {}
    for r in runs:
        s = _scale_of(r)
        if s is None:
            continue
        mtype = _model_type(params, r, runs_root)
        is_att = bool(mtype) and mtype.startswith(ATTENTION_TYPES)
        is_parse = bool(mtype) and mtype.startswith(PARSING_TYPES)
        if not (is_att or is_parse):
            continue
        what = "attention maps" if is_att else "parsing maps"
        if not (runs_root / r / "model.pt").is_file():
            if r not in (params.get("runs") or {}) and r not in (params.get("chained") or {}):
                log.note(f"{what} of {r}: not trained (no {runs_root / r / 'model.pt'})")
            continue  # runs of params: in the "not trained" note
        try:
            pred = RunPredictor.from_run(r, runs_root, "cpu")
            b = faces.batch(s)
            out = _recompute(pred, b)
        except Exception as e:  # noqa: BLE001 - one run that cannot be run must not stop the report
            log.note(f"{what} of {r}: could not recompute ({e.__class__.__name__}: {e})")
            continue
        if is_att:
            att = out.get("attention") or []
            if not len(att):
                log.note(f"attention maps of {r}: the model has no attention (e.g. att_type none)")
                continue
            fau = list(out.get("attention_fau") or range(1, len(att) + 1))
            src = out.get("sr")
            for i in range(min(attention_faces, len(b["name"]))):
                name = b["name"][i]
                path = F.attention_maps(
                    [a[i] for a in att], fig_dir / f"attention_{r}_{name}.png",
                    image=(src[i].clamp(0, 1) if src is not None else b["hr"][i]),
                    stage_names=[f"FAU #{j}" for j in fau],
                    title=f"{r}: attention per FAU stage ({faces.testset} {name})")
                log.fig(path, f"SPARNet attention of {r} on {name}: one panel per FAU with attention "
                              f"(#{', #'.join(map(str, fau))}), min-max normalised (range in each title); "
                              "bottom row overlaid on the SR face", "attention")
        else:
            maps = out.get("parsing")
            if maps is None:
                log.note(f"parsing maps of {r}: the model returns no `parsing` map")
                continue
            parsing_cols.setdefault(s, {})[r] = [_display_parsing(m) for m in maps]
    for s, cols in sorted(parsing_cols.items()):
        b = faces.batch(s)
        targets = list(b["labels"].numpy()) if "labels" in b else None
        if targets is None:
            log.note(f"parsing maps ×{s}: no ground-truth label maps (data/parsing/labels); target column left out")
        path = F.parsing_maps(cols, fig_dir / f"parsing_x{s}_{faces.testset}.png", images=list(b["hr"]),
                              targets=targets, title=f"Predicted parsing maps ×{s} ({faces.testset})")
        desc = ", ".join(f"{r} ({_parsing_desc(cols[r][0])})" for r in cols)
        log.fig(path, f"Predicted parsing maps ×{s} on {faces.testset}: HR face, {desc}"
                      + (", target 19-class labels of the parse stage" if targets is not None else "")
                      + "; binary maps in grey, multi-channel maps as label colours", "parsing")


def _display_parsing(m) -> np.ndarray:
    """A predicted parsing map (C x h x w) for :func:`fsrlib.report.figures.parsing_maps`:
    one- or three-channel skin maps -> channel 0 clamped to [0, 1] (the channel the
    evaluate stage scores); multi-channel maps clamped, channels kept."""
    a = m.detach().float().cpu().numpy() if hasattr(m, "detach") else np.asarray(m, np.float64)
    a = np.clip(a, 0, 1)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        return a[0]
    return a


def _parsing_desc(a: np.ndarray) -> str:
    return f"{a.shape[-1]} px skin map" if a.ndim == 2 else f"{a.shape[0]} maps at {a.shape[-1]} px"


def _training_curves(log: _Log, runs: Sequence[str], runs_root: Path, fig_dir: Path) -> None:
    from ..report import figures as F

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
        by_scale.setdefault(_scale_of(r), {})[r] = df
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


def _cost(log: _Log, ours: pd.DataFrame, runs_root: Path, scales: Sequence[int], fig_testset: str,
          fig_dir: Path) -> None:
    from ..report import figures as F
    from ..report.tables import load_paper_results
    from ..io import write_csv

    paper = load_paper_results()
    ours = ours[ours["scale"].notna()]
    for s in scales:
        o = ours[(ours["scale"] == s) & (ours["metric"] == "psnr") & ours["value"].notna()]
        if o.empty:
            log.note(f"PSNR vs cost ×{s}: no run of scale ×{s} has a PSNR")
            continue
        avail = list(dict.fromkeys(o["testset"]))
        ts = next((t for t in ("celeba_test", fig_testset) if t in avail), avail[0])
        pts = F.cost_points(paper if s == 8 else None, ours, testset=ts, scale=s)
        pts["macs_input"] = None
        for i, row in pts[pts["source"] == "ours"].iterrows():
            run = row["label"]
            if row["psnr"] is None or (isinstance(row["psnr"], float) and math.isnan(row["psnr"])):
                continue
            if not (runs_root / run / "model.pt").is_file():
                log.note(f"PSNR vs MACs ×{s}: {run} has no model.pt to count MACs on")
                continue
            try:
                c = model_complexity(run, runs_root)
            except Exception as e:  # noqa: BLE001
                log.note(f"PSNR vs MACs ×{s}: MACs of {run} not counted ({e.__class__.__name__}: {e})")
                continue
            pts.at[i, "macs_G"] = c["macs_G"]
            pts.at[i, "macs_input"] = c["input"]
            if row["params_M"] is None or (isinstance(row["params_M"], float) and math.isnan(row["params_M"])):
                pts.at[i, "params_M"] = c["params_M"]
        write_csv(fig_dir / f"psnr_vs_cost_x{s}.csv", pts)
        paper_note = "paper points (hollow): AMINet Table X, CelebA ×8; " if s == 8 else ""
        path = F.psnr_vs_cost(pts, fig_dir / f"psnr_vs_cost_x{s}.png",
                              title=f"PSNR vs cost ×{s} (ours: PSNR on {ts})")
        log.fig(path, f"PSNR vs parameters and MACs ×{s}: {paper_note}ours (filled) = Y-PSNR on {ts}, parameters "
                      "from run.json, MACs counted with FlopCounterMode on one 128-px face (prior network included); "
                      f"numbers in psnr_vs_cost_x{s}.csv", "cost")
        if s == 8 and (pts["source"] == "ours").any():
            po = pts[pts["source"] == "ours"]
            path = F.psnr_vs_cost(po, fig_dir / f"psnr_vs_cost_x{s}_ours.png",
                                  title=f"PSNR vs cost ×{s}, ours only (PSNR on {ts})")
            log.fig(path, f"PSNR vs parameters and MACs ×{s}, our runs only (their sizes are far below the "
                          "papers', so the combined plot squeezes them against the axis)", "cost")


def _downstream(log: _Log, downstream_root: Path, runs: Sequence[str], fig_dir: Path) -> None:
    from ..report import figures as F

    groups: dict[tuple[int, str], dict[str, pd.DataFrame]] = {}
    for r in runs:
        s = _scale_of(r)
        d = downstream_root / r
        if s is None or not d.is_dir():
            continue
        for f in sorted(d.glob("*/downstream_per_image.csv")):
            groups.setdefault((s, f.parent.name), {})[r] = _read_csv_strict(f)
    if not groups:
        log.note(f"downstream curves: no {downstream_root}/<run>/<testset>/downstream_per_image.csv "
                 "(run the downstream stage)")
        return
    for (s, ts), per in sorted(groups.items()):
        sr_runs = {r: df for r, df in per.items() if _label_of(r) != "hr"}
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


# =============================================================================== README
_SECTIONS = (("qualitative", "Qualitative results"), ("attention", "SPARNet attention maps"),
             ("parsing", "Predicted parsing maps"), ("training", "Training curves"),
             ("cost", "PSNR vs model size"), ("downstream", "Downstream: identity and landmarks"))


def _table_entries(tables_dir: Path, written: Sequence[Path]) -> list[dict]:
    from ..report.tables import TABLES_BY_NAME

    out = []
    for p in written:
        if p.suffix != ".md" or p.name == "README.md":
            continue
        first = next((ln for ln in p.read_text().splitlines() if ln.strip()), p.stem).lstrip("# ").strip()
        first = first.split(". Each cell:")[0].split(". No paper numbers")[0].rstrip(".")
        spec = TABLES_BY_NAME.get(p.stem)
        out.append({"name": p.stem, "path": p, "csv": p.with_suffix(".csv"), "caption": first,
                    "kind": spec.kind if spec is not None else "ours"})
    return out


def _write_readme(out: Path, tables: list[dict], log: _Log, ours: pd.DataFrame, params: Mapping, rep: Mapping,
                  runs: Sequence[str], results_root: Path, runs_root: Path) -> Path:
    from ..io import write_text
    from ..report.tables import protocol_caption

    def rel(p: Path) -> str:
        return Path(p).relative_to(out).as_posix()

    measured = sorted(set(ours.loc[ours["testset"] != "", "run"])) if len(ours) else []
    hr_rows = [r for r in measured if _label_of(r) == "hr"]
    evaluated = [r for r in measured if r not in hr_rows]
    trained = [r for r in runs if (runs_root / r / "model.pt").is_file()]
    in_params = list(params.get("runs") or {}) + list(params.get("chained") or {}) if params else []
    lines = ["# Report", "",
             "Generated by `fsrlib.pipeline.report_stage.build_report` from `results/`, `downstream/` and `runs/`. "
             "Tables put the papers' numbers beside ours (`paper / ours`); figures are recomputed from the "
             "runs' SR images, models and logs.", "",
             "## Protocol", "",
             f"- Runs in params: {len(in_params)}; trained (model.pt): {len(trained)}; evaluated: {len(evaluated)}"
             + (f" ({', '.join(evaluated)})" if evaluated else "")
             + (f"; HR reference rows (downstream): {', '.join(hr_rows)}" if hr_rows else "") + ".",
             f"- {protocol_caption(ours if len(ours) else None, measured)}",
             f"- Figures: faces = the first {rep['figure_faces']} of `{rep['testset_for_figures']}` "
             "(sorted by name, as the data set orders them); SR images from the evaluate stage; attention and "
             "parsing maps recomputed with the trained models on those faces.",
             "- Numbers are from this profile's budget (see `params.yaml`); the papers' settings are in the "
             "captions of each table.", "",
             "## Tables", "",
             "Each cell of a paper table reads `paper / ours`; `–` gives the reason where a number is missing.", "",
             "| table | kind | caption |", "|---|---|---|"]
    for t in tables:
        lines.append(f"| [{t['name']}]({rel(t['path'])}) ([csv]({rel(t['csv'])})) | {t['kind']} | "
                     f"{t['caption'].replace('|', '/')} |")
    lines += ["", "Index with the number of cells we fill: [tables/README.md](tables/README.md).", "",
              "## Figures", ""]
    for key, title in _SECTIONS:
        figs = [f for f in log.figures if f["section"] == key]
        lines += [f"### {title}", ""]
        if not figs:
            lines += ["(none: see the notes below)", ""]
            continue
        lines += ["| figure | caption |", "|---|---|"]
        lines += [f"| [{f['path'].name}]({rel(f['path'])}) | {f['caption'].replace('|', '/')} |" for f in figs]
        lines.append("")
    bench = sorted((out / "benchmarks").glob("*.md")) if (out / "benchmarks").is_dir() else []
    lines += ["## Model benchmarks", ""]
    if bench:
        for b in bench:
            first = next((ln for ln in b.read_text().splitlines() if ln.strip()), b.stem).lstrip("# ").strip()
            lines.append(f"- [{b.name}]({rel(b)}): {first}")
    else:
        lines.append(f"- none in {out / 'benchmarks'} (`python benchmarks/models.py` writes them there)")
    lines += ["", "## Notes: what was skipped and why", ""]
    lines += [f"- {n}" for n in log.notes] if log.notes else ["- nothing was skipped"]
    lines.append("")
    return write_text(out / "README.md", "\n".join(lines))


# =============================================================================== the stage
def build_report(params_path: str | Path = "params.yaml", results_root: str | Path = "results",
                 runs_root: str | Path = "runs", data_root: str | Path = "data", out: str | Path = "reports",
                 downstream_root: str | Path | None = "downstream", attention_faces: int = 2) -> dict:
    """Write ``{out}/tables/``, ``{out}/figures/`` and ``{out}/README.md``.

    Returns ``{"readme", "tables": [{name, path, csv, caption, kind}], "figures": [{path,
    caption, section}], "notes": [...], "seconds", "timings": {section: seconds}}``. Raises
    :class:`BrokenResultsError` on an unreadable results file; anything missing becomes a note.
    ``downstream_root``: the downstream stage's folder (``None`` or a missing folder: read
    ``downstream.json`` / ``downstream_per_image.csv`` from ``results_root``).
    ``attention_faces``: SPARNet attention figures per run (the first faces of the figure set)."""
    from ..report.tables import build_all, load_results

    t0 = time.perf_counter()
    results_root, runs_root, data_root, out = Path(results_root), Path(runs_root), Path(data_root), Path(out)
    rep = report_params(params_path)
    params = rep.pop("_params")
    log = _Log()
    if not params:
        log.note(f"no params file at {params_path}: every run found in {results_root} and {runs_root} is reported, "
                 "with the default report settings")
    ds_root = _resolve_downstream_root(downstream_root, results_root)
    check_results(results_root, ds_root)  # raises on a broken file, before anything is written

    # (1) tables
    tables_dir, fig_dir = out / "tables", out / "figures"
    written = build_all(results_root, runs_root, tables_dir, downstream_dir=ds_root)
    tables = _table_entries(tables_dir, written)
    ours = load_results(results_root, runs_root, ds_root)

    # (2) figures
    fig_dir.mkdir(parents=True, exist_ok=True)
    runs = _discover_runs(params, results_root, runs_root, ds_root)
    for r in runs:
        if _scale_of(r) is None:
            log.note(f"{r}: not a run name (<key>-x<scale>); left out of the figures")
    runs = [r for r in runs if _scale_of(r) is not None]
    in_params = [*(params.get("runs") or {}), *(params.get("chained") or {})]
    not_trained = [r for r in in_params if not (runs_root / r / "model.pt").is_file()]
    not_evaluated = [r for r in in_params if r not in not_trained and not (results_root / r).is_dir()]
    if not_trained:
        log.note(f"not trained (no {runs_root}/<run>/model.pt), so no numbers, SR images, attention or parsing "
                 f"maps: {', '.join(not_trained)}")
    if not_evaluated:
        log.note(f"trained, not evaluated (no {results_root}/<run>/): {', '.join(not_evaluated)}")
    scales = rep.get("figure_scales") or sorted({_scale_of(r) for r in runs if (results_root / r).is_dir() or
                                                 (runs_root / r).is_dir()})
    scales = [int(s) for s in scales]
    testset = str(rep["testset_for_figures"])
    faces = None
    if (data_root / "faces" / "faces.csv").is_file():
        try:
            faces = _Faces(data_root, testset, int(rep["figure_faces"]))
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

    with _torch_threads(1):
        if faces is not None:
            timed("qualitative", _qualitative, log, faces, results_root, runs, scales, fig_dir)
            timed("maps", _maps_figures, log, faces, params, runs, runs_root, fig_dir, attention_faces)
        timed("training", _training_curves, log, runs, runs_root, fig_dir)
        if len(ours):
            timed("cost", _cost, log, ours, runs_root, scales, testset, fig_dir)
        else:
            log.note("PSNR vs cost: no results")
        timed("downstream", _downstream, log, ds_root, runs, fig_dir)

    made = {f["path"].name for f in log.figures} | {f"psnr_vs_cost_x{s}.csv" for s in scales}
    for p in fig_dir.iterdir():  # figures of an earlier report that this one did not make again
        if p.is_file() and p.name.startswith(FIGURE_PREFIXES) and p.name not in made:
            p.unlink()

    # (3) README
    readme = _write_readme(out, tables, log, ours, params, rep, runs, results_root, runs_root)
    return {"readme": readme, "tables": tables, "figures": log.figures, "notes": log.notes,
            "seconds": round(time.perf_counter() - t0, 2), "timings": timings}


# =============================================================================== inspection
def _face_index(df: pd.DataFrame, face: int | str) -> int:
    keys = [f"{d}/{n}" for d, n in zip(df["dataset"].astype(str), df["name"].astype(str))]
    names = list(df["name"].astype(str))
    if isinstance(face, (int, np.integer)) and not isinstance(face, bool):
        if 0 <= int(face) < len(df):
            return int(face)
        # papermill -p face 296961468_1 passes the int 2969614681 (Python reads the "_" as a digit separator)
        hits = [i for i, n in enumerate(names) if n.replace("_", "") == str(int(face))]
        if len(hits) == 1:
            return hits[0]
        raise IndexError(f"face index {face} out of range: the test set has {len(df)} faces "
                         "(give a name as a string; with papermill: -r face <name>)")
    s = str(face)
    for cand in (keys, names):
        if s in cand:
            return cand.index(s)
    if s.isdigit() and int(s) < len(df):
        return int(s)
    raise KeyError(f"face {face!r} is not in the test set (e.g. {names[:3]})")


def _np_img(t) -> np.ndarray:
    """(3,H,W) tensor -> HxWx3 float32 in [0, 1]."""
    return np.ascontiguousarray(t.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0))


def _np_map(t) -> np.ndarray:
    a = t.detach().float().cpu().numpy()
    return a[0] if a.ndim == 3 and a.shape[0] == 1 else a


def inspect_face(run: str | Path, testset: str = "helen50", face: int | str = 0,
                 params_path: str | Path | None = "params.yaml", runs_root: str | Path | None = None,
                 data_root: str | Path = "data", device: str = "cpu", crop_border: int | None = None,
                 out_path: str | Path | None = None, threads: int = 1) -> dict:
    """One face of ``testset`` through the trained ``run`` (a run name, run folder or model.pt).

    Returns a dict of numpy arrays and a matplotlib figure:
    ``lr`` (h x w x 3), ``lr_up``, ``hr``, ``sr`` (128 x 128 x 3 in [0, 1]; None for a parsing-only
    model), ``error`` (128 x 128: |SR - HR| averaged over RGB), ``psnr`` / ``ssim`` (Y BT.601,
    the evaluate stage's ``crop_border``), ``attention`` (one map per FAU with attention,
    (H, W) or (C, H, W), values in (0, 1)) and ``attention_fau``, ``parsing`` (C x h x w),
    ``prior`` (FishFSRNet: its ParsingNet prior), ``coarse`` (PGNet's coarse SR, H x W x 3),
    ``labels`` (the parse stage's 19-class map, when present), ``maps`` (every other output),
    ``name``, ``dataset``, ``index``, ``scale``, ``run``, ``testset`` and ``figure``. With
    ``out_path`` the figure is also saved there as a PNG. ``threads``: torch intra-op threads
    for the one-face forward pass (restored afterwards)."""
    with _torch_threads(threads):
        return _inspect_face(run, testset, face, params_path, runs_root, data_root, device, crop_border, out_path)


def _inspect_face(run, testset, face, params_path, runs_root, data_root, device, crop_border, out_path) -> dict:
    import torch
    from torch.utils.data import default_collate

    from ..data.datasets import FaceSRDataset
    from ..metrics.image import psnr, ssim
    from ..train.recipes import RunPredictor
    from .evaluate import TESTSET_SPLITS

    params: dict = {}
    if params_path is not None and Path(params_path).is_file():
        from ..config import load_and_validate

        params = load_and_validate(params_path, check_models=False)
    runs_root = Path(runs_root or (params.get("train") or {}).get("runs_root", "runs"))
    crop = int(crop_border if crop_border is not None else (params.get("evaluate") or {}).get("crop_border", 0))
    if testset not in TESTSET_SPLITS:
        raise KeyError(f"unknown test set {testset!r}; known: {sorted(TESTSET_SPLITS)}")
    pred = RunPredictor.from_run(run, runs_root, device)
    model = pred.model
    scale = int(model.scale)
    data_root = Path(data_root)
    ds_name, split = TESTSET_SPLITS[testset]
    probe = FaceSRDataset(data_root, ds_name, split, scale, keys=("hr",))
    idx = _face_index(probe.df, face)
    r = probe.df.iloc[idx]
    on_disk = (data_root / "lr" / f"x{scale}" / r["dataset"] / f"{r['name']}.png").is_file() and \
        (data_root / "lr" / f"x{scale}" / "up" / r["dataset"] / f"{r['name']}.png").is_file()
    has_labels = (data_root / "parsing" / "labels" / r["dataset"] / f"{r['name']}.png").is_file()
    keys = {"hr", "lr", "lr_up"} | ({"labels"} if has_labels else set())
    if pred.prior_gt:
        keys.add(pred.prior_gt)
    ds = FaceSRDataset(data_root, ds_name, split, scale, keys=tuple(sorted(keys)),
                       lr_source="disk" if on_disk else "online")
    item = ds[idx]
    batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in default_collate([item]).items()}
    with torch.no_grad():
        out = pred.maps({k: v for k, v in batch.items() if torch.is_tensor(v)})

    res: dict[str, Any] = {"run": str(run), "testset": testset, "index": idx, "name": str(item["name"]),
                           "dataset": str(item["dataset"]), "scale": scale,
                           "lr": _np_img(item["lr"]), "lr_up": _np_img(item["lr_up"]), "hr": _np_img(item["hr"]),
                           "sr": None, "error": None, "psnr": None, "ssim": None, "attention": [],
                           "attention_fau": [], "parsing": None, "prior": None, "coarse": None,
                           "labels": item["labels"].numpy() if "labels" in item else None, "maps": {}}
    if "sr" in out:
        sr = out["sr"][0].float().clamp(0, 1).cpu()
        hr = item["hr"].float()
        res["sr"] = _np_img(sr)
        res["error"] = (sr - hr).abs().mean(0).numpy().astype(np.float32)
        res["psnr"] = float(psnr(sr[None], hr[None], crop_border=crop)[0])
        res["ssim"] = float(ssim(sr[None], hr[None], crop_border=crop)[0])
    if out.get("attention"):
        res["attention"] = [_np_map(a[0]) for a in out["attention"]]
        res["attention_fau"] = [int(j) for j in (out.get("attention_fau") or range(1, len(out["attention"]) + 1))]
    for k in ("parsing", "prior"):
        if out.get(k) is not None:
            res[k] = out[k][0].detach().float().cpu().numpy()
    if out.get("coarse") is not None:
        res["coarse"] = _np_img(out["coarse"][0])
    for k, v in out.items():
        if k in ("sr", "attention", "attention_fau", "parsing", "prior", "coarse"):
            continue
        if torch.is_tensor(v):
            res["maps"][k] = v[0].detach().float().cpu().numpy()
    res["figure"] = _inspect_figure(res, crop)
    if out_path is not None:
        from ..io import write_bytes

        write_bytes(out_path, figure_png(res["figure"]))
    return res


def _inspect_figure(res: Mapping, crop: int):
    """Rows: images (LR, coarse, SR, HR, error); attention per FAU; each parsing / prior map
    (label colours, then one panel per channel)."""
    from matplotlib.figure import Figure

    from ..report import figures as F

    size = res["hr"].shape[:2]
    rows: list[list[tuple[str, str, Any]]] = []
    top = [("LR (nearest)", "img", F.nearest_upscale(res["lr"], size))]
    if res["coarse"] is not None:
        top.append(("coarse SR", "img", res["coarse"]))
    if res["sr"] is not None:
        top.append(("SR", "img", res["sr"]))
    top.append(("HR", "img", res["hr"]))
    if res["error"] is not None:
        top.append((f"|SR-HR| (mean RGB)\nPSNR {res['psnr']:.2f} dB, SSIM {res['ssim']:.4f}", "err", res["error"]))
    rows.append(top)
    if res["attention"]:
        rows.append([(f"FAU #{j} attention {tuple(a.shape)}\n[{a.min():.2f}, {a.max():.2f}]", "att", a)
                     for j, a in zip(res["attention_fau"], res["attention"])])
    for key in ("parsing", "prior"):
        m = res[key]
        if m is None:
            continue
        m = np.clip(m, 0, 1)
        row = []
        same3 = m.ndim == 3 and m.shape[0] == 3 and np.allclose(m[0], m[1]) and np.allclose(m[0], m[2])
        if m.ndim == 3 and (m.shape[0] == 1 or same3):
            row.append((f"{key} ({m.shape[-1]} px)", "soft", m[0]))
        elif m.ndim == 3 and m.shape[0] == 3:  # ParsingNet: three skin channels, channel 0 is the scored one
            row += [(f"{key} ch{c} ({m.shape[-1]} px)", "soft", m[c]) for c in range(3)]
        else:
            lab, _ = F.parsing_to_labels(m)
            row.append((f"{key}: labels ({m.shape[0]} maps)", "lab", lab))
            from ..parsing.labels import PARTS11_NAMES, REGIONS4_NAMES

            names = {11: PARTS11_NAMES, 4: REGIONS4_NAMES}.get(m.shape[0], [f"ch{c}" for c in range(m.shape[0])])
            row += [(f"{key}: {n}", "soft", m[c]) for c, n in enumerate(names)]
        rows.append(row)
    if res["labels"] is not None and (res["parsing"] is not None or res["prior"] is not None):
        rows.append([("target labels (parse stage)", "lab", res["labels"])])
    for k, v in res["maps"].items():
        if isinstance(v, np.ndarray) and v.ndim in (2, 3):
            a = v if v.ndim == 2 else (v.transpose(1, 2, 0) if v.shape[0] == 3 else v.mean(0))
            rows.append([(f"{k} {tuple(v.shape)}", "img" if a.ndim == 3 else "soft", np.clip(a, 0, 1))])
    ncol = min(8, max(len(r) for r in rows))
    wrapped: list[list] = []
    for r in rows:
        wrapped += [r[i:i + ncol] for i in range(0, len(r), ncol)]
    fig = Figure(figsize=(2.0 * ncol, 2.25 * len(wrapped)), dpi=100)
    axes = np.asarray(fig.subplots(len(wrapped), ncol, squeeze=False))
    for i, r in enumerate(wrapped):
        for j in range(ncol):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(r):
                ax.set_visible(False)
                continue
            title, kind, a = r[j]
            if kind == "img":
                ax.imshow(F.to_uint8(a), interpolation="nearest")
            elif kind == "err":
                im = ax.imshow(a, cmap="inferno", vmin=0, vmax=max(float(a.max()), 1e-6))
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            elif kind == "att":
                a2 = a if a.ndim == 2 else a.mean(0)
                lo, hi = float(a2.min()), float(a2.max())
                ax.imshow((a2 - lo) / (hi - lo) if hi > lo else np.zeros_like(a2), cmap="jet", vmin=0, vmax=1,
                          interpolation="bilinear")
            elif kind == "lab":
                lab = np.asarray(a, np.int64)
                ax.imshow(F.label_colors(int(lab.max()) + 1)[lab], interpolation="nearest")
            else:
                ax.imshow(a, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=7)
    fig.suptitle(f"{res['run']} on {res['testset']} {res['dataset']}/{res['name']} (×{res['scale']}"
                 f"{', crop ' + str(crop) if crop else ''})", fontsize=9)
    fig.tight_layout()
    return fig
