"""A minimal logger with dvclive's file layout, for machines where dvclive (and the DVC it
imports) is not installed (e.g. a bare GPU image).

It writes exactly what :class:`fsrlib.train.trainer.Trainer` asks dvclive for:
``metrics.json`` (latest value of every metric and ``step``), ``params.yaml``,
``plots/metrics/<name>.tsv`` (``step<TAB>value`` rows) and ``plots/images/<name>`` PNGs, so
``dvc plots show`` and :func:`fsrlib.report.figures.read_dvclive` read both the same way.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


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
        import yaml

        from ..io import write_text

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
        from ..io import save_image

        save_image(self.dir / "plots" / "images" / name, np.asarray(img, dtype=np.uint8))

    def make_summary(self) -> None:
        from ..io import write_json

        write_json(self.dir / "metrics.json", {**self._latest, "step": self.step})
