"""Train one run of the paper profile for as long as a GPU lease allows, then score it.

    python benchmarks/paper_profile_run.py --profile paper --run sparnet-x8 \\
        --data data --time-budget-s 120 --out reports/benchmarks/paper_run

Uses the same trainer, datasets and metric code as the pipeline. The LR inputs are made on the
fly from the HR faces with the same MATLAB-``imresize`` code as the degrade stage
(``lr_source="online"``), so only ``data/faces`` is needed (handy on a bare GPU machine). Training
stops cleanly after ``--time-budget-s`` (last validation, checkpoint and model.pt written) and the
curve (dvclive layout), run.json and the helen50 PSNR/SSIM are written to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from fsrlib.config import dataset_config, load_params, run_config, validate_params
    from fsrlib.data.datasets import FaceSRDataset
    from fsrlib.inference import RunPredictor
    from fsrlib.io import write_json
    from fsrlib.metrics.scoring import evaluate_images
    from fsrlib.pipeline.train_stage import needed_keys
    from fsrlib.profiles import load_profile
    from fsrlib.train.trainer import Trainer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--profile", default="paper", help="params/<profile>.yaml over --params (fsrlib.profiles)")
    ap.add_argument("--run", default="sparnet-x8")
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default="reports/benchmarks/paper_run")
    ap.add_argument("--time-budget-s", type=float, default=120.0)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--max-val-images", type=int, default=16)
    ap.add_argument("--amp", default=None, help="bf16 | fp16 | none (default: the run's)")
    ap.add_argument("--runs-root", default=None, help="default: <out>/runs (chained runs find their parents there)")
    ap.add_argument("--no-test", action="store_true", help="skip the helen50 scoring")
    a = ap.parse_args(argv)

    params = load_profile(a.profile, a.params) if a.profile else load_params(a.params)
    validate_params(params)
    cfg = run_config(params, a.run)
    cfg["num_workers"] = a.workers
    cfg["val"] = {**(cfg.get("val") or {}), "max_images": a.max_val_images}
    cfg["val_every"] = cfg["ckpt_every"] = 200
    if a.amp:
        cfg["amp"] = None if a.amp == "none" else a.amp
    dcfg = dataset_config(params, a.run)
    keys = tuple(sorted(needed_keys(cfg)))
    mk = lambda ds, split, aug, limit=None: FaceSRDataset(root=a.data, dataset=ds, split=split, scale=cfg["scale"],  # noqa: E731
                                                           keys=keys, augment=aug, limit=limit, lr_source="online",
                                                           degradation=dcfg.get("degradation", "bicubic"))
    if int(dcfg.get("hr_size", 128)) != 128:  # SPARNetHD at 512 px: the HR faces of fsrlib.data.hr_faces
        from fsrlib.pipeline.train_stage import make_datasets

        params["train"] = {**(params.get("train") or {}), "max_val_images": a.max_val_images}
        train_set, val_set = make_datasets(params, cfg, set(keys), a.data)
        a.no_test = True
    else:
        train_set, val_set = mk("celeba", "train", dcfg.get("augment")), mk("celeba", "val", None, a.max_val_images)
    out = Path(a.out)
    runs_root = Path(a.runs_root) if a.runs_root else out / "runs"
    t0 = time.perf_counter()

    def stop_when_out_of_time(tr, it):
        if time.perf_counter() - t0 > a.time_budget_s and tr.iters > it + 1:
            tr.iters = it + 1  # one more step, then the final validation + checkpoint + model.pt

    tr = Trainer(cfg, train_set, val_set, runs_root=runs_root, progress=False, callbacks=[stop_when_out_of_time])
    summary = tr.fit()

    if a.no_test:
        res = {"run": a.run, "profile": a.profile, "time_budget_s": a.time_budget_s, "train_images": len(train_set),
               "planned_iters": run_config(params, a.run)["iters"], "iterations": summary["iterations"],
               "batch_size": summary["batch_size"], "images_per_s": summary["images_per_s"], "amp": cfg.get("amp"),
               "peak_mem_MiB": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
               "device": summary["device_name"], "final_val": summary["final_val"], "torch": torch.__version__}
        write_json(out / "result.json", res)
        print(json.dumps(res, indent=1))
        return 0
    test = mk("helen", "helen50", None)
    pred = RunPredictor.from_run(a.run, runs_root, tr.device)
    from torch.utils.data import DataLoader

    srs, hrs = [], []
    with torch.no_grad():
        for b in DataLoader(test, batch_size=25):
            b = {k: (v.to(tr.device) if torch.is_tensor(v) else v) for k, v in b.items()}
            srs.append(pred(b).clamp(0, 1).cpu())
            hrs.append(b["hr"].cpu())
    _, agg, missing = evaluate_images(torch.cat(srs), torch.cat(hrs), ["psnr", "ssim"], progress=False)
    res = {"run": a.run, "params_file": a.params, "profile": a.profile, "time_budget_s": a.time_budget_s,
           "train_images": len(train_set), "planned_iters": run_config(params, a.run)["iters"],
           "iterations": summary["iterations"], "batch_size": summary["batch_size"],
           "images_per_s": summary["images_per_s"], "device": summary["device_name"], "amp": cfg.get("amp"),
           "peak_mem_MiB": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
           "helen50": agg, "missing": missing, "final_val": summary["final_val"], "torch": torch.__version__}
    write_json(out / "result.json", res)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
