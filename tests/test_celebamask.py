"""CelebAMask-HQ human labels: mirror -> raw index -> prepare (dlib alignment) -> warped labels
in fsrlib's classes; and the parsing scores against a hand-computed example."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fsrlib.data.celebamask import CM_CLASSES, CM_TO_FSRLIB, to_fsrlib
from fsrlib.data.download import build_raw_index, fetch_raw
from fsrlib.labels import CLASSES
from fsrlib.pipeline.prepare import prepare


def test_class_map_by_name_swaps_subject_left():
    assert CLASSES[CM_TO_FSRLIB[CM_CLASSES.index("l_eye")]] == "r_eye"   # subject's left = image right
    assert CLASSES[CM_TO_FSRLIB[CM_CLASSES.index("r_brow")]] == "l_brow"
    assert CLASSES[CM_TO_FSRLIB[CM_CLASSES.index("l_lip")]] == "l_lip"   # lower lip, not a side
    assert CLASSES[CM_TO_FSRLIB[CM_CLASSES.index("hair")]] == "hair"
    assert sorted(CM_TO_FSRLIB.tolist()) == list(range(19))
    with pytest.raises(ValueError):
        to_fsrlib(np.array([[19]], np.uint8))


def test_warped_labels_follow_the_landmarks(mirror, tmp_path):
    cm = mirror / "celebamask_hq_mini"
    if not cm.is_dir():
        pytest.skip("no celebamask_hq_mini in the mirror")
    # a small mirror with 4 test faces, through the same download code path
    small = tmp_path / "mirror" / "celebamask_hq_mini" / "test"
    ids = sorted(p.stem for p in (cm / "test" / "images").glob("*.jpg"))[:4]
    for sub, ext in (("images", "jpg"), ("masks", "png")):
        (small / sub).mkdir(parents=True)
        for i in ids:
            (small / sub / f"{i}.{ext}").symlink_to(cm / "test" / sub / f"{i}.{ext}")
    (small.parent / "train" / "images").mkdir(parents=True)
    (small.parent / "train" / "masks").mkdir(parents=True)
    raw = fetch_raw(tmp_path / "raw", "mirror", mirror=tmp_path / "mirror", datasets=["celebamask"], progress=False)
    idx = build_raw_index(raw)
    assert set(idx.dataset) == {"celebamask"} and set(idx.orig_split) == {"test"} and len(idx) == 4
    faces, rejects = prepare(idx, tmp_path / "faces", {"workers": 1}, progress=False, raw_root=raw)
    assert len(faces) + len(rejects) == 4 and len(faces) >= 3
    assert set(faces.split) == {"test"}
    lms = np.load(tmp_path / "faces" / "landmarks.npz")
    keys = list(lms["keys"])
    hits = {"l_eye": 0, "r_eye": 0, "nose": 0, "mouth": 0}
    for r in faces.itertuples():
        lab = np.asarray(Image.open(tmp_path / "faces" / "labels" / "celebamask" / f"{r.name}.png"))
        assert lab.shape == (128, 128) and lab.max() < 19
        lm = lms["detected"][keys.index(f"celebamask/{r.name}")]

        def at(p):  # the classes in the 3x3 pixels around a point
            x, y = np.round(p).astype(int)
            return {CLASSES[v] for v in lab[y - 1:y + 2, x - 1:x + 2].ravel()}
        hits["l_eye"] += bool(at(lm[36:42].mean(0)) & {"l_eye", "eye_g"})     # image-left eye
        hits["r_eye"] += bool(at(lm[42:48].mean(0)) & {"r_eye", "eye_g"})
        hits["nose"] += "nose" in at(lm[30])
        hits["mouth"] += bool(at(lm[48:60].mean(0)) & {"mouth", "u_lip", "l_lip"})
    assert all(v == len(faces) for v in hits.values()), hits


def test_scores_match_hand_computed_iou():
    from fsrlib.parsing.scoring import confusion, scores
    gt = np.array([[0, 0, 1, 1],
                   [0, 1, 1, 1],
                   [0, 10, 10, 1]])
    pr = np.array([[0, 1, 1, 1],
                   [0, 1, 1, 0],
                   [0, 10, 1, 1]])
    c = confusion(gt, pr)
    s = scores(c, producible=(0, 1, 10))
    # skin (1): gt 6 px, pred 7 px, overlap 5 -> IoU 5/8, F1 10/13
    assert s["iou"]["skin"] == pytest.approx(5 / 8)
    assert s["f1"]["skin"] == pytest.approx(10 / 13)
    # bg: gt 4, pred 4, overlap 3 -> 3/5; nose: gt 2, pred 1, overlap 1 -> 1/2
    assert s["iou"]["bg"] == pytest.approx(3 / 5)
    assert s["iou"]["nose"] == pytest.approx(1 / 2)
    assert s["miou_producible"] == pytest.approx((5 / 8 + 3 / 5 + 1 / 2) / 3)
    # over the 19 classes: absent classes (no gt, no pred) are left out, not counted as 0 or 1
    assert s["miou"] == pytest.approx((5 / 8 + 3 / 5 + 1 / 2) / 3)
    assert np.isnan(s["iou"]["hair"])



def test_derived_map_scores():
    from fsrlib.parsing.scoring import confusion, derived_scores
    gt = np.array([[4, 5, 1, 1]])      # l_eye, r_eye, skin, skin
    pr = np.array([[4, 4, 1, 0]])
    d = derived_scores(confusion(gt, pr))
    assert d["region_eyes"]["iou"] == pytest.approx(1.0)     # both eyes in the union
    assert d["parts11_r_eye"]["iou"] == pytest.approx(0.0)
    assert d["skin_map"]["iou"] == pytest.approx(1 / 2)


def test_one_training_step_lowers_the_loss(mirror, tmp_path):
    import torch

    from fsrlib.labels import flip_labels
    from fsrlib.parsing.bisenet import BiSeNet
    from fsrlib.parsing.training import augment_batch, parser_loss, train_step
    cm = mirror / "celebamask_hq_mini" / "test"
    if not cm.is_dir():
        pytest.skip("no celebamask_hq_mini in the mirror")
    # real faces and labels (the 512 px originals reduced to 128 px, nearest for the labels)
    ids = sorted(p.stem for p in (cm / "images").glob("*.jpg"))[:4]
    imgs = np.stack([np.asarray(Image.open(cm / "images" / f"{i}.jpg").convert("RGB").resize((128, 128))) for i in ids])
    labs = np.stack([to_fsrlib(np.asarray(Image.open(cm / "masks" / f"{i}.png").resize((128, 128), Image.NEAREST)))
                     for i in ids])
    rng = np.random.default_rng(0)
    # flip augmentation swaps l/r classes: a flipped face with hflip forced
    x, y = augment_batch(imgs[:1], labs[:1], np.random.default_rng(1), {"hflip": True, "scale": None, "color": 0})
    flipped = not np.array_equal(y[0].numpy(), labs[0])
    if flipped:
        assert np.array_equal(y[0].numpy(), flip_labels(labs[0]))
    torch.manual_seed(0)
    model = BiSeNet(19, width=0.125)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = augment_batch(imgs, labs, rng, {"hflip": False, "scale": None, "color": 0})
    model.train()
    with torch.no_grad():
        before = float(parser_loss(model, x, y))
    train_step(model, opt, x, y)
    with torch.no_grad():
        after = float(parser_loss(model, x, y))
    assert after < before
