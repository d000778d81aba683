"""The training logs: dvclive, written as files only (:func:`files_only_live`), and
:class:`TsvLive`, a minimal logger with dvclive's file layout for machines where dvclive (and
the DVC it imports) is not installed (e.g. a bare GPU image).

:class:`TsvLive` writes exactly what :class:`fsrlib.train.trainer.Trainer` asks dvclive for:
``metrics.json`` (latest value of every metric and ``step``), ``params.yaml``,
``plots/metrics/<name>.tsv`` (``step<TAB>value`` rows) and ``plots/images/<name>`` PNGs, so
``dvc plots show`` and :func:`fsrlib.report.figures.read_dvclive` read both the same way.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import yaml

from ..io import atomic_path, save_image, write_json, write_text

try:  # an optional dependency here: TsvLive writes the same files without it
    from dvclive import Live
except ImportError:  # pragma: no cover - dvclive is in the requirements
    Live = None

__all__ = ["TsvLive", "files_only_live", "truncate_dvclive"]


class TsvLive:
    def __init__(self, dir: str, resume: bool = False, **_ignored):
        self.dir = Path(dir)
        self.step = 0
        self._latest: dict = {}
        if resume and (self.dir / "metrics.json").exists():
            self._latest = json.loads((self.dir / "metrics.json").read_text())
            self._latest.pop("step", None)
        self.dir.mkdir(parents=True, exist_ok=True)

    def log_params(self, params: dict) -> None:
        write_text(self.dir / "params.yaml", yaml.safe_dump(params, sort_keys=True))

    def log_metric(self, name: str, value) -> None:
        f = self.dir / "plots" / "metrics" / f"{name}.tsv"
        f.parent.mkdir(parents=True, exist_ok=True)
        leaf = name.split("/")[-1]
        new = not f.exists()
        with open(f, "a") as fh:
            if new:
                fh.write(f"step\t{leaf}\n")
            fh.write(f"{self.step}\t{float(value)}\n")
        d = self._latest
        *parents, last = name.split("/")
        for p in parents:
            d = d.setdefault(p, {})
        d[last] = float(value)

    def log_image(self, name: str, img) -> None:
        save_image(self.dir / "plots" / "images" / name, np.asarray(img, dtype=np.uint8))

    def make_summary(self) -> None:
        write_json(self.dir / "metrics.json", {**self._latest, "step": self.step})


def files_only_live():
    """A dvclive ``Live`` that writes its files only and never opens the git / DVC repo.

    The pipeline's ``dvc.yaml`` declares ``dvclive/`` metrics and plots itself, so the
    repository integration brings nothing, costs seconds, fails in a repo without commits,
    and (dvclive's ``get_dvc_repo``) would ``dvc init`` a plain git repo as a side effect.
    Without dvclive installed: :class:`fsrlib.train.live.TsvLive` (same files), with a warning."""
    if Live is None:
        warnings.warn("dvclive is not installed: logging with fsrlib.train.live.TsvLive (same file layout)")
        return TsvLive

    class FilesOnlyLive(Live):
        def _init_dvc(self):
            self._dvc_file = "dvc.yaml"
            if os.getenv("DVC_ROOT"):  # inside `dvc repro` / `dvc exp run`: only set the flags
                self._inside_dvc_pipeline = True
                self._init_dvc_pipeline()

    return FilesOnlyLive


def truncate_dvclive(live_dir: Path, step: int) -> None:
    """Drop metric rows logged after ``step`` (work lost with a killed run) so a resumed
    run does not log those steps twice."""
    mdir = live_dir / "plots" / "metrics"
    if not mdir.exists():
        return
    for f in mdir.rglob("*.tsv"):
        lines = f.read_text().splitlines()
        if not lines:
            continue
        head, keep = lines[0], [lines[0]]
        col = head.split("\t").index("step") if "step" in head.split("\t") else None
        for ln in lines[1:]:
            parts = ln.split("\t")
            if col is None or (parts[col].isdigit() and int(parts[col]) <= step):
                keep.append(ln)
        with atomic_path(f) as tmp:
            tmp.write_text("\n".join(keep) + "\n")
    idir = live_dir / "plots" / "images" / "val"
    if idir.exists():
        for p in idir.glob("*.png"):
            if p.stem.isdigit() and int(p.stem) > step:
                p.unlink()
