#!/usr/bin/env python
"""Training-step time of every demo run's model in fp32, bf16 autocast and bf16 autocast +
channels_last, side by side in one run, plus the full-size SPARNet (paper widths, batch 8,
128 px, L1 + Adam). Writes ``<out>/train_precision.md`` and ``.csv``.

Each row is the real trainer step (:class:`fsrlib.train.trainer.Trainer`: the run's recipe,
losses, optimiser; GAN runs include the discriminator step) on one fixed batch of the
prepared faces, so data loading is not timed. Chained runs start from random weights here
(``init_from`` dropped: it changes no timing); FishFSRNet's prior is the ground-truth
``skin_lr`` map (the frozen ParsingNet's forward is not timed). The ``loss`` columns give
the training loss after the timed steps (the same batch, the same initial weights) in each
mode: bf16 must stay finite and close to fp32.

    python benchmarks/train_precision.py                      # every trained demo run, ~5 min on 2 cores
    python benchmarks/train_precision.py --runs 'sparnet*' --steps 3 --no-full
    python benchmarks/train_precision.py --psnr sparnet-x8,edsr-x8   # + PSNR at equal steps, fp32 vs bf16+cl

``--psnr RUNS``: those runs trained at their full demo schedule twice, ``amp: false`` and
``amp: auto``, same seed, then scored on helen50 (the evaluate stage's PSNR), beside the
noise floor of their seeds (std of ``metrics/<run>[-seed<k>].json`` helen50 PSNR):
``<out>/train_precision_psnr.md``.
"""
from __future__ import annotations

import argparse
import copy
import csv
import datetime as _dt
import fnmatch
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import default_collate

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fsrlib.config import all_runs, load_and_validate, parse_run_name, run_config  # noqa: E402
from fsrlib.inference import input_key  # noqa: E402
from fsrlib.models import count_macs, count_params  # noqa: E402
from fsrlib.pipeline.train_stage import _has_no_weights, make_datasets, needed_keys  # noqa: E402
from fsrlib.registry import MODELS  # noqa: E402
from fsrlib.train.precision import cpu_flags, cpu_has_bf16  # noqa: E402
from fsrlib.train.trainer import Trainer, _to_device  # noqa: E402

MODES = {"fp32": (False, False), "bf16": ("bf16", False), "bf16+cl": ("bf16", True)}
COLUMNS = ["run", "model", "params", "MACs/face (G)", "batch",
           *[f"{m} step (ms)" for m in MODES], "speed-up bf16+cl", *[f"{m} loss" for m in MODES]]
FULL_SPARNET = {"method": "sparnet", "scale": 8, "run": "sparnet_full-x8", "iters": 10,
                "model": {"type": "sparnet"}, "losses": [{"type": "l1"}],
                "optim": {"type": "adam", "lr": 2e-4, "betas": [0.9, 0.99]}, "batch_size": 8}


def bench_cfg(cfg: dict) -> dict:
    c = copy.deepcopy(cfg)
    c.pop("init_from", None)
    if c.get("recipe") == "two_stage":
        c["recipe"] = "pixel"
        c.pop("prior_from", None)
        c["prior_gt"] = "skin_lr"
    c["ema"] = None
    return c


def time_modes(cfg: dict, ds, batch, steps: int, warmup: int, runs_root: Path) -> dict[str, tuple[float, float]]:
    """{mode: (median step ms, last loss)}: one trainer per mode from the same initial weights,
    their steps interleaved (mode A, B, C, A, B, C, ...) so that load from other processes
    falls on every mode alike."""
    trs, bs, times, logs = {}, {}, {m: [] for m in MODES}, {}
    for mode, (amp, cl) in MODES.items():
        trs[mode] = Trainer({**cfg, "amp": amp, "channels_last": cl}, ds, None, runs_root=runs_root,
                            device="cpu", progress=False, resume=False)
        bs[mode] = trs[mode]._augment(_to_device(batch, trs[mode].device, trs[mode].channels_last), 0)
    for i in range(warmup + steps):
        for mode, tr in trs.items():
            t0 = time.perf_counter()
            logs[mode] = tr.step_fn(tr, bs[mode])
            if i >= warmup:
                times[mode].append(time.perf_counter() - t0)
    return {m: (1000 * statistics.median(times[m]), float(logs[m]["loss"])) for m in MODES}


def psnr_at_equal_steps(params: dict, runs: list[str], data: Path, out: Path) -> list[dict]:
    """Each run trained with ``amp: false`` and ``amp: auto`` (same seed, full schedule), its
    helen50 PSNR under the evaluate stage's protocol, and its seeds' std from ``metrics/``."""
    import json
    import tempfile

    from fsrlib.data.datasets import FaceSRDataset
    from fsrlib.inference import RunPredictor
    from fsrlib.pipeline.evaluate import psnr_of

    ev = params.get("evaluate") or {}
    rows = []
    for run in runs:
        cfg = run_config(params, run)
        ds, val = make_datasets(params, cfg, needed_keys(cfg), data)
        r = {"run": run, "iters": cfg["iters"], "batch": cfg["batch_size"]}
        with tempfile.TemporaryDirectory() as tmp:
            for mode, amp in (("fp32", False), ("bf16+cl (auto)", "auto")):
                t0 = time.perf_counter()
                Trainer({**cfg, "amp": amp}, ds, val, runs_root=Path(tmp) / mode, device="cpu", progress=False).fit()
                pred = RunPredictor.from_run(run, Path(tmp) / mode)
                test = FaceSRDataset(root=data, dataset="helen", split="helen50", scale=cfg["scale"],
                                     keys=("hr", input_key(pred.model)))
                r[f"{mode} PSNR"] = psnr_of(pred, test, ev)[0]
                r[f"{mode} train (s)"] = time.perf_counter() - t0
        seeds = []
        for f in sorted(Path("metrics").glob(f"{run}*.json")):
            if f.stem == run or parse_run_name(f.stem)[2].startswith("seed"):
                seeds.append(json.loads(f.read_text())["helen50"]["psnr"])
        r["difference (dB)"] = r["bf16+cl (auto) PSNR"] - r["fp32 PSNR"]
        r["seed std (dB)"] = statistics.stdev(seeds) if len(seeds) > 1 else float("nan")
        r["n seeds"] = len(seeds)
        rows.append(r)
        print(r, flush=True)
    cols = list(rows[0]) if rows else []
    lines = ["# PSNR at equal steps: fp32 vs bf16 autocast + channels_last (amp: auto)", "",
             f"- date (UTC): {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M')}; torch "
             f"{torch.__version__}, {torch.get_num_threads()} threads", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()) + " |"
              for r in rows]
    lines += ["", "Each run trained twice at its demo schedule (same seed, data order and initial weights), "
              "helen50 PSNR by the evaluate stage's code; `seed std`: the standard deviation of its seeds' "
              "helen50 PSNR (metrics/), the noise floor a precision change has to stay inside."]
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_precision_psnr.md").write_text("\n".join(lines) + "\n")
    return rows


def write(rows: list[dict], out: Path, header: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train_precision.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    lines = ["# Training step: fp32 vs bf16 autocast vs bf16 autocast + channels_last", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()] + [""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS) + " |")
    lines += ["", "Median over the timed steps of one trainer step (forward, losses, backward, optimiser; GAN: "
              "G and D steps) on one fixed batch of prepared CelebA faces; `loss` = training loss at the last "
              "timed step from the same initial weights. `amp: auto` (the trainer's default) = bf16+cl on this "
              "CPU when it has AVX512-BF16/AMX, fp32 otherwise. Timings on a shared 2-core machine are upper "
              "bounds (other processes compete for the cores)."]
    (out / "train_precision.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--runs", default="*", help="comma-separated fnmatch patterns on run names")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-full", action="store_true", help="skip the full-size SPARNet row")
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default="reports/benchmarks")
    ap.add_argument("--psnr", default="", help="comma-separated runs: train fp32 and bf16+cl, compare helen50 PSNR")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    params = load_and_validate(a.params)
    if a.psnr:
        return psnr_at_equal_steps(params, a.psnr.split(","), Path(a.data), Path(a.out))
    pats = a.runs.split(",")
    names = [n for n in all_runs(params) if any(fnmatch.fnmatch(n, p) for p in pats)
             and not parse_run_name(n)[2].startswith("seed")]   # a seed copy times the same model
    cfgs = []
    for n in names:
        cfg = run_config(params, n)
        if not _has_no_weights(cfg):
            cfgs.append(bench_cfg(cfg))
    if not a.no_full:
        cfgs.append(FULL_SPARNET)
    model = ""
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    header = {"date (UTC)": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
              "CPU": f"{model} ({os.cpu_count()} cores visible), bf16 flags: "
                     f"{sorted(f for f in cpu_flags() if 'bf16' in f) or 'none'}",
              "torch": f"{torch.__version__}, {a.threads} threads",
              "steps": f"{a.warmup} warm-up + {a.steps} timed per mode"}
    if not cpu_has_bf16():
        header["note"] = "this CPU has no native bf16: bf16 columns are emulated (amp: auto picks fp32 here)"
    rows: list[dict] = []
    tmp = Path(a.out) / ".train_precision_runs"  # the trainer writes nothing before fit(); never created
    for cfg in cfgs:
        keys = needed_keys(cfg)
        ds, _ = make_datasets(params, {**cfg, "run": "sparnet-x8"} if cfg is FULL_SPARNET else cfg, keys, a.data)
        batch = default_collate([ds[i] for i in range(cfg["batch_size"])])
        batch = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        m = MODELS.build({"scale": cfg["scale"], **cfg["model"]})
        x = batch[input_key(m)][:1]
        try:
            macs = count_macs(m, x) / 1e9
        except Exception:  # noqa: BLE001  (a model needing a prior)
            macs = float("nan")
        r = {"run": cfg["run"], "model": cfg["model"]["type"], "params": count_params(m), "MACs/face (G)": macs,
             "batch": cfg["batch_size"]}
        steps = max(2, a.steps // 2) if cfg is FULL_SPARNET else a.steps
        res = time_modes(cfg, ds, batch, steps, 1 if cfg is FULL_SPARNET else a.warmup, tmp)
        for mode, (ms, loss) in res.items():
            r[f"{mode} step (ms)"], r[f"{mode} loss"] = ms, loss
        r["speed-up bf16+cl"] = r["fp32 step (ms)"] / r["bf16+cl step (ms)"]
        rows.append(r)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
        write(rows, Path(a.out), header)
    return rows


if __name__ == "__main__":
    main()
