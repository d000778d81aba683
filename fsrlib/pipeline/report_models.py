"""The report stage's model re-inference: the figure faces, attention and parsing maps
recomputed with the trained models (the evaluate stage keeps only SR images), and PSNR
against parameters / MACs (MACs counted on the model, :func:`fsrlib.inference.model_complexity`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import default_collate

from ..data.datasets import FaceSRDataset
from ..data.faces import load_landmarks
from ..inference import RunPredictor, model_complexity
from ..io import write_csv
from ..report import figures as F
from ..report.readme import ReportLog
from ..report.results import load_paper_results, run_scale
from .evaluate import TESTSET_SPLITS

__all__ = ["FigureFaces", "recompute", "maps_figures", "cost_figures"]


class FigureFaces:
    """The figure faces of one test set, loaded per scale (HR, LR, upsampled LR, labels)."""

    def __init__(self, data_root: Path, testset: str, n: int):
        self.data_root, self.testset, self.n = data_root, testset, int(n)
        self.dataset, self.split = TESTSET_SPLITS[testset]
        self._cache: dict[int, dict] = {}
        self._landmarks = None

    def batch(self, scale: int) -> dict:
        """Collated batch of the first ``n`` faces at ``scale`` (LR from disk when the degrade
        stage made it, else recomputed with the same MATLAB resize)."""
        if scale not in self._cache:
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


def recompute(pred, batch: Mapping) -> dict:
    b = {k: v for k, v in batch.items() if torch.is_tensor(v)}
    with torch.no_grad():
        return pred.maps(b)


def maps_figures(log: ReportLog, faces: FigureFaces, runs: Sequence[str], runs_root: Path, fig_dir: Path,
                 attention_faces: int) -> None:
    """Attention maps (one figure per run and face) and predicted parsing maps (one figure per
    scale, a column per run) of every trained run whose model declares them (``maps`` of
    :class:`fsrlib.models.common.FSRModel`: ``attention``, ``parsing``)."""
    parsing_cols: dict[int, dict[str, list]] = {}
    for r in runs:
        s = run_scale(r)
        if s is None or not (runs_root / r / "model.pt").is_file():
            continue  # not trained: in the README's "not trained" note
        try:
            pred = RunPredictor.from_run(r, runs_root, "cpu")
        except Exception as e:  # noqa: BLE001 - one run that cannot be loaded must not stop the report
            log.note(f"attention / parsing maps of {r}: could not load its model ({e.__class__.__name__}: {e})")
            continue
        is_att, is_parse = "attention" in pred.model.maps, "parsing" in pred.model.maps
        if not (is_att or is_parse):
            continue
        what = "attention maps" if is_att else "parsing maps"
        try:
            b = faces.batch(s)
            out = recompute(pred, b)
        except Exception as e:  # noqa: BLE001 - one run that cannot be run must not stop the report
            log.note(f"{what} of {r}: could not recompute ({e.__class__.__name__}: {e})")
            continue
        if is_att:
            att = out["attention"]
            stages = [f"FAU #{j}" for j in out["attention_fau"]] if "attention_fau" in out else \
                [f"stage {j}" for j in range(1, len(att) + 1)]
            src = out.get("sr")
            for i in range(min(attention_faces, len(b["name"]))):
                name = b["name"][i]
                path = F.attention_maps(
                    [a[i] for a in att], fig_dir / f"attention_{r}_{name}.png",
                    image=(src[i].clamp(0, 1) if src is not None else b["hr"][i]),
                    stage_names=stages, title=f"{r}: attention per stage ({faces.testset} {name})")
                log.fig(path, f"Attention of {r} on {name}: one panel per attention stage ({', '.join(stages)}), "
                              "min-max normalised (range in each title); bottom row overlaid on the SR face",
                        "attention")
        if is_parse:
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


def cost_figures(log: ReportLog, ours: pd.DataFrame, runs_root: Path, scales: Sequence[int], fig_testset: str,
          fig_dir: Path) -> None:
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


def run_complexities(runs_root: Path, log: ReportLog | None = None) -> dict[str, dict]:
    """``{run: {params_M, macs_G, input}}`` counted on every ``runs_root/*/model.pt`` (the runs
    table's MACs); a run whose count fails is left out with a note."""
    out: dict[str, dict] = {}
    for p in sorted(Path(runs_root).glob("*/model.pt")):
        run = p.parent.name
        if run.startswith(("_", ".")):
            continue
        try:
            out[run] = model_complexity(run, runs_root)
        except Exception as e:  # noqa: BLE001 - the table says "–" for this run
            if log is not None:
                log.note(f"runs table: MACs of {run} not counted ({e.__class__.__name__}: {e})")
    return out
