"""High-resolution faces (512 px, SPARNetHD) in the layout :class:`FaceSRDataset` reads.

SPARNetHD trains on FFHQ at 512x512 with the blind degradation. FFHQ is a download
(``data.ffhq: true``: ``fsr download`` puts it in ``data/raw/ffhq/images``); without it the
512-px CelebAMask-HQ faces of the mirror (``celebamask_hq_mini/{train,test}/images``, already
CelebA-HQ-aligned) are the HR source. :func:`prepare_hr_faces` writes
``{dest}/faces/{source}/{name}.png`` (MATLAB-bicubic resized to ``size`` when the source is
another size) and ``{dest}/faces/faces.csv`` (``name, dataset, split, file``), so that
``FaceSRDataset(root=dest, dataset=source, split=..., hr_size=size, degradation="blind-paper")``
serves them like the 128-px faces (the LR is made online from the HR: no degrade stage).

Splits: CelebAMask-HQ mini: ``train/`` -> train (its last ``val_n`` images -> val),
``test/`` -> test. FFHQ: images 00000-68999 -> train, 69000-69999 -> val (the released
SPARNetHD trains on all 70k; we hold 1000 out for validation).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..imresize import imresize
from ..io import read_u8, save_image, write_csv

HR_SOURCES = ("celebamask_hq", "ffhq")
__all__ = ["HR_SOURCES", "hr_faces_root", "prepare_hr_faces", "source_images"]


def hr_faces_root(data_root: str | Path, size: int) -> Path:
    """Where the ``size``-px faces live: ``{data_root}/hr{size}``."""
    return Path(data_root) / f"hr{int(size)}"


def source_images(source: str, mirror: str | Path = "../shared/datasets", raw: str | Path = "data/raw",
                  val_n: int = 50) -> list[tuple[Path, str]]:
    """``[(image path, split), ...]`` of an HR source, sorted by name."""
    if source == "celebamask_hq":
        base = Path(mirror) / "celebamask_hq_mini"
        train = sorted((base / "train" / "images").glob("*.jpg"))
        test = sorted((base / "test" / "images").glob("*.jpg"))
        if not train:
            raise FileNotFoundError(f"no CelebAMask-HQ faces in {base}/train/images (the mirror's celebamask_hq_mini)")
        return ([(p, "train") for p in train[:-val_n]] + [(p, "val") for p in train[-val_n:]]
                + [(p, "test") for p in test])
    if source == "ffhq":
        imgs = sorted((Path(raw) / "ffhq" / "images").glob("*.png"))
        if not imgs:
            raise FileNotFoundError(f"no FFHQ images in {raw}/ffhq/images: set data.ffhq: true and run `fsr download` "
                                    "on a connected machine")
        return [(p, "val" if p.stem.isdigit() and int(p.stem) >= 69000 else "train") for p in imgs]
    raise ValueError(f"unknown HR source {source!r}; known: {HR_SOURCES}")


def prepare_hr_faces(dest: str | Path, size: int = 512, source: str = "celebamask_hq",
                     mirror: str | Path = "../shared/datasets", raw: str | Path = "data/raw",
                     limit: int | None = None, splits: tuple[str, ...] = ("train", "val", "test")) -> Path:
    """Write the HR faces (at most ``limit`` per split) and their ``faces.csv``; reuses faces
    already written. Returns ``dest``."""
    dest = Path(dest)
    rows, count = [], {}
    for path, split in source_images(source, mirror, raw):
        if split not in splits or (limit is not None and count.get(split, 0) >= limit):
            continue
        count[split] = count.get(split, 0) + 1
        out = dest / "faces" / source / f"{path.stem}.png"
        if not out.exists():
            img = read_u8(path)
            if img.shape[:2] != (size, size):
                img = imresize(np.ascontiguousarray(img), output_shape=(size, size))
            save_image(out, img)
        rows.append({"name": path.stem, "dataset": source, "split": split, "file": str(path)})
    if not rows:
        raise ValueError(f"no {source} faces for splits {splits}")
    write_csv(dest / "faces" / "faces.csv", pd.DataFrame(rows))
    return dest
