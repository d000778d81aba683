"""Face parsing: two parsers into the 19-class label space of :mod:`fsrlib.labels`.

``make_parser("bisenet", weights=None, device="cpu", offline=False)`` — the zllrunning
BiSeNet (needs its checkpoint; :class:`fsrlib.io.OfflineError` when it is absent and cannot
be downloaded). ``make_parser("landmark", forehead_raise=0.6, ...)`` — the dlib-landmark
rasteriser (no weights; no hair/neck/ears). Nothing switches from one to the other silently:
the ``parse`` stage (:func:`fsrlib.pipeline.parse.parse_all`, settings :data:`DEFAULTS`)
records the parser used in ``data/parsing/parser.json``.

Outputs of the stage (``out_root`` = ``data/parsing``)::

    labels/{dataset}/{name}.png          (128x128 uint8, class index 0..18)
    skin/{dataset}/{name}.png            (128x128 uint8, 255 = skin) — FishFSRNet/W-Net HR map
    skin_lr/x{s}/{dataset}/{name}.png    (uint8 = round(255 * skin_lr)) per scale
    parser.json                          parser name, its settings/weights, counts

The dataset (:class:`fsrlib.data.datasets.FaceSRDataset`) recomputes ``skin``, ``skin_lr``,
``parts11`` and ``regions`` from ``labels`` (exact floats, and consistent under
augmentation); the skin PNGs are written for inspection and for tools that read the
official repositories' folder layouts (8-bit PNG maps).
"""
from __future__ import annotations

from ..settings import STAGE_DEFAULTS
from .bisenet import BiSeNetParser
from .landmark_parser import LandmarkParser

__all__ = ["make_parser", "PARSERS", "DEFAULTS"]

PARSERS = ("bisenet", "landmark")
DEFAULTS = STAGE_DEFAULTS["parse"]  # the parse stage's settings


def make_parser(name: str, **kw):
    name = str(name).lower()
    if name == "bisenet":
        return BiSeNetParser(**kw)
    if name == "landmark":
        return LandmarkParser(**kw)
    raise ValueError(f"unknown parser {name!r}; choose one of {PARSERS}")
