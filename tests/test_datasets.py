"""FaceSRDataset: the documented keys and shapes on a tiny real data root, augmentation
consistency, reproducibility."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fsrlib.data.datasets import FaceSRDataset
from fsrlib.imresize import imresize, imresize_torch
from fsrlib.labels import flip_labels, flip_parts11, parts11

REPO = Path(__file__).resolve().parents[1]
ALL = ("hr", "lr", "lr_up", "labels", "skin", "skin_lr", "parts11", "regions")


@pytest.fixture(scope="module")
def root(tiny_data):
    return tiny_data


@pytest.mark.parametrize("scale", [4, 8])
def test_keys_and_shapes(root, scale):
    ds = FaceSRDataset(root, "celeba", "all", scale=scale, keys=ALL)
    n = 128 // scale
    it = ds[0]
    want = {"hr": (3, 128, 128), "lr": (3, n, n), "lr_up": (3, 128, 128), "labels": (128, 128),
            "skin": (3, 128, 128), "skin_lr": (3, n, n), "parts11": (11, 128, 128), "regions": (4, 128, 128)}
    for k, shp in want.items():
        assert tuple(it[k].shape) == shp, k
        assert it[k].dtype == (torch.int64 if k == "labels" else torch.float32), k
    for k in ("hr", "lr", "lr_up", "skin_lr"):
        assert 0.0 <= float(it[k].min()) and float(it[k].max()) <= 1.0
    for k in ("skin", "parts11", "regions"):
        assert set(torch.unique(it[k]).tolist()) <= {0.0, 1.0}
    assert isinstance(it["name"], str) and it["dataset"] == "celeba" and it["split"] in ("train", "val", "test")
    assert torch.equal(it["skin"][0], (it["labels"] == 1).float())
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["hr"].shape == (3, 3, 128, 128) and batch["lr"].shape == (3, 3, n, n) and len(batch["name"]) == 3


def test_stored_lr_is_the_stage_degradation(root):
    ds = FaceSRDataset(root, "celeba", "all", scale=8, keys=("hr", "lr", "lr_up"))
    it = ds[1]
    hr8 = (it["hr"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    lr = imresize(hr8, 1 / 8)
    assert np.array_equal((it["lr"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8), lr)
    assert np.array_equal((it["lr_up"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8), imresize(lr, 8))
    on = FaceSRDataset(root, "celeba", "all", scale=16, keys=("lr", "lr_up"), lr_source="online")[1]
    assert on["lr"].shape == (3, 8, 8) and on["lr_up"].shape == (3, 128, 128)


def test_splits_and_helen50(root):
    faces = pd.read_csv(root / "faces" / "faces.csv")
    cel = faces[faces.dataset == "celeba"]
    assert cel.groupby("identity").split.nunique().max() == 1  # split by identity
    h = FaceSRDataset(root, "helen", "helen50", scale=8, keys=("hr", "landmarks", "landmarks_gt"))
    assert len(h) == 2 and all(h[i]["split"] == "test" for i in range(2))
    it = h[0]
    assert it["landmarks"].shape == (68, 2) and not torch.isnan(it["landmarks_gt"]).any()
    assert FaceSRDataset(root, "all", "all", limit=4).__len__() == 4
    with pytest.raises(ValueError):
        FaceSRDataset(root, "celeba", "val")  # no val faces with these fractions
    with pytest.raises(ValueError):
        FaceSRDataset(root, keys=("hr", "bogus"))


def test_hflip_flips_every_map_consistently(root):
    base = FaceSRDataset(root, "celeba", "all", scale=4, keys=ALL)
    flip = FaceSRDataset(root, "celeba", "all", scale=4, keys=ALL, augment={"hflip": 1.0})
    a, b = base[2], flip[2]
    for k in ("hr", "lr", "lr_up", "skin", "skin_lr", "regions"):
        assert torch.equal(b[k], torch.flip(a[k], dims=[-1])), k
    assert np.array_equal(b["labels"].numpy(), flip_labels(a["labels"].numpy()))
    assert np.array_equal(b["parts11"].numpy(), flip_parts11(a["parts11"].numpy()))
    # the l/r eye channels really swapped: the image-left eye map is now on the right
    assert np.array_equal(b["parts11"].numpy(), parts11(flip_labels(a["labels"].numpy())))


def test_rescale_regenerates_lr_and_is_reproducible(root):
    kw = dict(scale=8, keys=("hr", "lr", "lr_up", "labels"),
              augment={"rescale": [1.1, 1.3], "hflip": True, "rot90": True}, seed=3)
    ds = FaceSRDataset(root, "celeba", "all", **kw)
    a, b = ds[0], ds[0]
    for k in ("hr", "lr", "lr_up", "labels"):
        assert torch.equal(a[k], b[k])
    hr8 = (a["hr"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    plain = FaceSRDataset(root, "celeba", "all", scale=8, keys=("hr",))[0]["hr"]
    assert not torch.equal(a["hr"], plain)
    lr = imresize(np.ascontiguousarray(hr8), 1 / 8)
    # the LR is the (augmented) HR's stage degradation; rot90 may reorder the passes of a
    # stored LR, so allow one grey level
    assert np.abs((a["lr"].numpy().transpose(1, 2, 0) * 255).round() - lr).max() <= 1
    # torch imresize (quantized) gives the same LR as the numpy path
    t = imresize_torch(a["hr"][None].double(), 1 / 8, quantize=True)[0]
    assert np.array_equal((t.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8), lr)
    ds.set_epoch(1)
    outs = [ds[0]["hr"] for _ in range(2)]
    assert torch.equal(outs[0], outs[1])
    others = [FaceSRDataset(root, "celeba", "all", **kw) for _ in range(1)]
    others[0].set_epoch(1)
    assert torch.equal(others[0][0]["hr"], outs[0])


def test_blind_degradation_mode(root):
    ds = FaceSRDataset(root, "celeba", "all", scale=8, keys=("hr", "lr", "lr_up"), degradation="blind-paper", seed=1)
    it = ds[0]
    assert it["lr"].shape == (3, 16, 16) and it["lr_up"].shape == (3, 128, 128)
    assert torch.equal(it["lr_up"], ds[0]["lr_up"])


def test_missing_stage_outputs_raise(tmp_path, root):
    import shutil

    d = tmp_path / "data"
    shutil.copytree(root / "faces", d / "faces")
    with pytest.raises(FileNotFoundError, match="degrade stage"):
        FaceSRDataset(d, "celeba", "all", keys=("hr", "lr"))[0]
    with pytest.raises(FileNotFoundError, match="parse stage"):
        FaceSRDataset(d, "celeba", "all", keys=("hr", "labels"))[0]


@pytest.mark.parametrize("augment,degradation", [(None, "bicubic"), ({"hflip": 1.0, "rescale": [1.0, 1.3]}, "bicubic"),
                                                 (None, "blind-paper")])
def test_cache_gives_the_same_items_without_decoding_again(root, monkeypatch, augment, degradation):
    from fsrlib.data import datasets as dsm

    kw = dict(scale=8, keys=ALL if degradation == "bicubic" else ("hr", "lr", "lr_up"), augment=augment,
              degradation=degradation, seed=2)
    plain = FaceSRDataset(root, "celeba", "all", **kw)
    cached = FaceSRDataset(root, "celeba", "all", cache=True, **kw)
    first = [cached[i] for i in range(2)]
    reads = []
    monkeypatch.setattr(dsm, "read_u8", lambda p: reads.append(p))  # a decode now would fail
    for ep in (0, 1):
        plain.set_epoch(ep)
        cached.set_epoch(ep)
        for i in range(2):
            a, b = (first[i] if ep == 0 else cached[i]), None
            monkeypatch.undo()
            b = plain[i]
            monkeypatch.setattr(dsm, "read_u8", lambda p: reads.append(p))
            for k, v in b.items():
                assert torch.equal(a[k], v) if isinstance(v, torch.Tensor) else a[k] == v, k
    assert not reads
