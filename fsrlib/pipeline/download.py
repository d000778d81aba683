"""The ``download`` stage: check ``data/raw`` against its manifest and index it.

``data/raw`` itself is filled outside the pipeline (``fsr download``:
:func:`fsrlib.data.download.fetch_raw`, or ``dvc pull data.dvc``); this stage verifies every
file's size and sha256 (:func:`fsrlib.data.download.verify_raw`) and writes the raw index the
prepare stage reads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from ..data.download import subsample_per_identity, verify_raw
from ..io import write_csv

__all__ = ["index_raw"]


def index_raw(raw_root: str | Path = "data/raw", out_root: str | Path = "data/index",
              datasets: Sequence[str] | None = None, celeba_test_per_identity: int | None = None) -> pd.DataFrame:
    """Verify ``raw_root`` (raises on any missing file or checksum mismatch), keep the rows of
    ``datasets`` (all when ``None``) and write ``{out_root}/raw_index.csv``; returns the index.

    The CelebA test set is ``celeba_test`` (CelebA's official test partition): ``celeba`` photos
    of an identity that ``celeba_test`` holds are left out (identity-disjoint by construction,
    also when ``celeba`` is the full public release). ``celeba_test_per_identity``: keep only the
    first k photos (file-name order) of each ``celeba_test`` identity (the demo's subsample;
    ``None`` = all); the prepare stage then aligns only those."""
    raw_root = Path(raw_root)
    if not (raw_root / "MANIFEST.csv").exists():
        raise FileNotFoundError(f"{raw_root} is empty: run `fsr download` (mirror or public sources) "
                                "or `dvc pull data.dvc`")
    idx = verify_raw(raw_root)
    if datasets is not None:
        idx = idx[idx.dataset.isin(list(datasets))]
    test_ids = set(idx.loc[idx.dataset == "celeba_test", "identity"].dropna().astype(int))
    if test_ids:
        idx = idx[~((idx.dataset == "celeba") & idx.identity.isin(test_ids))]
    idx = subsample_per_identity(idx.reset_index(drop=True), "celeba_test", celeba_test_per_identity)
    write_csv(Path(out_root) / "raw_index.csv", idx)
    return idx
