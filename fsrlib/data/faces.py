"""Reading the prepare stage's outputs (``data/faces/``): ``faces.csv`` and ``landmarks.npz``.

Kept apart from the aligner (:mod:`fsrlib.data.align`) so that what reads the faces (the
dataset, the later stages) does not depend on the detection and alignment code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["read_faces", "load_landmarks"]


def read_faces(faces_root="data/faces"):
    """``faces.csv`` as a DataFrame; names and files stay strings (CelebA's "000114" would
    otherwise become the integer 114 and its image path would break)."""
    return pd.read_csv(Path(faces_root) / "faces.csv", dtype={"name": str, "file": str})


def load_landmarks(faces_root="data/faces") -> dict:
    """``{"dataset/name": {"detected": (68,2), "gt": (68,2) or None}}`` from landmarks.npz."""
    z = np.load(Path(faces_root) / "landmarks.npz")
    out = {}
    for k, d, g in zip(z["keys"], z["detected"], z["gt"]):
        out[str(k)] = {"detected": d, "gt": None if np.isnan(g).all() else g}
    return out
