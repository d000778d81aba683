"""A parser that needs no network: the dlib 68 landmarks rasterised into the 19-class
CelebAMask-HQ label space (:mod:`fsrlib.labels`).

What it draws (later ones over earlier ones), with ``D`` = distance between the eye centres
and ``up`` = the unit vector from the mouth centre to the eyes' midpoint:

1. ``skin`` (1): convex hull of the jaw line (points 1-17) and of the brows raised by
   ``forehead_raise x |eyes - mouth|`` along ``up`` (the forehead, a guess);
2. ``nose`` (10): the bridge (28-31) widened by ``nose_width x D`` on each side, down to the
   nostrils (32-36);
3. ``l_brow`` / ``r_brow`` (2, 3): each brow line (18-22 / 23-27) as a band of thickness
   ``brow_thickness x D``;
4. ``l_eye`` / ``r_eye`` (4, 5): the eye contours (37-42 / 43-48);
5. ``u_lip`` (12), ``l_lip`` (13): between the outer (49-60) and inner (61-68) lip lines;
6. ``mouth`` (11): inside the inner lip line.

``l_`` is the image-left side (:data:`fsrlib.labels.L_IS_IMAGE_LEFT`).

Limits (documented deviation from BiSeNet): no hair, neck, ears, earrings, glasses, hat,
cloth (all background); the forehead height is a fixed proportion and ignores the hair
line; the jaw hull includes beard; an occluding hand is labelled skin; the quality is that
of the landmarks (profile faces and occlusions degrade it). It is exact where the papers'
maps matter most for FSR priors (eyes, brows, nose, lips) as far as the landmarks are.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..labels import class_index

__all__ = ["LandmarkParser", "rasterize_landmarks"]

_SHIFT = 4  # cv2 fixed-point sub-pixel bits
_S = float(1 << _SHIFT)


def _poly(img, pts, value):
    p = np.round(np.asarray(pts, np.float64) * _S).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(img, [p], int(value), lineType=cv2.LINE_8, shift=_SHIFT)


def rasterize_landmarks(lm68, size: int | tuple[int, int] = 128, forehead_raise: float = 0.6,
                        brow_thickness: float = 0.12, nose_width: float = 0.12) -> np.ndarray:
    """(68, 2) landmarks (pixel-centre coordinates) -> (H, W) uint8 labels."""
    h, w = (size, size) if np.isscalar(size) else size
    lm = np.asarray(lm68, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(f"expected finite (68, 2) landmarks, got {lm.shape}")
    lab = np.zeros((h, w), np.uint8)
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    mouth = lm[48:60].mean(0)
    eyes = (eye_l + eye_r) / 2
    d_eyes = max(np.linalg.norm(eye_r - eye_l), 1e-3)
    up = eyes - mouth
    d_em = max(np.linalg.norm(up), 1e-3)
    up = up / d_em
    right = (eye_r - eye_l) / d_eyes

    # 1 skin: jaw + brows + raised brows
    brows = lm[17:27]
    fore = brows + up * forehead_raise * d_em
    hull = cv2.convexHull(np.round(np.vstack([lm[0:17], brows, fore]) * _S).astype(np.int32))
    cv2.fillPoly(lab, [hull], class_index("skin"), lineType=cv2.LINE_8, shift=_SHIFT)
    # 2 nose
    nw = nose_width * d_eyes
    top = lm[27]
    _poly(lab, [top - right * nw * 0.6, lm[28] - right * nw * 0.8, lm[31], lm[32], lm[33], lm[34], lm[35],
                lm[28] + right * nw * 0.8, top + right * nw * 0.6], class_index("nose"))
    # 3 brows (bands around the brow lines)
    t = brow_thickness * d_eyes / 2
    for sl, cls in ((slice(17, 22), "l_brow"), (slice(22, 27), "r_brow")):
        b = lm[sl]
        _poly(lab, np.vstack([b + up * t, (b - up * t)[::-1]]), class_index(cls))
    # 4 eyes
    _poly(lab, lm[36:42], class_index("l_eye"))
    _poly(lab, lm[42:48], class_index("r_eye"))
    # 5 lips
    _poly(lab, np.vstack([lm[48:55], lm[60:65][::-1]]), class_index("u_lip"))
    _poly(lab, np.vstack([lm[54:60], lm[48:49], lm[60:61], lm[64:68][::-1]]), class_index("l_lip"))
    # 6 inner mouth
    _poly(lab, lm[60:68], class_index("mouth"))
    return lab


class LandmarkParser:
    """Parser interface: ``parse(images, landmarks) -> (N, H, W) uint8 labels``."""

    name = "landmark"
    needs_landmarks = True
    #: the classes it can produce (the rest: hair, ears, neck, glasses, ... never)
    classes = ("bg", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip")

    def __init__(self, forehead_raise: float = 0.6, brow_thickness: float = 0.12, nose_width: float = 0.12):
        self.kw = {"forehead_raise": float(forehead_raise), "brow_thickness": float(brow_thickness),
                   "nose_width": float(nose_width)}

    def parse(self, images, landmarks) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        lms = np.asarray(landmarks)
        if lms.ndim == 2:
            lms = lms[None]
        if len(lms) != len(images):
            raise ValueError(f"{len(images)} images but {len(lms)} landmark sets")
        h, w = images.shape[1:3]
        return np.stack([rasterize_landmarks(l, (h, w), **self.kw) for l in lms])

    def info(self) -> dict:
        return {"parser": self.name, "params": self.kw,
                "source": "dlib 68-point landmarks of the prepare stage (landmarks.npz 'detected')",
                "limits": "no hair/neck/ears/earrings/glasses/hat/cloth; forehead height guessed; "
                          "a documented substitute for BiSeNet, not the papers' parser"}
