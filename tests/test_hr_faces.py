"""SPARNetHD's 512-px HR faces (CelebAMask-HQ of the mirror) through FaceSRDataset; the
3-scale PatchGAN refuses inputs its third discriminator cannot see."""
from pathlib import Path

import pytest
import torch

from fsrlib.data.datasets import FaceSRDataset
from fsrlib.data.hr_faces import prepare_hr_faces
from fsrlib.models import build_model

MIRROR = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


@pytest.mark.skipif(not (MIRROR / "celebamask_hq_mini").is_dir(), reason="mirror not on this machine")
def test_512_faces_blind(tmp_path):
    root = prepare_hr_faces(tmp_path / "hr512", 512, "celebamask_hq", mirror=MIRROR, limit=2, splits=("test",))
    ds = FaceSRDataset(root=root, dataset="celebamask_hq", split="test", scale=8, keys=("hr", "lr", "lr_up"),
                       hr_size=512, degradation="blind-paper", lr_source="online")
    item = ds[0]
    assert len(ds) == 2 and item["hr"].shape == (3, 512, 512) and item["lr_up"].shape == (3, 512, 512)
    assert item["lr"].shape == (3, 64, 64)
    assert not torch.equal(item["lr_up"], item["hr"])  # degraded


def test_patchgan_ms_input_size():
    d = build_model({"type": "patchgan_ms", "base_ch": 4, "max_ch": 8})
    with pytest.raises(ValueError, match="192 px"):
        d(torch.rand(1, 3, 128, 128))
    assert len(d(torch.rand(1, 3, 192, 192))) == 3
