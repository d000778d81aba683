"""``fsr export RUN --onnx PATH``: a trained run as an ONNX model, checked against PyTorch.

The exported graph is the run's whole inference (:class:`fsrlib.inference.RunPredictor`: the
prior network of a two-stage run included): inputs named by the batch keys it reads (``lr``:
Nx3x(128/s)x(128/s); ``lr_up``: Nx3x128x128; RGB float in [0, 1]), output ``sr``
(Nx3x128x128, not clamped), the batch dimension dynamic. After writing, the file is run with
onnxruntime (CPU) on a real face (skimage's astronaut, aligned and degraded as the pipeline
does) and compared with PyTorch: the maximum absolute difference is returned and printed.
Runs that make no SR image (ParsingNet) or that read ground-truth maps at test time are
refused with the reason.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.align import FaceAligner
from ..data.degrade import degrade
from ..inference import RunPredictor, resolve_model_file
from ..registry import ConfigError

__all__ = ["SRGraph", "export_onnx", "onnx_parity", "real_face_batch"]

OPSET = 17


class SRGraph(nn.Module):
    """The run's inference as one module of positional tensors (the ONNX graph)."""

    def __init__(self, pred: RunPredictor):
        super().__init__()
        self.model = pred.model
        self.prior = pred.prior.model if pred.prior is not None else None
        self.prior_key = pred.prior.key if pred.prior is not None else None
        self.keys = sorted({pred.input_key, *([pred.prior.input_key] if pred.prior is not None else [])})
        self._pred = pred

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        batch = dict(zip(self.keys, xs))
        return self._pred(batch)


def real_face_batch(scale: int, n: int = 2) -> dict[str, torch.Tensor]:
    """``lr`` and ``lr_up`` of a real face (skimage's astronaut, aligned to the 128 template and
    degraded with MATLAB bicubic), repeated ``n`` times with a horizontal flip for the second."""
    import skimage.data

    rgb = skimage.data.astronaut()
    aligner = FaceAligner()
    from ..data.align import key_points, similarity_from_points

    face = aligner.detect_all(rgb)[0]
    hr = aligner.warp(rgb, similarity_from_points(key_points(face["landmarks"]), aligner.template))
    lr, lr_up = degrade(hr, scale)

    def t(a):
        x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div(255.0)[None]
        return torch.cat([x, x.flip(-1)][:max(1, n)] + [x] * max(0, n - 2))

    return {"lr": t(lr), "lr_up": t(lr_up)}


def _load(run: str | Path, runs_root: str | Path) -> tuple[RunPredictor, dict]:
    path = resolve_model_file(run, runs_root)
    blob = torch.load(path, map_location="cpu", weights_only=False)
    cfg = blob.get("run_config") or {}
    if cfg.get("prior_gt"):
        raise ConfigError(f"{path}: run reads the ground-truth map {cfg['prior_gt']!r} at test time; nothing to "
                          "export that works on a photo")
    pred = RunPredictor.from_run(path)
    if not getattr(pred.model, "outputs_sr", True):
        raise ConfigError(f"{path}: {type(pred.model).__name__} makes no SR image (a prior estimator); "
                          "export an SR run")
    return pred, {"path": path, "scale": int(pred.model.scale)}


def onnx_parity(onnx_path: str | Path, graph: SRGraph, batch: dict[str, torch.Tensor]) -> float:
    """Max |ONNX Runtime - PyTorch| of the SR output on ``batch``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = {k: batch[k].numpy() for k in graph.keys}
    got = sess.run(["sr"], feeds)[0]
    with torch.no_grad():
        ref = graph(*[batch[k] for k in graph.keys]).numpy()
    if got.shape != ref.shape:
        raise AssertionError(f"ONNX output shape {got.shape} != PyTorch {ref.shape}")
    return float(np.abs(got - ref).max())


def export_onnx(run: str | Path, out: str | Path, runs_root: str | Path = "runs", check: bool = True) -> dict:
    """Write ``out`` (``.onnx``) for a trained run; returns ``{"path", "inputs", "scale",
    "max_abs_diff"}`` (the parity on a real face, batch 2, when ``check``)."""
    pred, info = _load(run, runs_root)
    graph = SRGraph(pred).eval()
    batch = real_face_batch(info["scale"], 2)
    args = tuple(batch[k] for k in graph.keys)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, args, str(tmp), input_names=graph.keys, output_names=["sr"], opset_version=OPSET,
                          dynamic_axes={**{k: {0: "batch"} for k in graph.keys}, "sr": {0: "batch"}}, dynamo=False)
    tmp.replace(out)
    res = {"path": out, "inputs": list(graph.keys), "scale": info["scale"], "max_abs_diff": None}
    if check:
        res["max_abs_diff"] = onnx_parity(out, graph, batch)
    return res
