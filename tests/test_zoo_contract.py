"""Every registered model honours the zoo's contract (tests/contract.py): a new model file is
tested the moment it registers. Base types are built at every scale they declare; presets
(the same class with other defaults) at x8."""
from __future__ import annotations

import pytest

from contract import check_discriminator, check_sr_model, is_sr_model
from fsrlib.registry import MODELS

# the zoo: every name registered by fsrlib's own files (other test files register toy models)
ZOO = [n for n in MODELS.names() if MODELS.get(n).__module__.startswith("fsrlib.")]
SR = [n for n in ZOO if is_sr_model(n)]
D = [n for n in ZOO if not is_sr_model(n)]
BASES = {n for n in SR if n not in MODELS.presets()}


def test_the_zoo_is_all_here():
    """The registry holds the five papers' methods, the baselines and the discriminators."""
    for n in ("bicubic", "srcnn", "vdsr", "edsr", "srresnet", "sparnet", "sparnethd", "parsingnet", "fishfsrnet",
              "wnet", "aminet", "aminet_s", "pgnet"):
        assert n in SR
    assert set(D) == {"patchgan", "patchgan_ms", "srgan_d"}


@pytest.mark.parametrize("name", SR)
def test_sr_model_contract(name):
    check_sr_model(name, scales=None if name in BASES else (8,))


@pytest.mark.parametrize("name", D)
def test_discriminator_contract(name):
    check_discriminator(name)
