"""Shared test fixtures: the face-data mirror and torch's thread count."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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
