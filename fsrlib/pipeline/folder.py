"""``fsr evaluate``: the pipeline's prepare, degrade, evaluate and downstream stages on any
folder of face photos, with one trained checkpoint.

``evaluate_folder(dir, method, scale, checkpoint)`` runs the very code of the stages, with the
sections of ``params.yaml`` when that file exists (otherwise each stage's defaults):

* **prepare** (:func:`fsrlib.pipeline.prepare.prepare`, params ``prepare``): every image file at the
  top level of ``dir`` (``.jpg .jpeg .png .bmp .tif .tiff .webp .gif .ppm .pgm .pnm``; sub-folders
  are not searched) is read with the project's rules, its largest face detected (dlib HOG),
  landmarked (68 points) and aligned to the 128x128 template. A ``NAME.pts`` file (300-W, 68
  points) next to ``NAME.jpg`` is the image's ground truth (as in the Helen mirror): it is used
  for the landmark error against the truth, and, with ``helen_gt_fallback``, to align a face
  dlib misses. Images without a usable face (unreadable, transparent, grayscale, too small, no
  face, out of frame; two files with one name stem: ``duplicate_name``) go to ``rejects.csv``;
* **degrade** (:func:`fsrlib.pipeline.degrade.degrade_all`, params ``degrade``): MATLAB ``imresize``
  bicubic LR at the checkpoint's scale, and its bicubic upsampling;
* **evaluate** (:func:`fsrlib.pipeline.evaluate.score_sr`, params ``evaluate``): the model's SR
  and the metrics of the stage (``evaluate.metrics``, default PSNR / SSIM on BT.601 Y and VIF;
  a metric whose weights are absent, e.g. LPIPS offline, is reported missing with the reason),
  border crop ``evaluate.crop_border``;
* **downstream** (:func:`fsrlib.pipeline.downstream.score_downstream`, params ``downstream``):
  dlib identity similarity and landmark distance SR vs HR, and vs the ``.pts`` ground truth
  when present (``lmk_dist_gt_px``...). Verification (both identity networks) when identity
  labels come with the folder: ``identities=`` (``--identities FILE``) or an ``identity.csv``
  beside the images or one folder above them (the mirror's layout), with columns ``file,
  identity`` (file names as in the folder); without labels there is no verification.
  ``max_images`` of either section is not applied: the folder is the test set.

Output (default ``results/folder-<dir name>/<method>-x<scale>/``)::

    metrics.json, per_image.csv                the evaluate stage's files; protocol: folder,
                                               n images, scale, checkpoint, method, rejects
    downstream.json, downstream_per_image.csv  the downstream stage's files
    rejects.csv                                file, dataset, reason, detail
    faces/folder/{name}.png                    aligned HR (+ faces.csv, landmarks.npz)
    lr/x{s}/folder/{name}.png, lr/x{s}/up/...  LR and its bicubic upsampling
    sr/folder/{name}.png                       SR

``method`` must be the checkpoint's (``run_config.method`` of its model.pt, the run key) and
``scale`` its scale; this is checked before any image is read.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from ..config import load_and_validate, parse_run_name
from ..data.datasets import to_tensor
from ..data.faces import load_landmarks
from ..inference import MODEL_FILE_FORMAT, RunPredictor, resolve_device
from ..io import read_u8, to_uint8, write_csv, write_json
from ..registry import ConfigError
from ..settings import stage_settings
from .degrade import degrade_all
from .downstream import DOWNSTREAM_PROTOCOL, gt_array, score_downstream
from .evaluate import degradation_text, metric_settings, score_sr, training_record
from .prepare import prepare

__all__ = ["evaluate_folder", "resolve_checkpoint", "load_predictor", "Checkpoint", "UnusableInput", "NoFaceError",
           "IMAGE_EXTS", "DATASET", "load_params_if_present"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm")
#: the ``dataset`` value of a folder's faces (paths ``faces/folder/{name}.png`` ...)
DATASET = "folder"


class UnusableInput(FileNotFoundError):
    """The input holds nothing the tool can work on (no usable face, unreadable photo).

    A :class:`FileNotFoundError` so that the ``fsr`` command reports it as a usage error
    (message, exit code 2) rather than a traceback."""


class NoFaceError(UnusableInput):
    """No face was found (dlib's HOG detector, also on the upsampled image)."""


# ====================================================================== checkpoint
@dataclass
class Checkpoint:
    """A trained run's model.pt and what it says about itself."""

    path: Path
    run: str
    method: str
    scale: int
    run_config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)  # run.json next to model.pt, when present


def _train_hint(run: str) -> str:
    key, scale, _ = parse_run_name(run)
    return (f"train it first: `dvc repro train@{run}` (the run {run!r} must be under runs: in params.yaml, "
            f"e.g. `{run}: {{method: {key}, scale: {scale}}}`), "
            f"or give --checkpoint runs/<run>/model.pt")


def resolve_checkpoint(checkpoint: str | Path | None, method: str, scale: int, runs_root: str | Path = "runs"
                       ) -> Checkpoint:
    """Find and check a checkpoint: ``checkpoint`` = a model.pt, a run folder, or ``None``
    (``runs_root/<method>-x<scale>/model.pt``). Raises :class:`FileNotFoundError` (which run to
    train) when it is missing, :class:`ConfigError` when it is not an fsrlib model file or holds
    another method or scale than asked for. Reads the file's metadata only."""
    want_run = f"{method}-x{int(scale)}"
    if checkpoint is None:
        path = Path(runs_root) / want_run / "model.pt"
        if not path.is_file():
            raise FileNotFoundError(f"no trained {method} x{scale} model: {path} does not exist; "
                                    f"{_train_hint(want_run)}")
    else:
        p = Path(checkpoint)
        path = p / "model.pt" if p.is_dir() else p
        if not path.is_file():
            run = p.name if p.is_dir() or p.suffix != ".pt" else p.parent.name
            run = run if "-x" in run else want_run
            what = f"{path} does not exist" if p.is_dir() else f"{p} does not exist (give a model.pt or a run folder)"
            raise FileNotFoundError(f"checkpoint {what}; {_train_hint(run)}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a model file"
        raise ConfigError(f"{path} is not a readable fsrlib model file ({e.__class__.__name__}: {e})") from e
    if not isinstance(blob, Mapping) or blob.get("format") != MODEL_FILE_FORMAT:
        fmt = blob.get("format") if isinstance(blob, Mapping) else type(blob).__name__
        raise ConfigError(f"{path} is not an fsrlib model file (format {fmt!r}, expected {MODEL_FILE_FORMAT!r}); "
                          f"give the model.pt the trainer writes in runs/<run>/")
    cfg = dict(blob.get("run_config") or {})
    ck_method = cfg.get("method")
    ck_scale = int(cfg.get("scale") or (blob.get("model") or {}).get("scale") or 0)
    run = cfg.get("run") or f"{ck_method}-x{ck_scale}"
    if ck_method != method:
        raise ConfigError(f"--method {method} does not match the checkpoint {path}: it holds a {ck_method!r} model "
                          f"(run {run}); use --method {ck_method} or another checkpoint")
    if ck_scale != int(scale):
        raise ConfigError(f"--scale {scale} does not match the checkpoint {path}: it is a x{ck_scale} model "
                          f"(run {run}); use --scale {ck_scale} or another checkpoint")
    summary_path = path.parent / "run.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return Checkpoint(path=path, run=run, method=ck_method, scale=ck_scale, run_config=cfg, summary=summary)


def load_predictor(ck: Checkpoint, device: str):
    """:class:`fsrlib.inference.RunPredictor` of a checked checkpoint; refuses models that
    cannot super-resolve a face alone (a ParsingNet, a model fed ground-truth maps)."""
    if ck.run_config.get("prior_gt"):
        raise ConfigError(f"{ck.path}: run {ck.run} reads the ground-truth map {ck.run_config['prior_gt']!r} "
                          f"(prior_gt) at test time, which a photo does not have; use a run with a learned prior")
    predictor = RunPredictor.from_run(ck.path, device=device)
    if not predictor.model.outputs_sr:
        raise ConfigError(f"{ck.path}: run {ck.run} is a parsing network (no SR output); "
                          f"give an SR model's checkpoint")
    return predictor


def load_params_if_present(params_path: str | Path | None) -> dict:
    """The validated params file, or ``{}`` (every stage's defaults) when there is none."""
    if params_path is None or not Path(params_path).is_file():
        return {}
    return load_and_validate(params_path)


# ====================================================================== the folder
def _list_images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS),
                  key=lambda p: p.name)


class _FolderFaces:
    """The dataset items (docs/conventions.md: ``hr``, ``lr``, ``lr_up``, ``name``, ``dataset``)
    of the prepared and degraded faces, in name order, read on access."""

    def __init__(self, names, faces_root: Path, lr_root: Path, scale: int):
        self.names = sorted(str(n) for n in names)
        self.faces_root, self.lr_root, self.scale = Path(faces_root), Path(lr_root), int(scale)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict:
        n, s = self.names[i], self.scale
        paths = {"hr": self.faces_root / DATASET / f"{n}.png", "lr": self.lr_root / f"x{s}" / DATASET / f"{n}.png",
                 "lr_up": self.lr_root / f"x{s}" / "up" / DATASET / f"{n}.png"}
        return {**{k: to_tensor(read_u8(v)) for k, v in paths.items()}, "name": n, "dataset": DATASET}


def folder_identities(folder: Path, files: list[str], identities: str | Path | None = None):
    """``(labels per file or None, the csv used or None)``: ``identities`` (a csv of ``file,
    identity``), else ``identity.csv`` in ``folder`` or its parent. A listed csv that misses a
    kept face is an error (a partial labelling would make wrong pairs)."""
    cands = [Path(identities)] if identities is not None else [folder / "identity.csv", folder.parent / "identity.csv"]
    for c in cands:
        if c.is_file():
            df = pd.read_csv(c, dtype={"file": str})
            if not {"file", "identity"} <= set(df.columns):
                raise ConfigError(f"{c} needs the columns file, identity (has {list(df.columns)})")
            lab = dict(zip(df.file.map(lambda f: Path(f).name), df.identity))
            miss = [f for f in files if Path(f).name not in lab]
            if miss:
                if identities is None and len(miss) == len(files):
                    continue  # an identity.csv of other images (e.g. a parent folder's): not ours
                raise ConfigError(f"{c} has no identity for {len(miss)} of the {len(files)} faces "
                                  f"(e.g. {miss[0]})")
            return np.array([lab[Path(f).name] for f in files]), c
    if identities is not None:
        raise FileNotFoundError(f"identity file {identities} not found")
    return None, None


def evaluate_folder(dir: str | Path, method: str, scale: int, checkpoint: str | Path, out: str | Path | None = None,
                    params_path: str | Path = "params.yaml", device: str | None = "auto",
                    progress: bool = True, identities: str | Path | None = None) -> Path:
    """Prepare, degrade, evaluate and downstream-score every face photo of ``dir`` with the
    checkpoint (a model.pt or a run folder); returns the output folder (module docstring)."""
    folder = Path(dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of face photos")
    params = load_params_if_present(params_path)
    tr, ev = params.get("train") or {}, params.get("evaluate") or {}
    ck = resolve_checkpoint(checkpoint, method, scale, tr.get("runs_root", "runs"))
    out = Path(out) if out is not None else Path("results") / f"folder-{folder.resolve().name}" / f"{method}-x{scale}"
    if out.resolve() == folder.resolve():
        raise ConfigError(f"--out {out} is the input folder; give another output folder")
    files = _list_images(folder)
    if not files:
        raise FileNotFoundError(f"no image files ({' '.join(IMAGE_EXTS)}) at the top level of {folder}")

    device = resolve_device(ev.get("device") if device in (None, "auto") else device)
    if tr.get("threads"):
        torch.set_num_threads(int(tr["threads"]))
    predictor = load_predictor(ck, device)

    # a previous run of this tool in `out`: its files go (a face rejected now must not linger)
    if (out / "faces" / "faces.csv").is_file():
        for sub in ("faces", "lr", "sr"):
            shutil.rmtree(out / sub, ignore_errors=True)
        for f in ("metrics.json", "per_image.csv", "downstream.json", "downstream_per_image.csv", "rejects.csv"):
            (out / f).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- prepare
    seen, keep, rejects = set(), [], []
    for f in files:
        if f.stem in seen:
            rejects.append({"file": f.name, "dataset": DATASET, "reason": "duplicate_name",
                            "detail": f"another image of this folder is named {f.stem}.*"})
            continue
        seen.add(f.stem)
        keep.append(f)
    raw_index = pd.DataFrame({"file": [f.name for f in keep], "dataset": DATASET,
                              "has_pts": [f.with_suffix(".pts").is_file() for f in keep]})
    pcfg = params.get("prepare")
    faces, prep_rejects = prepare(raw_index, out / "faces", params=pcfg, progress=progress, raw_root=folder)
    rejects = pd.concat([prep_rejects, pd.DataFrame(rejects, columns=["file", "dataset", "reason", "detail"])],
                        ignore_index=True)
    rejects = rejects.sort_values("file", kind="stable").reset_index(drop=True)
    write_csv(out / "rejects.csv", rejects)
    if len(faces) == 0:
        why = ", ".join(f"{k} {v}" for k, v in rejects.reason.value_counts().items())
        raise NoFaceError(f"none of the {len(files)} images of {folder} has a usable face ({why}); "
                          f"see {out / 'rejects.csv'}")

    # ---------------------------------------------------------------- degrade
    deg = {**(params.get("degrade") or {}), "scales": [ck.scale]}
    degrade_all(out / "faces", out / "lr", params=deg, faces=faces, progress=progress)

    # ---------------------------------------------------------------- evaluate
    items = _FolderFaces(faces.name, out / "faces", out / "lr", ck.scale)
    file_of = dict(zip(faces.name.astype(str), faces.file))
    per, agg, missing, info, sr8 = score_sr(predictor, items, ev, device, out / "sr", progress)
    names = [str(n) for n in per["name"]]
    per.insert(3, "file", [file_of[n] for n in names])
    write_csv(out / "per_image.csv", per)

    _, crop, _ = metric_settings(ev)
    pc = stage_settings(pcfg, "prepare")
    lms = load_landmarks(out / "faces")
    gts = [lms[f"{DATASET}/{n}"]["gt"] for n in names]
    n_gt = sum(g is not None for g in gts)
    testset = f"folder:{folder.resolve().name}"
    proto: dict[str, Any] = {
        "data": f"{testset}: {len(names)} faces of {len(files)} images in {folder.resolve()}, dlib-aligned "
                f"{pc['hr_size']}x{pc['hr_size']} (margin {pc['margin']}); {len(rejects)} rejected (rejects.csv); "
                f"{n_gt} with .pts ground-truth landmarks",
        "folder": str(folder.resolve()), "testset": testset, "n_images": len(names), "n_files": len(files),
        "rejects": len(rejects), "scale": ck.scale, "checkpoint": str(ck.path.resolve()), "run": ck.run,
        "method": ck.method, "params": str(Path(params_path).resolve()) if params else "defaults (no params file)",
        "degradation": degradation_text(params, ck.scale), "crop_border": crop,
        "color": "y_bt601 (PSNR/SSIM); VIF on Y", "quantized": "uint8", "parser": None,
        **training_record(ck.summary),
    }
    res = {"run": ck.run, "method": ck.method, "scale": ck.scale, "testset": testset, "n_images": len(names),
           "metrics": agg, "missing": missing, "metric_info": info, "protocol": proto}
    write_json(out / "metrics.json", res)

    # ---------------------------------------------------------------- downstream
    hr8 = list(to_uint8(torch.stack([items[i]["hr"] for i in range(len(items))])))
    ids, id_file = folder_identities(folder, [file_of[n] for n in names], identities)
    if id_file is not None:
        proto["identities"] = str(id_file.resolve())
    dper, dagg, dmissing, dinfo = score_downstream(
        list(sr8), hr8, params.get("downstream") or {}, identities=ids,
        gt_landmarks=gt_array(gts) if n_gt else None, names=names, progress=progress,
        repo_root=Path(params_path).resolve().parent if params else None)
    dper.insert(2, "file", [file_of[n] for n in names])
    write_csv(out / "downstream_per_image.csv", dper)
    write_json(out / "downstream.json", {
        "run": ck.run, "method": ck.method, "scale": ck.scale, "testset": testset, "n_images": len(names),
        "metrics": dagg, "missing": dmissing, "metric_info": dinfo,
        "protocol": {**proto, "crop_border": 0, **DOWNSTREAM_PROTOCOL}})
    return out
