"""The ``evaluate`` stage: run a trained model on the test sets and score it.

For each test set it writes ``results/{run}/{testset}/``: ``sr/{dataset}/{name}.png`` (the
SR faces, uint8), ``per_image.csv`` and ``metrics.json`` (conventions in
docs/conventions.md), with the protocol recorded next to the numbers: test data, degradation,
metric conventions (colour space, border crop), the parser that made the maps, the training
budget and the model size, and what the model declares it produces (``outputs_sr``, ``maps``).
A model without an SR output (a prior estimator: ParsingNet) is scored by parsing accuracy.

Two measurements beside the protocol's numbers, on the test sets the ``evaluate`` section names:

- ``pil_lr_testsets``: the same faces with the LR made by PIL's bicubic instead of MATLAB's
  imresize (the SPARNet-codebase scripts' convention), super-resolved and saved as
  ``results/{run}/{testset}/sr_pil/`` (the report's protocol_sensitivity.md scores them);
- ``test_pick``: every snapshot of the run (``runs/{run}/snapshots/``, one per validation) scored
  on that test set, so a reader sees what picking the checkpoint on the test set, as peers'
  published bests were, would have added to the validation-selected one (``metrics.json``
  ``test_pick``). Nothing here chooses a model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..config import TESTSETS, load_and_validate, parse_run_name, run_key
from ..data.datasets import FaceSRDataset, to_tensor
from ..data.degrade import pil_degrade
from ..inference import RunPredictor, input_key, resolve_device
from ..io import save_image, to_uint8, write_csv, write_json
from ..metrics.scoring import describe_metrics, evaluate_images

#: test set name -> (dataset, split) of :class:`fsrlib.data.datasets.FaceSRDataset`
TESTSET_SPLITS = {"celeba_test": ("celeba_test", "test"),  # CelebA's official test partition
                  "helen_test": ("helen", "test"), "helen50": ("helen", "helen50"),
                  # the CelebAMask-HQ test faces: a stand-in (†) for the thesis' CelebAMask-HQ test split (Table 4.1)
                  "celebamask_test": ("celebamask", "test")}
assert set(TESTSET_SPLITS) == set(TESTSETS)


@torch.no_grad()
def predict(predictor, dataset, batch_size: int = 16, device: str = "cpu", keys=("sr",), progress: bool = True):
    """Run ``predictor.maps`` over a dataset; returns ``{key: (N, ...) cpu tensor}`` and the names."""
    outs: dict[str, list] = {k: [] for k in keys}
    names, dsets = [], []
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size, shuffle=False), desc="predict", disable=not progress,
                      leave=False):
        b = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        m = predictor.maps(b)
        for k in keys:
            outs[k].append(m[k].float().cpu())
        names += list(batch["name"])
        dsets += list(batch["dataset"])
    return {k: torch.cat(v) for k, v in outs.items()}, names, dsets


def protocol(params: Mapping, run: str, testset: str, n: int, crop_border: int, runs_root: Path,
             data_root: Path, extra: Mapping | None = None) -> dict:
    """What a number means: recorded next to every number the pipeline writes."""
    summary_path = runs_root / run / "run.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    parser_path = data_root / "parsing" / "parser.json"
    parser = json.loads(parser_path.read_text()).get("parser") if parser_path.exists() else None
    ds, split = TESTSET_SPLITS[testset]
    tr = params.get("train") or {}
    prep = params.get("prepare") or {}
    scale = int(summary.get("scale") or parse_run_name(run)[1])
    return {
        "data": f"{testset}: {n} faces ({ds} {split}), dlib-aligned 128x128 (margin {prep.get('margin')}), "
                f"trained on {tr.get('train_set', 'celeba:train')}"
                + (f" (first {tr['max_train_images']})" if tr.get("max_train_images") else ""),
        "testset": testset, "n_images": n,
        "degradation": degradation_text(params, scale),
        "scale": scale, "crop_border": crop_border, "color": "y_bt601 (PSNR/SSIM); VIF on Y", "quantized": "uint8",
        "parser": parser,
        **training_record(summary),
        **dict(extra or {}),
    }


def degradation_text(params: Mapping, scale: int) -> str:
    """The protocol's description of the LR degradation (params ``degrade`` section)."""
    deg = params.get("degrade") or {}
    return (f"MATLAB imresize bicubic x{scale} (antialiased, a=-0.5, boundary {deg.get('boundary', 'symmetric')}, "
            f"round between passes {deg.get('round_between_passes', True)})")


def training_record(summary: Mapping) -> dict:
    """``budget`` and ``params_M`` of the protocol, from a run's run.json content."""
    return {"budget": {"iters": summary.get("iterations"), "batch": summary.get("batch_size"),
                       "train_time_s": summary.get("train_time_s"),
                       "device": summary.get("device_name") or summary.get("device")},
            "params_M": summary.get("params_M")}


def metric_settings(ev: Mapping) -> tuple[list, int, bool]:
    """``(metrics, crop_border, offline)`` of the params ``evaluate`` section, with the stage's defaults."""
    metrics = list(ev.get("metrics") or ["psnr", "ssim", "vif"])
    return metrics, int(ev.get("crop_border", 0)), bool(ev.get("offline", True))


def score_sr(predictor, ds, ev: Mapping, device: str = "cpu", sr_dir: Path | None = None, progress: bool = True,
             max_saved: int | None = None):
    """Super-resolve every face of ``ds`` and score it against the dataset's HR with the
    ``evaluate`` section's metrics; SR saved as ``sr_dir/{dataset}/{name}.png`` when ``sr_dir``
    (the first ``max_saved`` faces in the data set's order when given: every face is scored).
    Returns ``(per_image, aggregate, missing, metric_info, sr_uint8 (N,H,W,3))``."""
    metrics, crop, offline = metric_settings(ev)
    maps, names, dsets = predict(predictor, ds, int(ev.get("batch_size", 16)), device, ("sr",), progress)
    sr = maps["sr"].clamp(0, 1)
    hr = torch.stack([ds[i]["hr"] for i in range(len(ds))])
    per, agg, missing = evaluate_images(sr, hr, metrics, crop_border=crop, names=names, offline=offline,
                                        device=device, lpips_weights=ev.get("lpips_weights"), progress=progress)
    per.insert(1, "dataset", dsets)
    info = describe_metrics(metrics, crop_border=crop, offline=offline)
    sr8 = to_uint8(sr)
    if sr_dir is not None:
        for img, n, d in list(zip(sr8, names, dsets))[:max_saved]:
            save_image(Path(sr_dir) / d / f"{n}.png", img)
    return per, agg, missing, info, sr8


def psnr_of(predictor, ds, ev: Mapping, device: str = "cpu", inputs=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean PSNR, SR (N,3,H,W))`` of ``predictor`` on ``ds`` under the protocol's PSNR
    (``evaluate.crop_border``); ``inputs``: batches to use instead of the dataset's LR."""
    _, crop, _ = metric_settings(ev)
    if inputs is None:
        sr = predict(predictor, ds, int(ev.get("batch_size", 16)), device, ("sr",), progress=False)[0]["sr"]
    else:
        sr = torch.cat([predictor.maps({k: v.to(device) for k, v in b.items()})["sr"].float().cpu() for b in inputs])
    sr = sr.clamp(0, 1)
    hr = torch.stack([ds[i]["hr"] for i in range(len(ds))])
    per, _, _ = evaluate_images(sr, hr, ["psnr"], crop_border=crop, progress=False)
    return float(per["psnr"].mean()), sr


def pil_lr_batches(ds, scale: int, batch_size: int = 16) -> list[dict]:
    """The test faces' ``lr`` / ``lr_up`` made by PIL bicubic (:func:`fsrlib.data.degrade.pil_degrade`)."""
    items = []
    for i in range(len(ds)):
        hr = to_uint8(ds[i]["hr"][None])[0]
        lr, lr_up = pil_degrade(hr, scale)
        items.append({"lr": to_tensor(lr), "lr_up": to_tensor(lr_up)})
    return [{k: torch.stack([it[k] for it in items[j:j + batch_size]]) for k in ("lr", "lr_up")}
            for j in range(0, len(items), batch_size)]


def score_pil_lr(predictor, ds, ev: Mapping, scale: int, dest: Path, device: str = "cpu") -> dict:
    """SR of PIL-bicubic LR: saved as ``dest/sr_pil/{dataset}/{name}.png``; returns its PSNR."""
    p, sr = psnr_of(predictor, ds, ev, device, pil_lr_batches(ds, scale, int(ev.get("batch_size", 16))))
    for img, (d, n) in zip(to_uint8(sr), zip(ds.df["dataset"], ds.df["name"])):
        save_image(dest / "sr_pil" / d / f"{n}.png", img)
    return {"lr": "PIL bicubic (Image.resize BICUBIC) 128 -> 128/scale, lr_up PIL bicubic back to 128",
            "n_images": len(ds), "psnr": p, "sr_dir": "sr_pil"}


def test_pick(run: str, runs_root: Path, ds, ev: Mapping, testset: str, device: str = "cpu") -> dict | None:
    """What picking the snapshot with the best test-set PSNR would have added to the one the
    run selected on validation (run.json ``selected_iter``): ``None`` with fewer than 2 snapshots."""
    snaps = sorted((runs_root / run / "snapshots").glob("iter_*.pt"))
    summary = json.loads((runs_root / run / "run.json").read_text())
    if len(snaps) < 2 or summary.get("selected_iter") is None:
        return None
    iters = [int(p.stem.split("_")[1]) for p in snaps]
    test = [psnr_of(RunPredictor.from_run(p, runs_root, device), ds, ev, device)[0] for p in snaps]
    val = summary.get("val_history") or {}
    sel = int(summary["selected_iter"])
    at_sel = test[iters.index(sel)]
    best = max(range(len(test)), key=lambda i: (test[i], iters[i]))
    return {"testset": testset, "metric": "psnr", "iters": iters, "val_psnr": [val.get(str(i)) for i in iters],
            "test_psnr": test, "selected_iter": sel, "selected_by": summary.get("checkpoint_selection"),
            "test_at_selected": at_sel, "test_best": test[best], "test_best_iter": iters[best],
            "bias_db": test[best] - at_sel}


def run_testsets(ev: Mapping, run: str) -> list[str]:
    """The test sets of a run: ``evaluate.testsets``, only ``testsets_seed_copies`` for a
    ``<run>-seed<k>`` copy (its run, seed 0, has them all), and ``testsets_by_run`` (test set ->
    the run keys it is for; absent = every run)."""
    sets = list(ev.get("testsets") or ["helen50"])
    tag = parse_run_name(run)[2]
    if tag and tag.startswith("seed") and ev.get("testsets_seed_copies") is not None:
        sets = [t for t in sets if t in ev["testsets_seed_copies"]]
    only = ev.get("testsets_by_run") or {}
    return [t for t in sets if t not in only or run_key(run) in only[t]]


def parsing_accuracy(pred: torch.Tensor, target: torch.Tensor, thr: float = 0.5) -> torch.Tensor:
    """Per-image pixel accuracy of binarised maps (FishFSRNet Table IV; the paper does not
    define its metric: spec 001 section 6.3's guess, at LR resolution, channel 0)."""
    p = pred[:, :1] > thr
    t = target[:, :1] > thr
    return (p == t).float().mean((1, 2, 3))


def evaluate_run(params_path: str | Path, run: str, testsets: Sequence[str] | None = None, device: str | None = None,
                 data_root: str | Path = "data", results_root: str | Path = "results", progress: bool = True) -> dict:
    """Evaluate one trained run on the test sets of ``evaluate.testsets``; returns
    ``{testset: metrics.json content}``."""
    params = load_and_validate(params_path)
    ev = params.get("evaluate") or {}
    tr = params.get("train") or {}
    runs_root, data_root, results_root = Path(tr.get("runs_root", "runs")), Path(data_root), Path(results_root)
    device = resolve_device(device or ev.get("device"))
    torch.set_num_threads(int(tr.get("threads") or torch.get_num_threads()))
    predictor = RunPredictor.from_run(run, runs_root, device)
    model = predictor.model
    scale = int(model.scale)
    is_parser = not model.outputs_sr
    keys = {"hr", "lr", input_key(model), "name", "dataset"}
    if is_parser:
        keys |= {"skin_lr"}
    _, crop, _ = metric_settings(ev)
    out: dict[str, Any] = {}
    for ts in testsets or run_testsets(ev, run):
        ds_name, split = TESTSET_SPLITS[ts]
        ds = FaceSRDataset(root=data_root, dataset=ds_name, split=split, scale=scale,
                           keys=tuple(sorted(keys - {"name", "dataset"})), limit=ev.get("max_images"))
        dest = results_root / run / ts
        if is_parser:
            maps, names, dsets = predict(predictor, ds, int(ev.get("batch_size", 16)), device, ("parsing",), progress)
            target = torch.stack([ds[i]["skin_lr"] for i in range(len(ds))])
            acc = parsing_accuracy(maps["parsing"].clamp(0, 1), target)
            per = pd.DataFrame({"name": names, "dataset": dsets, "parsing_acc": acc.numpy()})
            agg, missing, info = {"parsing_acc": float(acc.mean())}, {}, {
                "parsing_acc": {"higher_is_better": True, "range": [0, 1],
                                "convention": "pixel accuracy of the binarised (0.5) skin map at LR size "
                                              "vs the parser's"}}
        else:
            save = ev.get("save_images", True)  # true | false | N: the first N faces of each test set
            per, agg, missing, info, _ = score_sr(predictor, ds, ev, device, dest / "sr" if save else None, progress,
                                                  max_saved=None if save is True else int(save))
            names = list(per["name"])
        extra = {}
        if not is_parser and ts in (ev.get("pil_lr_testsets") or []):
            extra["pil_lr"] = score_pil_lr(predictor, ds, ev, scale, dest, device)
        if not is_parser and ts == ev.get("test_pick"):
            pick = test_pick(run, runs_root, ds, ev, ts, device)
            if pick is not None:
                extra["test_pick"] = pick
        write_csv(dest / "per_image.csv", per)
        res = {"run": run, "method": run_key(run), "scale": scale, "testset": ts, "n_images": len(names),
               "metrics": agg, "missing": missing, "metric_info": info,
               # what the model declares it produces (FSRModel.outputs_sr / maps): the downstream stage reads it
               "outputs_sr": bool(model.outputs_sr), "maps": list(model.maps),
               "protocol": protocol(params, run, ts, len(names), crop, runs_root, data_root), **extra}
        write_json(dest / "metrics.json", res)
        out[ts] = res
    return out


def write_run_summary(run: str, res: Mapping[str, Mapping], out_root: str | Path = "metrics") -> Path:
    """``metrics/{run}.json``: ``{testset: {metric: value}}``, what ``dvc metrics show`` and
    ``dvc exp show`` compare (the full records stay in results/)."""
    return write_json(Path(out_root) / f"{run}.json", {ts: r["metrics"] for ts, r in res.items()})


def show_examples(run: str, testset: str, n: int = 6, results_root: str | Path = "results",
                  data_root: str | Path = "data"):
    """A figure: rows = LR (nearest-upscaled) | SR | HR | |SR - HR| for ``n`` faces."""
    per = pd.read_csv(Path(results_root) / run / testset / "per_image.csv", dtype={"name": str})
    scale = parse_run_name(run)[1]
    rows = per.head(n)
    fig, axes = plt.subplots(len(rows), 4, figsize=(8, 2 * len(rows)), squeeze=False)
    for i, r in enumerate(rows.itertuples()):
        hr = np.asarray(Image.open(Path(data_root) / "faces" / r.dataset / f"{r.name}.png"))
        lr = np.asarray(Image.open(Path(data_root) / "lr" / f"x{scale}" / r.dataset / f"{r.name}.png"))
        srp = Path(results_root) / run / testset / "sr" / r.dataset / f"{r.name}.png"
        sr = np.asarray(Image.open(srp)) if srp.exists() else np.zeros_like(hr)
        err = np.abs(sr.astype(float) - hr.astype(float)).mean(2)
        title = f"{getattr(r, 'psnr', float('nan')):.2f} dB" if hasattr(r, "psnr") else ""
        for ax, img, t in zip(axes[i], (lr.repeat(scale, 0).repeat(scale, 1), sr, hr, err),
                              ("LR", f"SR {title}", "HR", "|SR-HR|")):
            ax.imshow(img, cmap="magma" if img.ndim == 2 else None)
            ax.set_title(t, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"{run} on {testset}")
    fig.tight_layout()
    return fig
