"""Model cards: one Markdown page per run, in the manner of a model hub's card, generated.

Two pages from the same text (DVC: ``runs/<run>/`` is the train stage's output, so a later
stage cannot write there):

- ``runs/<run>/README.md``, written by the train stage (:func:`write_run_card`): what the
  network is (paper, model file, preset, parameters, MACs), how it was trained (profile,
  data, budget, seed, parser, deviations from the paper profile ``params/paper.yaml``) and
  how to load it; it links to
- ``reports/cards/<run>.md``, written by the report stage (:func:`write_report_cards`): the
  same, plus the run's metrics on each test set with their protocol.

``python -m fsrlib.report.cards`` writes the run cards of every ``runs/*/run.json`` again
(from run.json and params, no checkpoint needed).
"""
from __future__ import annotations

import argparse
import inspect
import json
import re
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch

from .. import models as _models  # noqa: F401  (registers the model zoo: a card names the model file)
from ..config import all_runs, load_and_validate, parse_run_name, run_config, validate_params
from ..io import write_text
from ..models.common import count_macs, count_params
from ..profiles import load_profile
from ..registry import MODELS
from .captions import ours_line, portable
from .vocabulary import METRIC_DECIMALS, METRIC_LABEL

__all__ = ["card_info", "config_complexity", "run_card", "write_run_card", "write_report_cards", "CARD_METRICS"]

CARD_METRICS = ("psnr", "ssim", "vif", "lpips", "fid", "identity_cos", "lmk_auc10", "parsing_acc")
PAPER_PROFILE = Path("params/paper.yaml")
MISSING = "–"


# =============================================================================== facts
def _model_source(mtype: str) -> dict:
    """The model file, class, paper (first line of the file's docstring) and spec of a model type."""
    try:
        cls = MODELS.get(mtype)
    except Exception:  # noqa: BLE001 - an unknown type: the card says so
        return {"file": MISSING, "class": MISSING, "paper": MISSING, "spec": ""}
    mod = inspect.getmodule(cls)
    doc = (mod.__doc__ or "").strip() if mod else ""
    first = re.split(r"\.\s", " ".join(doc.split("\n\n")[0].split()), maxsplit=1)[0].rstrip(".") if doc else ""
    spec = re.search(r"specs/(\d{3}_\w+\.md)", doc)
    file = f"fsrlib/models/{Path(mod.__file__).name}" if mod and getattr(mod, "__file__", None) else MISSING
    base = MODELS._resolve(mtype)[0]
    return {"file": file, "class": cls.__name__, "paper": first or MISSING, "base": base,
            "spec": f"../shared/specs/{spec.group(1)}" if spec else ""}


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, Mapping):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _deviations(cfg: Mapping | None, run: str, paper_params: Mapping | None) -> list[str]:
    """Keys where this run's config differs from the same run (else the same method) of the
    paper profile: ``key: ours (paper: value)``."""
    if cfg is None or not paper_params:
        return []
    pcfg = None
    if run in all_runs(paper_params):
        pcfg = run_config(paper_params, run)
    else:
        for r, spec in all_runs(paper_params).items():
            if spec.get("method") == cfg.get("method") and int(spec.get("scale", 0)) == int(cfg.get("scale", 0)):
                pcfg = run_config(paper_params, r)
                break
    if pcfg is None:
        return [f"no run of method {cfg.get('method')} ×{cfg.get('scale')} in the paper profile to compare with"]
    a, b = _flat(cfg), _flat(pcfg)
    skip = {"run", "init_from"}
    out = []
    for k in sorted(set(a) | set(b)):
        if k in skip or a.get(k) == b.get(k):
            continue
        out.append(f"`{k}`: {json.dumps(a.get(k), default=str)} (paper profile: {json.dumps(b.get(k), default=str)})")
    return out


def config_complexity(cfg: Mapping, params: Mapping | None = None, size: int = 128) -> dict:
    """Parameters and MACs of a run's architecture from its config alone (no checkpoint):
    built untrained, counted on the ``meta`` device on one ``size``-px face, the prior network
    of ``prior_from`` included. ``{}`` when it cannot be counted."""
    try:
        model = MODELS.build({"scale": cfg["scale"], **cfg["model"]}).eval()
        prior_model = None
        if cfg.get("prior_from") and params:
            pc = run_config(params, cfg["prior_from"])
            prior_model = MODELS.build({"scale": pc["scale"], **pc["model"]}).eval()
        s = int(cfg["scale"])
        up = model.expected_input_size() if getattr(model, "input_kind", "lr") == "upsampled" else size
        x = torch.rand(1, 3, size // s, size // s) if getattr(model, "input_kind", "lr") == "lr" else \
            torch.rand(1, 3, up, up)
        lr = torch.rand(1, 3, size // s, size // s)

        def fwd():
            prior = None
            if prior_model is not None:
                prior = prior_model.forward_maps(lr)[cfg.get("prior_key", "parsing")]
            return model.forward_maps(x, prior)

        macs = count_macs(fwd)
        n = count_params(model) + (count_params(prior_model) if prior_model is not None else 0)
        return {"params_M": n / 1e6, "macs_G": macs / 1e9}
    except Exception:  # noqa: BLE001 - e.g. a prior the config does not say how to make
        return {}


def card_info(run: str, params: Mapping | None, runs_root: str | Path = "runs", complexity: Mapping | None = None,
              parser: str | None = None, paper_params: Mapping | None = None, params_name: str = "params.yaml") -> dict:
    """Everything a card says about a run, from ``runs/<run>/run.json`` and params."""
    p = Path(runs_root) / run / "run.json"
    rj = json.loads(p.read_text()) if p.is_file() else {}
    cfg = run_config(params, run) if params and run in all_runs(params) else None
    mcfg = (cfg or {}).get("model") or {}
    mtype = str(mcfg.get("type", rj.get("method", MISSING)))
    cx = {**(config_complexity(cfg, params) if cfg else {}), **(rj.get("complexity") or {}), **(complexity or {})}
    tr = (params or {}).get("train") or {}
    it, bs, ws = rj.get("iterations"), rj.get("batch_size"), rj.get("world_size") or 1
    return {
        "run": run, "method": rj.get("method") or (cfg or {}).get("method") or parse_run_name(run)[0],
        "scale": rj.get("scale") or parse_run_name(run)[1],
        "model_type": mtype, "model_args": {k: v for k, v in mcfg.items() if k != "type"},
        **_model_source(mtype),
        "params_M": cx.get("params_M", rj.get("params_M")), "macs_G": cx.get("macs_G"),
        "profile": params_name, "train_set": tr.get("train_set", "celeba:train"),
        "val_set": tr.get("val_set", "celeba:val"), "max_train_images": tr.get("max_train_images"),
        "recipe": rj.get("recipe") or (cfg or {}).get("recipe", MISSING),
        "iterations": it, "batch": bs, "images_seen": it * bs * ws if isinstance(it, int) and isinstance(bs, int)
        else None, "train_time_s": rj.get("train_time_s"), "device": rj.get("device_name") or rj.get("device"),
        "seed": rj.get("seed", (cfg or {}).get("seed", 0) if cfg else MISSING),
        "lr": ((cfg or {}).get("optim") or {}).get("lr"),
        "losses": [f"{ls.get('type')} × {ls.get('weight', 1)}" for ls in ((cfg or {}).get("losses") or [])
                   if isinstance(ls, Mapping)],
        "parser": parser, "init_from": rj.get("init_from"), "prior_from": rj.get("prior_from"),
        "weights": rj.get("weights"), "note": rj.get("note"),
        "deviations": _deviations(cfg, run, paper_params),
    }


# =============================================================================== text
def _num(v, fmt: str, unit: str = "") -> str:
    return MISSING if v is None else f"{format(v, fmt)}{unit}"


def run_card(info: Mapping, metrics_md: list[str] | None = None, metrics_link: str | None = None) -> str:
    """The card's Markdown. ``metrics_md``: the metrics section's lines (report stage);
    ``metrics_link``: where they are (the train stage's card)."""
    i = info
    run = i["run"]
    L = [f"# {run}: {i['method']} ×{i['scale']}", "",
         "Generated (`fsrlib.report.cards`); do not edit by hand.", "",
         "## Model", "",
         "| | |", "|---|---|",
         f"| paper | {i['paper']} |",
         f"| model file | `{i['file']}` (`{i['class']}`) |",
         f"| preset | `{i['model_type']}`"
         + (f" (preset of `{i['base']}`)" if i.get("base") not in (None, i["model_type"]) else "") + " |",
         f"| arguments | {', '.join(f'{k}={v}' for k, v in i['model_args'].items()) or 'paper defaults'} |",
         f"| parameters | {_num(i['params_M'], '.4f', ' M')} |",
         f"| MACs (one 128-px face) | {_num(i['macs_G'], '.3f', ' G')} |"]
    if i.get("spec"):
        L.append(f"| spec | `{i['spec']}` |")
    L += ["", "## Training", "",
          f"- profile: `{i['profile']}`; recipe `{i['recipe']}`"
          + (f"; losses: {', '.join(i['losses'])}" if i["losses"] else "") + (f"; lr {i['lr']}" if i["lr"] else ""),
          f"- data: {i['train_set']}" + (f" (first {i['max_train_images']})" if i["max_train_images"] else "")
          + f", validation {i['val_set']}; HR 128×128 dlib-aligned; LR: MATLAB bicubic ×{i['scale']}",
          f"- budget: {_num(i['iterations'], 'd')} iterations × batch {_num(i['batch'], 'd')} = "
          f"{_num(i['images_seen'], 'd')} images seen; training time {_num(i['train_time_s'], '.1f', ' s')} on "
          f"{i['device'] or MISSING}",
          f"- seed: {i['seed']}; parser: {i['parser'] or 'not recorded'}"
          + (f"; initialised from `{portable(i['init_from'])}`" if i["init_from"] else "")
          + (f"; prior from `{portable(i['prior_from'])}`" if i["prior_from"] else "")]
    if i.get("note"):
        L.append(f"- note: {i['note']}")
    if i["deviations"]:
        L += ["- deviations from the paper profile (`params/paper.yaml` when the card was written):",
              *(f"  - {d}" for d in i["deviations"])]
    else:
        L.append("- deviations from the paper profile: none recorded")
    L += ["", "## Metrics", ""]
    if metrics_md is not None:
        L += metrics_md
    else:
        L.append(f"Per test set, with the protocol: [{metrics_link}]({metrics_link}) (written by the report stage)."
                 if metrics_link else "Not evaluated yet.")
    L += ["", "## How to use it", "",
          "```bash",
          f"fsr upscale photo.jpg --method {i['method']} --scale {i['scale']} --checkpoint runs/{run}/model.pt",
          f"fsr export {run} --onnx {run}.onnx",
          "```", "", "```python",
          "from fsrlib.inference import RunPredictor",
          f'pred = RunPredictor.from_run("{run}")          # runs/{run}/model.pt, prior network included',
          'sr = pred({"lr": lr, "lr_up": lr_up})            # NCHW float in [0, 1], as the dataset gives them',
          "```", ""]
    return "\n".join(L)


def write_run_card(run_dir: str | Path, info: Mapping) -> Path:
    """``runs/<run>/README.md`` (the train stage's card; metrics linked)."""
    run_dir = Path(run_dir)
    return write_text(run_dir / "README.md", run_card(info, metrics_link=f"../../reports/cards/{info['run']}.md"))


def _metrics_section(ours: pd.DataFrame, run: str) -> list[str]:
    sub = ours[(ours["run"] == run) & (ours["testset"] != "") & ours["metric"].isin(CARD_METRICS)]
    if sub.empty:
        return ["Not evaluated (no results/<run>/)."]
    mets = [m for m in CARD_METRICS if m in set(sub["metric"])]
    L = ["| test set | n | " + " | ".join(METRIC_LABEL.get(m, m) for m in mets) + " |",
         "|---|---|" + "---|" * len(mets)]
    notes: list[str] = []
    for ts, g in sub.groupby("testset"):
        n = sorted({int(x) for x in g["n_images"].dropna()})
        cells = []
        for m in mets:
            r = g[g["metric"] == m]
            if r.empty:
                cells.append("")
            elif r["value"].notna().any():
                cells.append(f"{float(r['value'].dropna().iloc[0]):.{METRIC_DECIMALS.get(m, 4)}f}")
            else:
                why = portable(next((x for x in r["missing_reason"] if x), "no reason recorded"))
                if why not in notes:
                    notes.append(why)
                cells.append(f"{MISSING} [{notes.index(why) + 1}]")
        L.append(f"| {ts} | {'/'.join(map(str, n))} | " + " | ".join(cells) + " |")
    L += ["", f"Protocol: {ours_line(ours, [run])}"]
    if notes:
        L += ["", *(f"[{k}] {w}  " for k, w in enumerate(notes, 1))]
    return L


def write_report_cards(out_dir: str | Path, ours: pd.DataFrame, params: Mapping | None,
                       runs_root: str | Path = "runs", complexity: Mapping[str, Mapping] | None = None,
                       paper_params: Mapping | None = None) -> list[Path]:
    """``{out_dir}/<run>.md`` for every ``runs_root/*/run.json``: the card with its metrics."""
    out_dir = Path(out_dir)
    written = []
    for p in sorted(Path(runs_root).glob("*/run.json")):
        run = p.parent.name
        if run.startswith(("_", ".")):
            continue
        parser = None
        sub = ours[ours["run"] == run] if len(ours) else ours
        if len(sub) and sub["parser"].notna().any():
            parser = str(sub["parser"].dropna().iloc[0])
        info = card_info(run, params, runs_root, (complexity or {}).get(run), parser, paper_params)
        written.append(write_text(out_dir / f"{run}.md", run_card(info, _metrics_section(ours, run) if len(ours)
                                                                  else ["Not evaluated."])))
    for old in out_dir.glob("*.md"):  # cards of runs that are gone
        if old not in written:
            old.unlink()
    return written


def load_paper_profile(path: str | Path = PAPER_PROFILE) -> dict | None:
    """The paper profile's effective params (``params.yaml`` beside ``params/`` + the overlay; the
    cards' reference for deviations), validated; ``None`` when absent."""
    path = Path(path)
    if not path.is_file():
        return None
    path = path.resolve()
    params = load_profile(path, base=path.parent.parent / "params.yaml")
    validate_params(params)
    return params


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="write runs/<run>/README.md for every runs/*/run.json")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--runs", default="runs")
    a = ap.parse_args(argv)
    params = load_and_validate(a.params)
    paper = load_paper_profile()
    parser_json = Path("data/parsing/parser.json")
    parser = json.loads(parser_json.read_text()).get("parser") if parser_json.is_file() else None
    for p in sorted(Path(a.runs).glob("*/run.json")):
        if p.parent.name.startswith(("_", ".")):
            continue
        info = card_info(p.parent.name, params, a.runs, None, parser or (params.get("parse") or {}).get("parser"),
                         paper, Path(a.params).name)
        print(write_run_card(p.parent, info))


if __name__ == "__main__":
    main()
