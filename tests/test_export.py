"""``fsr export RUN --onnx PATH``: ONNX parity with PyTorch (onnxruntime, CPU) on a real face."""
from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from test_cli import make_checkpoint  # noqa: E402  (the tests folder is on sys.path)

from fsrlib.cli import main
from fsrlib.inference import MODEL_FILE_FORMAT
from fsrlib.models.common import count_params
from fsrlib.pipeline.export import export_onnx, real_face_batch
from fsrlib.registry import MODELS, ConfigError


def test_export_edsr_parity_and_dynamic_batch(tmp_path, capsys):
    ck = make_checkpoint(tmp_path / "runs", "edsr", 8, {"type": "edsr", "ch": 4, "n_blocks": 1})
    out = tmp_path / "edsr.onnx"
    assert main(["export", str(ck), "--onnx", str(out)]) == 0
    msg = capsys.readouterr().out
    assert "max abs diff" in msg and out.is_file()
    res = export_onnx(ck, out)
    assert res["inputs"] == ["lr"] and res["max_abs_diff"] < 1e-4
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = real_face_batch(8, 3)["lr"].numpy()  # another batch size than the export's
    assert sess.run(["sr"], {"lr": x})[0].shape == (3, 3, 128, 128)


def test_export_two_stage_run_includes_its_prior(tmp_path):
    """FishFSRNet with its ParsingNet: both networks in one graph, the input is the LR."""
    ck = make_checkpoint(tmp_path / "runs", "fishfsrnet", 8, {"type": "fishfsrnet", **MODELS.get("fishfsrnet").slim})
    prior = MODELS.build({"type": "parsingnet", "scale": 8, **MODELS.get("parsingnet").slim})
    blob = torch.load(ck, weights_only=False)
    blob["prior"] = {"model": {"type": "parsingnet", "scale": 8, **MODELS.get("parsingnet").slim},
                     "state_dict": prior.state_dict(), "key": "parsing", "run": "parsingnet-x8",
                     "format": MODEL_FILE_FORMAT}
    torch.save(blob, ck)
    res = export_onnx(ck, tmp_path / "fish.onnx")
    assert res["inputs"] == ["lr"] and res["max_abs_diff"] < 1e-4


def test_export_refuses_a_prior_estimator(tmp_path):
    ck = make_checkpoint(tmp_path / "runs", "parsingnet", 8, {"type": "parsingnet", **MODELS.get("parsingnet").slim})
    assert count_params(MODELS.build({"type": "parsingnet", "scale": 8})) > 0
    with pytest.raises(ConfigError, match="makes no SR image"):
        export_onnx(ck, tmp_path / "p.onnx")
    assert not Path(tmp_path / "p.onnx").exists()
