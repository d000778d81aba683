"""Every run of the paper profile takes 2 training steps at its paper size, then is reloaded
and scored on 4 faces; the table says what a whole reproduction would cost.

    OMP_NUM_THREADS=1 python benchmarks/paper_smoke.py [--profile paper] [--runs a-x8,b-x8]

For each run of ``params.yaml + params/<profile>.yaml`` (fsrlib.profiles), in params order
(chained runs after the runs they start from), one child process:

1. trains it with the pipeline's own code (``fsrlib.pipeline.train_stage.train_run``) on a
   smoke copy of the effective params: the paper's model, losses, recipe and input size;
   ``iters: 2`` at batch ``--batch`` (1 for SPARNetHD at 512 px and W-Net), 4 training faces
   (LR made online from the HR with the degrade stage's MATLAB imresize: the demo data has no x16),
   a checkpoint at step 2 and the final ``model.pt``;
2. reloads the run from its ``model.pt`` (``fsrlib.inference.RunPredictor``) and scores 4
   faces: helen50 (PSNR / SSIM, the evaluate stage's ``evaluate_run``), or for SPARNetHD the
   512-px CelebAMask-HQ test faces with the blind degradation (``fsrlib.data.hr_faces``:
   ``dataset.hr_size: 512``; FFHQ with ``data.ffhq: true`` on a connected machine);
3. records seconds per step (train time / 2), the child's peak RSS, and the status.

Estimated wall time of the paper schedule: ``iters x s/step x paper batch / smoke batch``
on this CPU (upper bound: the machine is shared), and on one GPU from the measured
``reports/benchmarks/models_cuda.csv`` row of the model (train step at batch 8, fp32, G only:
a GAN's D and losses and data loading are not in it, so GAN estimates are lower bounds).
The VGG19 ImageNet weights are not on an offline machine: the perceptual terms then use a
random VGG19 of the same layout (same cost; noted in the row).

Writes ``reports/benchmarks/paper_smoke.md`` and ``.csv``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BIG = {"sparnethd", "wnet"}  # batch 1 on the CPU (512 px G + 3 D; W-Net's 1024-px W-stage)


def smoke_params(params: dict, batch: int) -> dict:
    """The effective params with the smoke's budget: 2 steps, small batch, 4 faces."""
    import copy

    p = copy.deepcopy(params)
    data = p.setdefault("data", {})
    data["mirror"] = str((ROOT / (data.get("mirror") or "../shared/datasets")).resolve())
    tr = p.setdefault("train", {})
    tr.update(max_train_images=4, max_val_images=2, threads=1, progress=False, device="cpu")
    for name, m in (p.get("methods") or {}).items():
        if m.get("iters", 0) > 1:
            b = 1 if m.get("model", {}).get("type") in BIG else batch
            m.update(iters=2, batch_size=min(b, m.get("batch_size", 16)), val_every=2, ckpt_every=2, log_every=1,
                     num_workers=0)
    ev = p.setdefault("evaluate", {})
    ev.update(testsets=["helen50"], metrics=["psnr", "ssim"], max_images=4, save_images=False, offline=True,
              device="cpu", batch_size=4)
    return p


def child(a) -> int:
    """One run: train 2 steps, reload, score 4 faces; prints one JSON line."""
    import torch
    import yaml

    from fsrlib.config import all_runs, dataset_config, run_config
    from fsrlib.losses.vgg import make_vgg19_features, vgg_override
    from fsrlib.pipeline.train_stage import train_run

    torch.set_num_threads(1)
    from fsrlib.data import datasets as _ds

    _init = _ds.FaceSRDataset.__init__

    def online_init(self, *args, **kw):  # LR from the HR with the degrade stage's code: the demo data
        kw["lr_source"] = "online"        # has no x16 LR; same numbers as the stage's files (tested)
        _init(self, *args, **kw)

    _ds.FaceSRDataset.__init__ = online_init
    spec = json.loads(Path(a.spec).read_text())
    params = spec["params"]
    meta = spec["meta"]
    run = a.one
    work = Path(a.work)
    row = {"run": run, "status": "failed", "note": ""}
    t0 = time.perf_counter()
    try:
        cfg = run_config(params, run)
        method = all_runs(params)[run]["method"]
        row.update(method=method, model=cfg["model"].get("type"), scale=cfg["scale"],
                   smoke_batch=cfg.get("batch_size"), paper_batch=meta[method]["batch"],
                   paper_iters=meta[method]["iters"])
        dcfg = dataset_config(params, run)
        row["hr_px"] = int(dcfg.get("hr_size", 128))
        ppath = work / "params.yaml"
        used = []

        def random_vgg():  # any loss that builds VGG19 (perceptual, W-Net key regions) gets this one
            used.append(1)
            return make_vgg19_features()

        ctx = None if a.vgg_weights else vgg_override(random_vgg)
        with open(ppath, "w") as f:
            yaml.safe_dump(params, f, sort_keys=False)
        os.chdir(work)
        if ctx:
            with ctx:
                summary = train_run(ppath, run, device="cpu", data_root=work / "data", progress=False)
        else:
            summary = train_run(ppath, run, device="cpu", data_root=work / "data", progress=False)
        if used:
            row["note"] = "random VGG19 (ImageNet weights offline)"
        row["params_M"] = summary.get("params_M")
        it = summary.get("iterations") or 0
        row["iterations"] = it
        row["s_per_step"] = round(summary["train_time_s"] / it, 3) if it else None
        ck = sorted((work / "runs" / run / "checkpoints").glob("*")) if (work / "runs" / run).exists() else []
        row["checkpoint"] = "yes" if ck or not it else "no"
        row.update(score(params, run, work, row["hr_px"]))
        row["status"] = "ok" if row["checkpoint"] == "yes" else "failed"
    except Exception as e:  # noqa: BLE001 - a row per failure, the table shows why
        row["note"] = (row["note"] + "; " if row["note"] else "") + f"{type(e).__name__}: {str(e)[:300]}"
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    row["peak_rss_MiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    print("ROW " + json.dumps(row))
    return 0


def score(params, run, work, hr_px):
    """Reload the run from its model.pt and score 4 faces."""
    import torch

    if hr_px == 128:
        from fsrlib.pipeline.evaluate import evaluate_run

        res = evaluate_run(work / "params.yaml", run, testsets=["helen50"], device="cpu", data_root=work / "data",
                           results_root=work / "results", progress=False)["helen50"]
        m = res["metrics"]
        return {"eval_n": res["n_images"], "eval_set": "helen50",
                "psnr": round(m["psnr"], 3) if m.get("psnr") is not None else None,
                "ssim": round(m["ssim"], 4) if m.get("ssim") is not None else None,
                "parsing_acc": m.get("parsing_acc")}
    from fsrlib.config import dataset_config
    from fsrlib.data.datasets import FaceSRDataset
    from fsrlib.data.hr_faces import hr_faces_root
    from fsrlib.inference import RunPredictor
    from fsrlib.metrics.scoring import evaluate_images
    from fsrlib.pipeline.train_stage import hr_source

    dcfg = dataset_config(params, run)
    src = hr_source(params, dcfg)
    pred = RunPredictor.from_run(run, work / "runs", "cpu")
    ds = FaceSRDataset(root=hr_faces_root(work / "data", hr_px), dataset=src, split="test", scale=pred.model.scale,
                       keys=("hr", "lr", "lr_up"), limit=4, hr_size=hr_px,
                       degradation=dcfg.get("degradation", "bicubic"), lr_source="online")
    srs, hrs = [], []
    with torch.no_grad():
        for i in range(len(ds)):
            b = {k: (v[None] if torch.is_tensor(v) else [v]) for k, v in ds[i].items()}
            srs.append(pred(b).clamp(0, 1))
            hrs.append(b["hr"])
    _, agg, _ = evaluate_images(torch.cat(srs), torch.cat(hrs), ["psnr", "ssim"], progress=False)
    return {"eval_n": len(ds), "eval_set": f"{src}_test ({hr_px} px, {dcfg.get('degradation')})",
            "psnr": round(agg["psnr"], 3), "ssim": round(agg["ssim"], 4)}


# ====================================================================== parent
def gpu_step_ms(model_type: str) -> float | None:
    """The measured CUDA train step (ms, batch 8) of a model at its paper config."""
    import pandas as pd

    p = ROOT / "reports" / "benchmarks" / "models_cuda.csv"
    if not p.exists():
        return None
    df = pd.read_csv(p)
    hit = df[(df["model"] == model_type) & (df["config"] == "paper")]
    hit = hit[hit["train step (ms)"].notna()] if "train step (ms)" in hit else hit.iloc[0:0]
    if hit.empty:
        return None
    r = hit.iloc[0]
    return float(r["train step (ms)"]) / float(r.get("train batch", 8) or 8)  # per image


def write_tables(rows, a, t_all, n_planned):
    import pandas as pd

    from fsrlib.io import write_csv, write_text

    cols = ["run", "method", "model", "scale", "hr_px", "params_M", "smoke_batch", "s_per_step", "peak_rss_MiB",
            "checkpoint", "eval_set", "eval_n", "psnr", "ssim", "status", "paper_iters", "paper_batch",
            "est_cpu_s", "est_gpu_s", "wall_s", "note"]
    df = pd.DataFrame(rows).reindex(columns=cols)
    out = Path(a.out)
    write_csv(out / "paper_smoke.csv", df)
    n_ok = int((df["status"] == "ok").sum())
    lines = [
        "# Paper-profile smoke: every run, 2 steps at paper size", "",
        f"Written by `benchmarks/paper_smoke.py` (profile `{a.profile}`: params.yaml + params/{a.profile}.yaml). "
        f"{n_ok}/{len(df)} runs ok ({len(df)} of {n_planned} run so far). "
        f"Date (UTC) {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}; "
        f"host: {os.cpu_count()} logical CPU cores visible, torch threads 1 (OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}), load average at end "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; whole script {time.perf_counter() - t_all:.0f} s.", "",
        "Each run: 2 training steps of the paper's model, losses and recipe at the paper's input size (batch "
        "`smoke_batch`, 4 training faces), checkpoint, reload from `model.pt`, 4 faces scored (PSNR/SSIM after 2 "
        "steps mean nothing: the row shows the path runs). **Timings are upper bounds**: a 2-core machine shared "
        "with 5 other processes. `est_cpu` = paper iterations x s/step x paper batch / smoke batch (this CPU); "
        "`est_gpu` = paper iterations x paper batch x the per-image train step of the model's "
        "`reports/benchmarks/models_cuda.csv` row (fp32, G only: lower bound for GANs; blank: no CUDA row yet, "
        "`benchmarks/gpu.sh` measures them).", "",
        "| run | model | px | params (M) | batch | s/step | peak RSS (MiB) | ckpt | scored on | PSNR | status | "
        "paper iters x batch | est. CPU | est. GPU | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in df.iterrows():
        def v(k, f="{}"):
            x = r.get(k)
            return "" if x is None or (isinstance(x, float) and pd.isna(x)) else f.format(x)
        lines.append(f"| {r['run']} | {v('model')} | {v('hr_px', '{:.0f}')} | {v('params_M')} | "
                     f"{v('smoke_batch', '{:.0f}')} | {v('s_per_step')} | {v('peak_rss_MiB', '{:.0f}')} | "
                     f"{v('checkpoint')} | {v('eval_set')} ({v('eval_n', '{:.0f}')}) | {v('psnr', '{:.2f}')} | "
                     f"**{r['status']}** | {v('paper_iters', '{:.0f}')} x {v('paper_batch', '{:.0f}')} | "
                     f"{fmt_h(r.get('est_cpu_s') if pd.notna(r.get('est_cpu_s')) else None)} | "
                     f"{fmt_h(r.get('est_gpu_s') if pd.notna(r.get('est_gpu_s')) else None)} | {v('note')} |")
    write_text(out / "paper_smoke.md", "\n".join(lines) + "\n")
    return n_ok, df


def fmt_h(s):
    if s is None:
        return ""
    return f"{s / 3600:.1f} h" if s < 86400 * 3 else f"{s / 86400:.0f} d"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--runs", default=None, help="comma-separated subset (default: every run)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--work", default="/tmp/fsr_paper_smoke")
    ap.add_argument("--data", default=str(ROOT / "data"))
    ap.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    ap.add_argument("--timeout-s", type=int, default=1800)
    ap.add_argument("--vgg-weights", action="store_true", help="use the real VGG19 weights (connected machine)")
    ap.add_argument("--merge", default=None, help="comma-separated paper_smoke.csv files of reruns: their rows "
                    "replace those of --out's table (no run)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        return child(a)

    from fsrlib.config import all_runs, validate_params
    from fsrlib.profiles import load_profile
    from fsrlib.train.schema import validate_runs

    params = load_profile(a.profile, a.params)
    validate_params(params)
    validate_runs(params)
    if a.merge:
        import pandas as pd

        order = list(all_runs(params))
        rows = {r["run"]: r for r in pd.read_csv(Path(a.out) / "paper_smoke.csv").to_dict("records")}
        for f in a.merge.split(","):
            rows.update({r["run"]: r for r in pd.read_csv(f).to_dict("records")})
        merged = [{k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in rows[r].items()}
                  for r in order if r in rows]
        n_ok, df = write_tables(merged, a, time.perf_counter(), len(order))
        print(f"merged: {n_ok}/{len(df)} ok")
        return 0
    meta = {m: {"iters": v.get("iters"), "batch": v.get("batch_size", 16)} for m, v in params["methods"].items()}
    sp = smoke_params(params, a.batch)
    work = Path(a.work)
    (work / "data").mkdir(parents=True, exist_ok=True)
    for d in ("raw", "index", "faces", "lr", "parsing"):
        link = work / "data" / d
        if not link.exists():
            link.symlink_to(Path(a.data).resolve() / d)
    if not (work / "data" / "hr512" / "faces" / "faces.csv").exists():  # SPARNetHD: 4 faces per split suffice
        from fsrlib.data.hr_faces import prepare_hr_faces

        src = "ffhq" if (params.get("data") or {}).get("ffhq") else "celebamask_hq"
        prepare_hr_faces(work / "data" / "hr512", 512, src, mirror=sp["data"]["mirror"], raw=work / "data" / "raw",
                         limit=4)
    spec = work / "spec.json"
    spec.write_text(json.dumps({"params": sp, "meta": meta}, default=str))
    runs = list(all_runs(params)) if not a.runs else a.runs.split(",")
    rows, t_all = [], time.perf_counter()
    csv = Path(a.out) / "paper_smoke.csv"
    if a.runs and csv.exists():  # a subset: its rows replace theirs in the existing table
        import pandas as pd

        old = pd.read_csv(csv).to_dict("records")
        keep = {r["run"]: r for r in old if r["run"] not in runs}
        order = list(all_runs(params))
        rows = [keep[r] for r in order if r in keep]
    for run in runs:
        cmd = [sys.executable, __file__, "--one", run, "--spec", str(spec), "--work", str(work)]
        if a.vgg_weights:
            cmd.append("--vgg-weights")
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout_s,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("ROW ")]
            row = json.loads(line[-1][4:]) if line else {"run": run, "status": "failed",
                                                         "note": out.stderr.strip().splitlines()[-1][:300]
                                                         if out.stderr.strip() else f"exit {out.returncode}"}
        except subprocess.TimeoutExpired:
            row = {"run": run, "status": "failed", "note": f"timeout {a.timeout_s} s"}
        s = row.get("s_per_step")
        if s and row.get("paper_iters") and row.get("smoke_batch"):
            row["est_cpu_s"] = row["paper_iters"] * s * row["paper_batch"] / row["smoke_batch"]
        g = gpu_step_ms(row.get("model") or "")
        if g and row.get("paper_iters"):
            row["est_gpu_s"] = row["paper_iters"] * row["paper_batch"] * g / 1000
        rows.append(row)
        if a.runs:
            order = list(all_runs(params))
            rows.sort(key=lambda r: order.index(r["run"]) if r["run"] in order else len(order))
        print(f"{run}: {row['status']} {s} s/step {row.get('peak_rss_MiB')} MiB {row.get('note', '')}", flush=True)
        n_ok, df = write_tables(rows, a, t_all, len(all_runs(params)))  # after every row: survives a kill
    out = Path(a.out)
    print(f"wrote {out / 'paper_smoke.md'} ({n_ok}/{len(df)} ok)")
    return 0 if n_ok == len(df) else 1


if __name__ == "__main__":
    sys.exit(main())
