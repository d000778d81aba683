"""Shared test fixtures: the face-data mirror, a tiny prepared data root, torch's thread count."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from fsrlib.data.download import build_raw_index
from fsrlib.pipeline.degrade import degrade_all
from fsrlib.pipeline.parse import parse_all
from fsrlib.pipeline.prepare import prepare

REPO = Path(__file__).resolve().parents[1]


def find_mirror() -> Path | None:
    """The local face-data mirror: ``$FSR_DATA_MIRROR`` or ``../shared/datasets``."""
    env = os.environ.get("FSR_DATA_MIRROR")
    for p in ([Path(env)] if env else []) + [REPO.parent / "shared" / "datasets"]:
        if (p / "celeba" / "identity.csv").exists() and (p / "helen" / "test").is_dir():
            return p
    return None


@pytest.fixture(scope="session")
def mirror() -> Path:
    m = find_mirror()
    if m is None:
        pytest.skip("face data mirror not found: set FSR_DATA_MIRROR or put it at ../shared/datasets")
    return m


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tests use small tensors: on a 2-core machine, OpenMP's thread barriers cost far more
    than the work (10-100x slower with 2 threads when the machine is busy)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, mirror):
    """data/ with raw -> faces -> lr -> parsing for 6 CelebA and 3 Helen mirror photos."""
    m = mirror
    ids = pd.read_csv(m / "celeba" / "identity.csv")
    ids = ids[ids.face_extent_px > 120].groupby("identity").head(2).iloc[:6]
    hel = pd.read_csv(m / "helen" / "test" / "index.csv").iloc[:3]
    raw = tmp_path_factory.mktemp("raw")
    (raw / "celeba" / "images").mkdir(parents=True)
    (raw / "helen" / "test").mkdir(parents=True)
    ids.to_csv(raw / "celeba" / "identity.csv", index=False)
    hel.to_csv(raw / "helen" / "test" / "index.csv", index=False)
    for f in ids.file:
        os.symlink(m / "celeba" / "images" / f, raw / "celeba" / "images" / f)
    for f in hel.file:
        for ext in (".jpg", ".pts"):
            n = Path(f).with_suffix(ext).name
            os.symlink(m / "helen" / "test" / n, raw / "helen" / "test" / n)
    data = tmp_path_factory.mktemp("data")
    idx = build_raw_index(raw)
    faces, _ = prepare(idx, data / "faces", {"workers": 1, "split_fractions": [0.5, 0.0, 0.5], "helen50_n": 2},
                       progress=False, raw_root=raw)
    degrade_all(data / "faces", data / "lr", {"scales": [4, 8], "workers": 1}, progress=False)
    parse_all(data / "faces", data / "parsing", {"parser": "landmark", "scales": [4, 8]}, progress=False)
    return data
