"""benchmarks/models.py: the quick mode on two small models writes the expected table, its
parameter counts are count_params', and the CUDA code path runs (torch.cuda stubbed)."""
from __future__ import annotations

import csv
import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest
import torch

from fsrlib.models import build_model, count_macs, count_params

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("fsr_bench_models", REPO / "benchmarks" / "models.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


PARAMS = """
methods:
  srcnn:
    model: {type: srcnn, widths: [16, 8]}
  edsr:
    model: {type: edsr, ch: 8, n_blocks: 2}
  bicubic:
    model: {type: bicubic}
runs:
  srcnn-x8: {method: srcnn, scale: 8}
  edsr-x4: {method: edsr, scale: 4}
"""


def test_quick_two_models(bench, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    t = time.perf_counter()
    recs = bench.main(["--device", "cpu", "--out", str(tmp_path / "out"), "--params", str(params),
                       "--models", "srcnn,edsr", "--quick", "--threads", "1"])
    assert time.perf_counter() - t < 60
    md, csv_path = tmp_path / "out" / "models_cpu.md", tmp_path / "out" / "models_cpu.csv"
    assert md.exists() and csv_path.exists()
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == bench.COLUMNS + bench.CSV_EXTRA
        rows = list(reader)
    # paper srcnn + paper edsr + demo srcnn (x8) + demo edsr (x4); bicubic filtered out
    got = {(r["model"], r["config"], r["scale"]) for r in rows}
    assert got == {("srcnn", "paper", "8"), ("edsr", "paper", "8"), ("srcnn", "demo", "8"), ("edsr", "demo", "4")}
    assert len(recs) == 4
    for r in rows:
        cfg = json.loads(r["cfg"])
        scale = int(r["scale"].split()[0])
        assert int(r["params"]) == count_params(build_model(cfg, scale=scale))
        assert float(r["MACs (G)"]) > 0
        assert float(r["latency (ms)"]) > 0 and int(r["latency n"]) >= 2
        assert float(r["train step (ms)"]) > 0 and r["train batch"] == "8"
    text = md.read_text()
    assert "Status: **complete" in text and "torch threads" in text
    for col in ("params (M)", "MACs (G)", "latency (ms)", "train step (ms)", "official params (M)"):
        assert col in text


def test_macs_match_a_hand_count(bench):
    row = bench.Row("srcnn", {"type": "srcnn"}, "paper")
    m = bench.build(row, "meta")
    x, desc = bench.make_inputs(m, row, 1, "meta")
    assert desc == "3x128x128 upsampled"
    hw = 128 * 128
    expect = hw * (3 * 64 * 81 + 64 * 32 * 25 + 32 * 3 * 25)
    assert count_macs(m, *x) == expect  # fsrlib.models.common.count_macs, the benchmark's counter


def test_prior_input_and_claims(bench):
    ops = bench.DeviceOps("cpu")
    st = bench.settings_for("cpu", quick=True)
    row = bench.Row("parsingnet", {"type": "parsingnet", "n_feats": 8, "n_resblocks": 1}, "paper",
                    claims=bench._claims(official=1000))
    rec = bench.run_row(row, ops, st, deadline=time.perf_counter() + 30, timing=False)
    assert rec["input"] == "3x16x16 raw LR"
    assert rec["Δparams vs official (%)"] == pytest.approx(100 * (rec["params"] - 1000) / 1000)
    m = bench.build(bench.Row("fishfsrnet", {"type": "fishfsrnet", "n_feats": 4}, "demo"), "meta")
    _, desc = bench.make_inputs(m, bench.Row("fishfsrnet", {}, "demo"), 1, "meta")
    assert desc == "3x16x16 raw LR + 3x16x16 prior"


def test_cuda_code_path_with_stubs(bench, monkeypatch):
    """The CUDA branch (synchronize, peak memory, OOM retry) on CPU tensors."""
    calls = {"sync": 0, "reset": 0}
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: calls.__setitem__("sync", calls["sync"] + 1))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats",
                        lambda *a: calls.__setitem__("reset", calls["reset"] + 1))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 3 * 2 ** 20)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    ops = bench.DeviceOps("cuda", tensor_device=torch.device("cpu"))
    st = bench.Settings(1, 2, 2, 0.1, 1, 2, 1, 0.1)
    row = bench.Row("srcnn", {"type": "srcnn", "widths": [4, 4]}, "paper")
    # first training attempt at batch 8 "runs out of memory": the retry halves the batch
    real = bench._time_train
    tried = []

    def flaky(model, row_, ops_, st_, deadline, batch):
        tried.append(batch)
        if batch == 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, row_, ops_, st_, deadline, batch)

    monkeypatch.setattr(bench, "_time_train", flaky)
    rec = bench.run_row(row, ops, st, deadline=time.perf_counter() + 30, timing=True)
    assert tried == [8, 4]
    assert rec["train batch"] == 4 and "train OOM at batch 8" in rec["notes"]
    assert rec["peak mem infer (MiB)"] == 3 and rec["peak mem train (MiB)"] == 3
    assert rec["latency (ms)"] > 0 and calls["sync"] > 0 and calls["reset"] >= 2
