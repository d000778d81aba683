"""``amp: auto``: bf16 autocast + channels_last on a CPU with native bf16, fp32 elsewhere and on
CUDA; a bf16 + channels_last trainer step runs on a real model and lowers the loss."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_trainer import AstronautFaces, base_cfg, make_trainer, two_steps  # noqa: E402

from fsrlib.train.precision import cpu_flags, cpu_has_bf16, resolve_precision  # noqa: E402
from fsrlib.train.schema import validate_config  # noqa: E402


def test_auto_resolves_from_cpu_flags(tmp_path):
    assert validate_config(base_cfg())["amp"] == "auto"
    assert validate_config(base_cfg())["channels_last"] == "auto"
    assert resolve_precision("auto", "auto", "cpu", {"avx512f", "avx512_bf16"}) == ("bf16", True)
    assert resolve_precision("auto", "auto", "cpu", {"amx_bf16", "amx_tile"}) == ("bf16", True)
    assert resolve_precision("auto", "auto", "cpu", {"avx2", "avx512f"}) == (False, False)
    assert resolve_precision("auto", "auto", "cuda", {"avx512_bf16"}) == (False, False)  # GPU: fp32 as before
    assert resolve_precision(False, "auto", "cpu", {"avx512_bf16"}) == (False, False)
    assert resolve_precision("bf16", False, "cpu", set()) == ("bf16", False)
    assert resolve_precision("fp16", "auto", "cpu", set()) == ("bf16", True)
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16 amx_tile\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_has_bf16(cpu_flags(str(f))) and not cpu_has_bf16(cpu_flags(str(tmp_path / "none")))
    tr = make_trainer(tmp_path, base_cfg(), AstronautFaces(4))
    assert (tr.amp, tr.channels_last) == resolve_precision("auto", "auto", "cpu")


def test_bf16_channels_last_step_runs(tmp_path):
    cfg = base_cfg(amp="bf16", channels_last=True, batch_size=2,
                   model={"type": "sparnet", "min_ch": 4, "max_ch": 8, "res_depth": 1, "att_ch": 4})
    tr = make_trainer(tmp_path, cfg, AstronautFaces(2))
    assert tr.amp_dtype is torch.bfloat16 and tr.channels_last
    assert next(tr.model.parameters()).dtype == torch.float32  # autocast: fp32 master weights
    a, b = two_steps(tr, n=2)
    assert torch.isfinite(torch.as_tensor(b["loss"])) and b["loss"] < a["loss"]
    conv = next(m for m in tr.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
