"""PFLD 68-point landmark detector (Guo et al., 2019), a second landmark opinion beside dlib's.

Weights: ``pfld_68pt.onnx`` of cunjian/pytorch_face_landmark (../shared/models/README.md), run
with onnxruntime; its sha256 is checked before use. Input ``input``: N x 3 x 112 x 112 float32 RGB
in [0, 1], a square crop around the face; output ``output``: N x 136, 68 (x, y) pairs in [0, 1]
of the crop (iBUG order).

Crop convention here: the square of side ``1.1 x`` the larger side of the **HR's** dlib
68-point box, centred on it, resized (bilinear) to 112x112; the same crop for SR and HR, so the
score measures the pixels, not the box (as dlib's "rectangle from HR").
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..io import sha256sum

__all__ = ["PFLD_SHA256", "DEFAULT_WEIGHTS", "PFLD"]

PFLD_SHA256 = "7d7bbd5c6a1d9272e58d9773898284a1905d872eba9a662df9b5f20f1ba6f83e"
DEFAULT_WEIGHTS = "../shared/models/pfld_68pt.onnx"
CROP_SCALE = 1.1


class PFLD:
    def __init__(self, weights: str | Path = DEFAULT_WEIGHTS, sha256: str | None = PFLD_SHA256, batch_size: int = 64,
                 threads: int = 2):
        import onnxruntime as ort  # optional backend: loaded when PFLD is asked for

        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"PFLD weights not found at {weights} (../shared/models/README.md)")
        if sha256 is not None and sha256sum(weights) != sha256:
            raise ValueError(f"{weights}: sha256 is not PFLD's {sha256}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        self.sess = ort.InferenceSession(str(weights), so, providers=["CPUExecutionProvider"])
        self.batch_size = int(batch_size)

    @staticmethod
    def crop_box(lmk68: np.ndarray) -> tuple[float, float, float]:
        """``(x0, y0, side)`` of the square crop around 68 points."""
        lo, hi = lmk68.min(0), lmk68.max(0)
        c = (lo + hi) / 2
        side = float(max(hi - lo)) * CROP_SCALE
        return float(c[0] - side / 2), float(c[1] - side / 2), side

    def predict(self, imgs: Sequence[np.ndarray], ref_lmk68: np.ndarray) -> np.ndarray:
        """``(N, 68, 2)`` points in image pixels; each image cropped by the box of ``ref_lmk68[i]``
        (NaN rows give NaN)."""
        ref = np.asarray(ref_lmk68, np.float64)
        out = np.full((len(imgs), 68, 2), np.nan)
        ok = [i for i in range(len(imgs)) if not np.isnan(ref[i]).any()]
        for b in range(0, len(ok), self.batch_size):
            idx = ok[b:b + self.batch_size]
            boxes = [self.crop_box(ref[i]) for i in idx]
            x = []
            for i, (x0, y0, side) in zip(idx, boxes):
                s = 112.0 / side
                m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]])
                x.append(cv2.warpAffine(np.ascontiguousarray(imgs[i]), m, (112, 112), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT))
            x = np.stack(x).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
            y = self.sess.run(["output"], {"input": x})[0].reshape(-1, 68, 2).astype(np.float64)
            for k, (i, (x0, y0, side)) in enumerate(zip(idx, boxes)):
                out[i] = y[k] * side + np.array([x0, y0])
        return out
