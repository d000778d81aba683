"""``fsr import METHOD PATH --run NAME``: an authors' released checkpoint as a run folder.

:func:`import_official` loads the file with :func:`fsrlib.models.official.load_official` and
writes ``runs/NAME/model.pt`` (the trainer's format, :data:`fsrlib.inference.MODEL_FILE_FORMAT`,
``weights: "official"``) and ``run.json`` (where the weights came from: path, sha256, size),
so that ``fsr evaluate --checkpoint runs/NAME``, ``fsr upscale`` and the evaluate / downstream
stages (``evaluate_run(params, NAME)``) use it like any trained run. The default run name is
``<method>-x<scale>-official`` (the run key is the method: the report joins it with the
paper's rows of that method).
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from ..config import parse_run_name
from ..inference import MODEL_FILE_FORMAT
from ..io import torch_save, write_json
from ..models.common import count_params
from ..models.official import load_official, official_config
from ..registry import ConfigError


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_official(method: str, path: str | Path, run: str | None = None, scale: int = 8,
                    runs_root: str | Path = "runs") -> Path:
    """Write ``runs_root/run/model.pt`` + ``run.json`` from a released checkpoint; returns the run folder."""
    path = Path(path)
    run = run or f"{method}-x{int(scale)}-official"
    key, run_scale, _ = parse_run_name(run)
    if run_scale is None:
        raise ConfigError(f"run name {run!r} must look like <key>-x<scale>[-<tag>] (e.g. {method}-x{scale}-official)")
    if run_scale != int(scale):
        raise ConfigError(f"run {run!r} says x{run_scale} but --scale is {scale}")
    model = load_official(method, path, scale=scale)
    cfg = official_config(method, scale)
    run_dir = Path(runs_root) / run
    n = count_params(model)
    run_config = {"run": run, "method": method, "scale": int(scale), "model": cfg, "recipe": "official",
                  "imported_from": str(path)}
    blob = {"format": MODEL_FILE_FORMAT, "model": cfg, "state_dict": model.state_dict(), "weights": "official",
            "run_config": run_config, "iteration": None, "params": n,
            "input_kind": getattr(model, "input_kind", "lr"), "prior": None}
    torch_save(blob, run_dir / "model.pt")
    write_json(run_dir / "run.json", {
        "run": run, "method": method, "scale": int(scale), "recipe": "official", "weights": "official",
        "iterations": None, "batch_size": None, "params": {"model": n, "discriminator": None},
        "params_M": round(n / 1e6, 4), "imported_from": str(path), "sha256": _sha256(path),
        "bytes": path.stat().st_size, "torch": torch.__version__, "device": "cpu", "device_name": "cpu",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    return run_dir
