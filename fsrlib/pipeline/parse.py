"""The ``parse`` stage: a 19-class label map per face, its skin maps, and ``parser.json``.

:func:`parse_all` runs the parser that ``parse.parser`` names (:func:`fsrlib.parsing.make_parser`)
over every face of ``faces.csv`` and writes ``data/parsing/`` (layout in :mod:`fsrlib.parsing`).
``parser: bisenet`` with ``bisenet_weights: null`` is the BiSeNet of the ``train_parser`` stage
(``trained_weights``); with a path, the official ``79999_iter.pth``. ``parser.json`` records the
parser, its weights and its mIoU measured on the CelebAMask-HQ test faces' human labels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..data.faces import load_landmarks, read_faces
from ..io import save_image, to_uint8, write_json, write_manifest
from ..labels import CLASSES, skin_lr
from ..parsing import make_parser
from ..parsing.training import load_trained
from ..settings import stage_settings
from .parsing_quality import score_parser

__all__ = ["parse_all"]


def parse_all(faces_root="data/faces", out_root="data/parsing", params: dict | None = None, parser=None,
              faces=None, progress: bool = True):
    """The parse stage (see the module docstring). ``params``: the ``parse`` section
    (``parser``, ``parser_kw``, ``scales``, ``batch_size``). Returns the parser's info dict."""
    cfg = stage_settings(params, "parse")
    faces_root, out_root = Path(faces_root), Path(out_root)
    df = read_faces(faces_root) if faces is None else faces
    if parser is None:
        kw = dict(cfg.get("parser_kw") or {})
        if cfg["parser"] == "bisenet" and not cfg.get("bisenet_weights"):
            # the train_parser stage's BiSeNet (missing: a clear error, never another parser)
            parser = load_trained(cfg["trained_weights"], **kw)
        else:
            if cfg["parser"] == "bisenet":
                kw.setdefault("weights", cfg.get("bisenet_weights"))  # the official 79999_iter.pth
            parser = make_parser(cfg["parser"], **kw)
    lms = load_landmarks(faces_root) if getattr(parser, "needs_landmarks", False) else None
    scales = [int(s) for s in cfg["scales"]]
    bs = int(cfg["batch_size"])
    rows = list(df.itertuples(index=False))
    counts = np.zeros(len(CLASSES), np.int64)
    for i in tqdm(range(0, len(rows), bs), desc=f"parse ({parser.name})", disable=not progress):
        chunk = rows[i:i + bs]
        imgs = np.stack([np.asarray(Image.open(faces_root / r.dataset / f"{r.name}.png").convert("RGB"))
                         for r in chunk])
        lm = None
        if lms is not None:
            lm = np.stack([lms[f"{r.dataset}/{r.name}"]["detected"] for r in chunk])
        labels = parser.parse(imgs, lm)
        for r, lab in zip(chunk, labels):
            counts += np.bincount(lab.ravel(), minlength=len(CLASSES))[: len(CLASSES)]
            save_image(out_root / "labels" / r.dataset / f"{r.name}.png", lab.astype(np.uint8))
            save_image(out_root / "skin" / r.dataset / f"{r.name}.png", ((lab == 1) * 255).astype(np.uint8))
            for s in scales:
                m = skin_lr(lab, s)
                save_image(out_root / "skin_lr" / f"x{s}" / r.dataset / f"{r.name}.png", to_uint8(m))
    info = dict(parser.info())
    info.update({"n_faces": len(rows), "scales": scales,
                 "class_pixel_share": {c: round(float(n) / max(counts.sum(), 1), 5) for c, n in zip(CLASSES, counts)},
                 "layout": "labels/{dataset}/{name}.png (0..18), skin/..., skin_lr/x{s}/..."})
    if ((df.dataset == "celebamask") & (df.split == "test")).any():  # measured against human labels
        q = score_parser(parser, faces_root, "test")
        info["measured"] = {"on": f"celebamask test ({q['n_faces']} faces, human labels)",
                            "miou": round(q["scores"]["miou"], 4),
                            "miou_producible": round(q["scores"]["miou_producible"], 4),
                            "skin_map_iou": round(q["derived"]["skin_map"]["iou"], 4)}
    write_json(out_root / "parser.json", info)
    write_manifest(out_root)
    return info
