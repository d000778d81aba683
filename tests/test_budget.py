"""The demo's one budget (params.yaml ``train.budget``): every trained run sees the same number
of training images in its own stage, with the same schedule and the paper's lr x one factor
(:func:`fsrlib.train.schema.check_budget`), and every generator's MACs per 128-px face lie in
the stated band (FishFSRNet counted with its ParsingNet; a paper's ablation preset keeps its
method's widths)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from fsrlib.config import all_runs, load_and_validate, run_config
from fsrlib.inference import input_key
from fsrlib.models import MODELS, count_macs
from fsrlib.train.schema import check_budget, validate_runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def params():
    return validate_runs(load_and_validate(ROOT / "params.yaml"))


def run_macs_g(params, name: str) -> float:
    """Generator MACs per face of a run (+ its prior network's, for a two-stage run)."""
    c = run_config(params, name)
    m = MODELS.build({"scale": c["scale"], **c["model"]}).eval()
    s = c["scale"]
    x = torch.rand(1, 3, 128, 128) if input_key(m) == "lr_up" else torch.rand(1, 3, 128 // s, 128 // s)
    total = 0.0
    prior = None
    if c.get("prior_from"):
        pc = run_config(params, c["prior_from"])
        pm = MODELS.build({"scale": pc["scale"], **pc["model"]}).eval()
        total += count_macs(pm, torch.rand(1, 3, 128 // s, 128 // s))
        prior = pm.forward_maps(torch.rand(1, 3, 128 // s, 128 // s))[c.get("prior_key", "parsing")]
    total += count_macs(lambda a: m.forward_maps(a, prior), x)
    return total / 1e9


def test_every_run_obeys_the_budget(params):
    paper = yaml.safe_load((ROOT / "params" / "paper.yaml").read_text())["methods"]
    assert check_budget(params, paper) == []
    b = params["train"]["budget"]
    seen = {run_config(params, n)["iters"] * run_config(params, n)["batch_size"]
            for n in all_runs(params) if run_config(params, n)["model"]["type"] != "bicubic"}
    assert seen == {b["images"]}


def test_generator_macs_within_band(params):
    b = params["train"]["budget"]
    lo, hi = b["macs_target_g"] * (1 - b["macs_band"]), b["macs_target_g"] * (1 + b["macs_band"])
    out = {}
    for name, r in all_runs(params).items():
        c = run_config(params, name)
        if c["model"]["type"] == "bicubic" or r["method"] in b["macs_exempt"] \
                or (r.get("overrides") or {}).get("model", {}).get("type"):  # an ablation preset
            continue
        g = run_macs_g(params, name)
        if not lo <= g <= hi:
            out[name] = round(g, 4)
    assert not out, f"MACs per face outside [{lo:.4f}, {hi:.4f}] G: {out}"


def test_check_budget_reports_a_breach(params):
    p = {**params, "methods": {**params["methods"], "edsr": {**params["methods"]["edsr"], "iters": 201}}}
    paper = {"edsr": {"optim": {"lr": 1e-3}}}
    msgs = check_budget({**p, "runs": {"edsr-x8": p["runs"]["edsr-x8"]}, "chained": {}}, paper)
    assert any("1608 images" in m for m in msgs) and any("optim.lr" in m for m in msgs)
