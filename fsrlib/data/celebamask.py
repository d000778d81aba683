"""CelebAMask-HQ human labels in fsrlib's label space, warped into the aligned 128 px frame.

The mirror's ``celebamask_hq_mini/{train,test}/masks/<id>.png`` hold CelebAMask-HQ class ids
(:data:`CM_CLASSES`, its own order). :func:`to_fsrlib` maps them **by name** onto
:data:`fsrlib.labels.CLASSES`: CelebAMask-HQ's ``l_`` is the *subject's* left (the image's
right: measured on the masks, see ``../shared/datasets/README.md``), whereas fsrlib takes ``l_``
as image-left (:data:`fsrlib.labels.L_IS_IMAGE_LEFT`), so ``l_eye``/``l_brow``/``l_ear`` become
fsrlib's ``r_*`` and the other way round. :func:`warp_labels` applies the prepare stage's
similarity (the ``M`` that aligned the photo) to the label map with nearest-neighbour
sampling; outside the photo is background.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..labels import CLASSES, L_IS_IMAGE_LEFT

__all__ = ["CM_CLASSES", "CM_TO_FSRLIB", "to_fsrlib", "mask_file", "warp_labels"]

#: CelebAMask-HQ class ids (the mask pixel values), its own order
CM_CLASSES = ("background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
              "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")

_SAME = {"background": "bg"}


def _fsrlib_name(cm_name: str) -> str:
    name = _SAME.get(cm_name, cm_name)
    if L_IS_IMAGE_LEFT and name[:2] in ("l_", "r_") and name not in ("l_lip",):
        # subject's left (CelebAMask-HQ) = image right (fsrlib)
        name = ("r_" if name.startswith("l_") else "l_") + name[2:]
    return name


#: CelebAMask-HQ id -> fsrlib class id (by name)
CM_TO_FSRLIB = np.array([CLASSES.index(_fsrlib_name(n)) for n in CM_CLASSES], dtype=np.uint8)


def to_fsrlib(mask) -> np.ndarray:
    """CelebAMask-HQ ids (H, W) -> fsrlib ids (H, W) uint8. Unknown ids raise."""
    m = np.asarray(mask)
    if m.size and int(m.max()) >= len(CM_CLASSES):
        raise ValueError(f"CelebAMask-HQ mask has class id {int(m.max())} (0..{len(CM_CLASSES) - 1} expected)")
    return CM_TO_FSRLIB[m]


def mask_file(image_file: str | Path) -> Path:
    """``.../images/<id>.jpg`` -> ``.../masks/<id>.png``."""
    p = Path(image_file)
    return p.parent.parent / "masks" / f"{p.stem}.png"


def warp_labels(labels, m: np.ndarray, size: int = 128) -> np.ndarray:
    """Warp a label map with the 2x3 similarity ``m`` (source -> crop), nearest neighbour, into a
    ``size`` x ``size`` frame; background (0) outside the source."""
    lab = np.ascontiguousarray(np.asarray(labels, dtype=np.uint8))
    return cv2.warpAffine(lab, np.asarray(m, np.float64), (int(size), int(size)), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
