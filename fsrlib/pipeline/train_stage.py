"""The ``train`` stage: one run of params.yaml, trained on the prepared faces.

``train_run(params_path, run)`` resolves the run's trainer config (:func:`fsrlib.config.run_config`),
validates it (:func:`fsrlib.train.schema.validate_runs`), builds the training and validation
sets (only the batch keys the run needs), and calls :class:`fsrlib.train.trainer.Trainer`. A
run folder left by a *different* config, code or data (DVC keeps checkpoints between runs so a
killed run resumes; :func:`fingerprint`) is moved to ``runs/_superseded/`` rather than deleted
or silently resumed: nothing is lost.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.data import default_collate

from .. import models as _models  # noqa: F401  (registers the model zoo)
from ..config import dataset_config, load_and_validate, run_config
from ..data.datasets import FaceSRDataset
from ..data.hr_faces import hr_faces_root, prepare_hr_faces
from ..deps import module_deps
from ..inference import MODEL_FILE_FORMAT, input_key, model_complexity, resolve_device
from ..io import torch_save, write_json, write_text
from ..losses import batch_keys, build_losses
from ..metrics.image import psnr, ssim
from ..models.common import count_params
from ..registry import MODELS
from ..report.cards import card_info, load_paper_profile, write_run_card
from ..train.live import files_only_live
from ..train.schema import validate_config, validate_runs
from ..train.trainer import Trainer


def _build_model(cfg: Mapping[str, Any]):
    """The run's model at the run's scale (a ``scale`` in the model config wins)."""
    return MODELS.build({"scale": cfg["scale"], **cfg["model"]})


def needed_keys(cfg: Mapping[str, Any]) -> set[str]:
    """Batch keys a run reads: the model's input, every loss's :meth:`~fsrlib.losses.Loss.batch_keys`
    (weight-0 losses are not built), the prior's input and the validation target."""
    c = validate_config(cfg)
    keys = {input_key(_build_model(c)), "hr"}
    keys |= batch_keys([*build_losses(c["losses"]), *build_losses(c["d_losses"])])
    if c["recipe"] == "two_stage" or c["prior_from"]:
        keys.add("lr")  # ParsingNet reads the raw LR
    if c["prior_gt"]:
        keys.add(c["prior_gt"])
    keys.add(c["val"]["target"])
    return keys


def make_datasets(params: Mapping, cfg: Mapping, keys: set[str], data_root: str | Path = "data"):
    """(train_set, val_set) for a run: ``train.train_set``/``val_set`` name ``dataset:split``."""
    tr = params.get("train") or {}
    dcfg = dataset_config(params, cfg["run"])

    hr_size = int(dcfg.get("hr_size", 128))
    root, train_spec, val_spec = data_root, tr.get("train_set", "celeba:train"), tr.get("val_set", "celeba:val")
    if hr_size != 128:  # SPARNetHD at 512 px: its own HR faces (fsrlib.data.hr_faces), LR made online
        source = hr_source(params, dcfg)
        root = hr_faces_root(data_root, hr_size)
        if not (root / "faces" / "faces.csv").exists():
            data = params.get("data") or {}
            prepare_hr_faces(root, hr_size, source, mirror=data.get("mirror", "../shared/datasets"),
                             raw=Path(data_root) / "raw")
        train_spec, val_spec = f"{source}:train", f"{source}:val"

    def one(spec: str, limit, augment):
        ds, split = spec.split(":")
        return FaceSRDataset(root=root, dataset=ds, split=split, scale=cfg["scale"], keys=tuple(sorted(keys)),
                             augment=augment, limit=limit, seed=int(cfg.get("seed", 0)),
                             degradation=dcfg.get("degradation", "bicubic"), hr_size=hr_size,
                             lr_source="disk" if hr_size == 128 else "online", cache=bool(tr.get("cache", False)))

    train_set = one(train_spec, tr.get("max_train_images"), dcfg.get("augment"))
    val_set = one(val_spec, tr.get("max_val_images"), None)
    return train_set, val_set


def hr_source(params: Mapping, dcfg: Mapping) -> str:
    """A 512-px run's HR faces: ``dataset.hr_source``, else FFHQ when ``data.ffhq`` is true, else
    the mirror's CelebAMask-HQ faces."""
    return dcfg.get("hr_source") or ("ffhq" if (params.get("data") or {}).get("ffhq") else "celebamask_hq")


#: the data a run's weights depend on besides its config and code (the train stage's DVC deps)
FINGERPRINT_DATA = ("data/faces/MANIFEST.md5", "data/lr/x{scale}/MANIFEST.md5", "data/parsing/MANIFEST.md5")


def fingerprint(cfg: Mapping, root: str | Path = ".") -> str:
    """sha256 of the run config, of the code this stage runs (:func:`fsrlib.deps.module_deps` of
    this module: the same import closure that makes the stage's dvc.yaml deps) and of the data
    manifests :data:`FINGERPRINT_DATA`. A checkpoint from another fingerprint is never resumed."""
    h = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode())
    root = Path(root)
    for rel in [*module_deps(__name__), *FINGERPRINT_DATA]:
        f = root / rel.format(scale=cfg.get("scale"))
        if f.is_file():
            h.update(rel.format(scale=cfg.get("scale")).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def prepare_run_dir(run_dir: Path, fp: str) -> str | None:
    """Keep a run folder whose checkpoints have this fingerprint (a killed run resumes);
    move any other one to ``runs/_superseded/`` (a new config, code or data starts afresh,
    and nothing is deleted). Returns where an old folder went."""
    stamp = run_dir / "checkpoints" / "fingerprint.txt"
    moved = None
    if run_dir.exists() and any(run_dir.iterdir()):
        if stamp.exists() and stamp.read_text().strip() == fp:
            return None
        dest = run_dir.parent / "_superseded" / f"{run_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(run_dir), dest)
        moved = str(dest)
    write_text(stamp, fp + "\n")
    return moved


def _has_no_weights(cfg) -> bool:
    return count_params(_build_model(cfg)) == 0


def export_untrained(cfg: Mapping, runs_root: str | Path = "runs", val_set=None) -> dict:
    """Bicubic and other weight-free methods: write model.pt and run.json without training,
    in the trainer's format, so evaluation treats every method the same way. With a
    ``val_set``, its validation PSNR/SSIM (Y) is logged at step 0 in the same dvclive files
    as a trained run's."""
    c = validate_config(cfg)
    model = MODELS.build(c["model"])
    run_dir = Path(runs_root) / c["run"]
    final_val = {}
    if val_set is not None:
        batch = default_collate([val_set[i] for i in range(len(val_set))])
        with torch.no_grad():
            sr = model(batch[input_key(model)]).clamp(0, 1)
        final_val = {"psnr": float(psnr(sr, batch["hr"]).mean()), "ssim": float(ssim(sr, batch["hr"]).mean())}
        live = files_only_live()(str(run_dir / "dvclive"), report=None, save_dvc_exp=False, dvcyaml=False)
        live.step = 0
        for k, v in final_val.items():
            live.log_metric(f"val/{k}", v)
        live.make_summary()
    summary = {"run": c["run"], "method": c["method"], "scale": c["scale"], "recipe": "none", "iterations": 0,
               "batch_size": 0, "wall_time_s": 0.0, "train_time_s": 0.0, "images_per_s": None, "params": {"model": 0},
               "params_M": 0.0, "weights": "none", "device": "cpu", "final_val": final_val, "selected_iter": 0,
               "checkpoint_selection": "no trainable weights (nothing to select)",
               "note": "no trainable weights: not trained"}
    blob = {"format": MODEL_FILE_FORMAT, "model": c["model"], "state_dict": model.state_dict(), "weights": "none",
            "run_config": c, "iteration": 0, "params": 0, "input_kind": getattr(model, "input_kind", "lr"),
            "prior": None}
    torch_save(blob, run_dir / "model.pt")
    torch_save(blob, run_dir / "snapshots" / "iter_0000000.pt")   # the one "snapshot" (a DVC output of every run)
    write_json(run_dir / "run.json", summary)
    return summary


def train_run(params_path: str | Path, run: str, device: str | None = None, data_root: str | Path = "data",
              progress: bool | None = None) -> dict:
    """Train one run of params.yaml; returns the trainer's run.json summary."""
    params = validate_runs(load_and_validate(params_path))
    cfg = run_config(params, run)
    tr = params.get("train") or {}
    torch.set_num_threads(int(tr.get("threads") or torch.get_num_threads()))
    runs_root = Path(tr.get("runs_root", "runs"))
    moved = prepare_run_dir(runs_root / run, fingerprint(cfg))
    if moved:
        print(f"{run}: the previous run folder was made with another config, code or data; moved to {moved}")
    train_set, val_set = make_datasets(params, cfg, needed_keys(cfg), data_root)
    if _has_no_weights(cfg):
        summary = export_untrained(cfg, runs_root, val_set)
    else:
        progress = tr.get("progress", True) if progress is None else progress
        trainer = Trainer(cfg, train_set, val_set, runs_root=runs_root,
                          device=resolve_device(device or tr.get("device")), progress=progress)
        summary = trainer.fit()
    write_card(params, run, runs_root, data_root, Path(params_path).name)
    return summary


def write_card(params: Mapping, run: str, runs_root: Path, data_root: str | Path = "data",
               params_name: str = "params.yaml") -> Path:
    """``runs/<run>/README.md``, the run's model card (:mod:`fsrlib.report.cards`), with the
    parameters and MACs counted on its ``model.pt``."""
    parser_json = Path(data_root) / "parsing" / "parser.json"
    parser = json.loads(parser_json.read_text()).get("parser") if parser_json.is_file() else None
    cx = model_complexity(run, runs_root)
    info = card_info(run, params, runs_root, {"params_M": cx["params_M"], "macs_G": cx["macs_G"]}, parser,
                     load_paper_profile(), params_name)
    return write_run_card(runs_root / run, info)
