"""The 19-class CelebAMask-HQ label space (as used by the zllrunning face-parsing BiSeNet)
and the maps derived from it: the vocabulary shared by the parsers (:mod:`fsrlib.parsing`),
the dataset (:mod:`fsrlib.data.datasets`) and the figures, below all of them.

=====  ========  ================================
index  name      note
=====  ========  ================================
0      bg        background
1      skin      face skin
2      l_brow    eyebrow on the image's left (the subject's right; see below)
3      r_brow
4      l_eye
5      r_eye
6      eye_g     eyeglasses
7      l_ear
8      r_ear
9      ear_r     earring
10     nose
11     mouth     inner mouth (between the lips)
12     u_lip     upper lip
13     l_lip     lower lip
14     neck
15     neck_l    necklace
16     cloth
17     hair
18     hat
=====  ========  ================================

Left / right: CelebAMask-HQ does not document whether ``l_`` is the image's or the subject's
left; public relabellings of the BiSeNet output (e.g. StarGAN v2's) read class 2 as the
subject's *right* brow, i.e. the **image-left** one. This module takes ``l_`` = image-left
(:data:`L_IS_IMAGE_LEFT`); the landmark parser follows it. A horizontal flip swaps every
l/r pair (:func:`flip_labels`).

Derived maps (all from a label map, so they are exact and cheap to recompute):

* :func:`skin_map` — 1 on skin (class 1), 0 on every facial component, hair, background
  (FishFSRNet spec 001 section 4.3, W-Net spec 000 section 2.1);
* :func:`skin_lr` — the skin map bicubic-downsampled (MATLAB imresize) to the LR size and
  clamped to [0, 1] (ParsingNet's target; W-Net's LR parsing map);
* :func:`parts11` — the thesis' 11 maps (spec 004 section 4 default list);
* :func:`regions4` — W-Net's key regions: eyes, brows, nose, mouth (lips + inner mouth).

The dataset computes every map registered in :data:`LABEL_MAPS` (``skin``, ``skin_lr``,
``parts11``, ``regions``) as a batch key: a method whose loss needs another map registers it
with :func:`register_map` (``fn(labels (H, W), scale) -> float32 (C, h, w)``) and names it as
the loss's ``target:`` or ``mask:``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .imresize import imresize

__all__ = [
    "CLASSES", "N_CLASSES", "COLORS", "L_IS_IMAGE_LEFT", "LR_PAIRS", "PARTS11", "PARTS11_NAMES",
    "PARTS11_FLIP", "REGIONS4", "REGIONS4_NAMES", "skin_map", "skin_lr", "parts11", "regions4",
    "flip_labels", "flip_parts11", "colorize", "overlay", "class_index", "LABEL_MAPS", "register_map",
]

CLASSES = ("bg", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
           "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
N_CLASSES = len(CLASSES)
L_IS_IMAGE_LEFT = True
LR_PAIRS = ((2, 3), (4, 5), (7, 8))

#: overlay colours (RGB), one per class; background black
COLORS = np.array([
    [0, 0, 0], [204, 102, 51], [255, 170, 0], [255, 0, 85], [0, 255, 0], [0, 170, 255],
    [170, 255, 255], [85, 255, 0], [0, 255, 170], [255, 255, 0], [0, 0, 255], [170, 0, 255],
    [255, 85, 170], [255, 0, 255], [255, 210, 150], [255, 255, 170], [0, 85, 255], [120, 60, 20],
    [150, 150, 150]], dtype=np.uint8)

#: thesis' 11 maps: [skin ("jawline"), l_brow, r_brow, l_eye, r_eye, nose, u_lip, mouth, l_lip, l_ear, r_ear]
PARTS11 = (1, 2, 3, 4, 5, 10, 12, 11, 13, 7, 8)
PARTS11_NAMES = tuple(CLASSES[i] for i in PARTS11)
#: channel permutation of parts11 under a horizontal flip (l/r channels swap)
PARTS11_FLIP = (0, 2, 1, 4, 3, 5, 6, 7, 8, 10, 9)

REGIONS4 = ((4, 5), (2, 3), (10,), (11, 12, 13))
REGIONS4_NAMES = ("eyes", "brows", "nose", "mouth")


def class_index(name: str) -> int:
    return CLASSES.index(name)


def _np(labels):
    return np.asarray(labels)


def skin_map(labels) -> np.ndarray:
    """Binary skin map (float32 {0,1}, same shape as ``labels``)."""
    return (_np(labels) == 1).astype(np.float32)


def skin_lr(labels, scale: int) -> np.ndarray:
    """Skin map bicubic-downsampled by ``scale`` (MATLAB imresize, float), clamped to [0,1].

    ``labels`` (H, W) -> (H/scale, W/scale) float32."""
    s = skin_map(labels).astype(np.float64)
    h, w = s.shape[-2:]
    out = imresize(s, output_shape=(h // scale, w // scale))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def parts11(labels) -> np.ndarray:
    """(11, H, W) float32 {0,1}, channels in :data:`PARTS11` order."""
    lab = _np(labels)
    return np.stack([(lab == c) for c in PARTS11]).astype(np.float32)


def regions4(labels) -> np.ndarray:
    """(4, H, W) float32 {0,1}: eyes, brows, nose, mouth (lips and inner mouth)."""
    lab = _np(labels)
    return np.stack([np.isin(lab, cs) for cs in REGIONS4]).astype(np.float32)


def flip_labels(labels, axis: int = -1) -> np.ndarray:
    """Mirror a label map horizontally and swap the l/r classes."""
    lab = np.flip(_np(labels), axis=axis).copy()
    lut = np.arange(256, dtype=lab.dtype if lab.dtype != np.bool_ else np.uint8)
    for a, b in LR_PAIRS:
        lut[a], lut[b] = b, a
    return lut[lab]


def flip_parts11(p11) -> np.ndarray:
    """Mirror an (11, H, W) parts11 stack horizontally, swapping its l/r channels."""
    return np.flip(np.asarray(p11), axis=-1)[list(PARTS11_FLIP)].copy()


def colorize(labels) -> np.ndarray:
    """(H, W) labels -> (H, W, 3) uint8 colour image."""
    return COLORS[np.clip(_np(labels).astype(np.int64), 0, N_CLASSES - 1)]


def overlay(image, labels, alpha: float = 0.5) -> np.ndarray:
    """Blend the colour-coded labels over an RGB uint8 image (background left as is)."""
    img = np.asarray(image).astype(np.float32)
    lab = _np(labels)
    col = colorize(lab).astype(np.float32)
    m = (lab > 0)[..., None]
    out = np.where(m, (1 - alpha) * img + alpha * col, img)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ====================================================================== maps the dataset computes
#: batch key -> ``fn(labels (H, W) uint8, scale) -> float32 array (C, h, w)``
LABEL_MAPS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {}


def register_map(name: str):
    """Decorator: the dataset (:class:`fsrlib.data.datasets.FaceSRDataset`) computes ``name`` from
    the label map of every face (after augmentation, so it stays consistent)."""

    def deco(fn):
        if name in LABEL_MAPS:
            raise KeyError(f"label map {name!r} registered twice")
        LABEL_MAPS[name] = fn
        return fn

    return deco


@register_map("skin")
def _skin3(labels, scale: int) -> np.ndarray:
    """3 x H x W binary skin map (FishFSRNet / W-Net target), replicated over the channels."""
    return np.repeat((_np(labels) == 1).astype(np.float32)[None], 3, axis=0)


@register_map("skin_lr")
def _skin_lr3(labels, scale: int) -> np.ndarray:
    """3 x (H/s) x (W/s) skin map at LR size (ParsingNet's target), replicated over the channels."""
    return np.repeat(skin_lr(labels, scale)[None], 3, axis=0)


@register_map("parts11")
def _parts11(labels, scale: int) -> np.ndarray:
    return parts11(labels)


@register_map("regions")
def _regions4(labels, scale: int) -> np.ndarray:
    return regions4(labels)
