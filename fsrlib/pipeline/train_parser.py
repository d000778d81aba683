"""The ``train_parser`` stage: fsrlib's BiSeNet trained on the CelebAMask-HQ train faces, then
both parsers (landmark and the trained BiSeNet) scored on the test faces' human labels.

Writes ``data/parser/``: ``bisenet.pt`` (the weights ``parse`` uses with ``parser: bisenet``,
``bisenet_weights: null``), ``quality.json`` (training time, per-parser scores),
``parsing_quality.md/.csv`` (the report copies them to ``reports/tables/``) and
``figures/parsing_{parser}.png`` (image, human label, prediction, error).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io import atomic_path, write_json  # noqa: E402
from ..labels import colorize  # noqa: E402
from ..parsing import make_parser  # noqa: E402
from ..parsing.training import load_trained, train_parser  # noqa: E402
from ..settings import stage_settings  # noqa: E402
from .parsing_quality import score_parser, write_quality_table  # noqa: E402

__all__ = ["train_parser_stage", "parsing_figure"]


def parsing_figure(examples, title: str, path) -> Path:
    """Rows of (image, human label, prediction, error: red where they differ)."""
    n = len(examples)
    fig, axes = plt.subplots(n, 4, figsize=(6.4, 1.7 * n), squeeze=False)
    for row, (im, gt, pr) in zip(axes, examples):
        err = (im.mean(2, keepdims=True).repeat(3, 2) * 0.5).astype(np.uint8)
        err[gt != pr] = (255, 0, 0)
        panels = (im, colorize(gt), colorize(pr), err)
        for ax, a, t in zip(row, panels, ("image", "human label", "prediction", "error")):
            ax.imshow(a)
            ax.set_title(t, fontsize=8)
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)


def train_parser_stage(params: dict, faces_root="data/faces", out_root="data/parser", progress: bool = True) -> dict:
    cfg = stage_settings(params, "train_parser")
    parse_cfg = stage_settings(params, "parse")
    out_root = Path(out_root)
    weights = Path(parse_cfg["trained_weights"])
    meta = train_parser(faces_root, weights, cfg, progress=progress)
    parsers = {"landmark": make_parser("landmark"), "bisenet": load_trained(weights)}
    results = {k: score_parser(p, faces_root, "test", return_examples=4) for k, p in parsers.items()}
    write_quality_table(results, out_root / "parsing_quality")
    for k, r in results.items():
        parsing_figure(r.pop("examples"), f"{k} parser vs CelebAMask-HQ human labels (test)",
                       out_root / "figures" / f"parsing_{k}.png")
    summary = {"train": meta, "weights": weights.as_posix(),
               "parsers": {k: {"miou": r["scores"]["miou"], "miou_producible": r["scores"]["miou_producible"],
                               "n_faces": r["n_faces"], "iou": r["scores"]["iou"], "derived": r["derived"]}
                           for k, r in results.items()},
               "best": max(results, key=lambda k: results[k]["scores"]["miou"])}
    write_json(out_root / "quality.json", summary)
    return summary
