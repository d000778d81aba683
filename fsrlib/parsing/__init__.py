"""Face parsing: the 19-class label space, two parsers, and the ``parse`` stage.

``make_parser("bisenet", weights=None, device="cpu", offline=False)`` — the zllrunning
BiSeNet (needs its checkpoint; :class:`fsrlib.io.OfflineError` when it is absent and cannot
be downloaded). ``make_parser("landmark", forehead_raise=0.6, ...)`` — the dlib-landmark
rasteriser (no weights; no hair/neck/ears). Nothing switches from one to the other silently:
the stage records the parser used in ``data/parsing/parser.json``.

Outputs of :func:`parse_all` (``out_root`` = ``data/parsing``)::

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

from pathlib import Path

import numpy as np

__all__ = ["make_parser", "parse_all", "PARSERS", "DEFAULTS"]

PARSERS = ("bisenet", "landmark")
DEFAULTS = {"parser": "landmark", "scales": [4, 8], "batch_size": 16, "parser_kw": {},
            "bisenet_weights": None}  # bisenet_weights: local checkpoint path (else download)


def make_parser(name: str, **kw):
    name = str(name).lower()
    if name == "bisenet":
        from fsrlib.parsing.bisenet import BiSeNetParser

        return BiSeNetParser(**kw)
    if name == "landmark":
        from fsrlib.parsing.landmark_parser import LandmarkParser

        return LandmarkParser(**kw)
    raise ValueError(f"unknown parser {name!r}; choose one of {PARSERS}")


def _cfg(params):
    from fsrlib.config import stage_section

    return stage_section(params, "parse", DEFAULTS)


def parse_all(faces_root="data/faces", out_root="data/parsing", params: dict | None = None, parser=None,
              faces=None, progress: bool = True):
    """The parse stage (see the module docstring). ``params``: the ``parse`` section
    (``parser``, ``parser_kw``, ``scales``, ``batch_size``). Returns the parser's info dict."""
    from PIL import Image
    from tqdm import tqdm

    from fsrlib.data.align import load_landmarks, read_faces
    from fsrlib.io import save_image, write_json
    from fsrlib.parsing.labels import CLASSES, skin_lr

    cfg = _cfg(params)
    faces_root, out_root = Path(faces_root), Path(out_root)
    df = read_faces(faces_root) if faces is None else faces
    if parser is None:
        kw = dict(cfg.get("parser_kw") or {})
        if cfg["parser"] == "bisenet":
            kw.setdefault("weights", cfg.get("bisenet_weights"))
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
                save_image(out_root / "skin_lr" / f"x{s}" / r.dataset / f"{r.name}.png",
                           np.clip(np.floor(m * 255 + 0.5), 0, 255).astype(np.uint8))
    info = dict(parser.info())
    info.update({"n_faces": len(rows), "scales": scales,
                 "class_pixel_share": {c: round(float(n) / max(counts.sum(), 1), 5) for c, n in zip(CLASSES, counts)},
                 "layout": "labels/{dataset}/{name}.png (0..18), skin/..., skin_lr/x{s}/..."})
    write_json(out_root / "parser.json", info)
    from fsrlib.io import write_manifest

    write_manifest(out_root)
    return info
