"""MobileFaceNet (strict, sha256-checked load; real faces of celeba_test) and the LFW-style
verification measures."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from fsrlib.metrics.verification import kfold_accuracy, roc_auc, roc_curve, tar_at_far, verification_pairs

WEIGHTS = REPO.parent / "shared" / "models" / "mobilefacenet_casia_068.ckpt"


def test_roc_auc_is_the_pairwise_probability_and_the_roc_area():
    rng = np.random.default_rng(1)
    g, i = rng.normal(1, 1, 200), rng.normal(0, 1, 300)
    brute = np.mean(g[:, None] > i[None, :]) + 0.5 * np.mean(g[:, None] == i[None, :])
    assert roc_auc(g, i) == pytest.approx(brute)
    far, tar = roc_curve(g, i)
    assert np.trapezoid(tar, far) == pytest.approx(brute)
    assert roc_auc(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(0.75)  # ties count 1/2


def test_tar_at_far_uses_the_strict_empirical_threshold():
    imp = np.arange(100, dtype=float)  # FAR 1e-2: one impostor (99) may pass -> threshold 98
    gen = np.array([98.0, 98.5, 99.5, 200.0])
    assert tar_at_far(gen, imp, 1e-2) == pytest.approx(0.75)
    assert tar_at_far(gen, imp, 1e-3) == pytest.approx(0.5)  # FAR 0 below the resolution: above 99


def test_kfold_and_pairs():
    ids = np.repeat(np.arange(10), 3)
    gen, imp = verification_pairs(ids, seed=0)
    assert len(gen) == 10 * 3 * 2 and len(imp) == len(gen)  # every ordered genuine pair i != j
    assert np.all(ids[gen[:, 0]] == ids[gen[:, 1]]) and np.all(ids[imp[:, 0]] != ids[imp[:, 1]])
    acc, _ = kfold_accuracy(np.full(50, 1.0), np.full(50, 0.0))
    assert acc == 1.0


def test_dlib_subset_keeps_whole_identities():
    from fsrlib.pipeline.downstream import dlib_subset

    m = dlib_subset([5, 5, 3, 3, 3, 9, 9], 5)
    assert m.tolist() == [True, True, True, True, True, False, False]


@pytest.fixture(scope="module")
def faces(mirror):
    from fsrlib.data.align import FaceAligner
    from fsrlib.io import read_image

    root = mirror / "celeba_test"
    if not root.is_dir():
        pytest.skip("celeba_test not in the mirror")
    ids = pd.read_csv(root / "identity.csv").sort_values("file")
    ids = ids[ids.identity.isin(sorted(set(ids.identity))[:20])].groupby("identity").head(2)
    al = FaceAligner(128, 1.2, 640, 1)
    imgs, lms, lab = [], [], []
    for r in ids.itertuples():
        a = al.align(read_image(root / "images" / r.file)[0])
        if a["ok"]:
            imgs.append(a["image"]), lms.append(a["landmarks"]), lab.append(r.identity)
    return imgs, np.stack(lms), np.array(lab)


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="MobileFaceNet weights not in ../shared/models")
def test_mobilefacenet_verifies_real_faces(faces):
    from fsrlib.metrics.face import evaluate_downstream
    from fsrlib.metrics.mobilefacenet import MobileFaceNetEmbedder, align_sphereface

    imgs, lms, lab = faces
    assert align_sphereface(imgs[0], lms[0]).shape == (112, 96, 3)
    e = MobileFaceNetEmbedder(WEIGHTS, flip=True).embed(imgs, lms)
    assert e.shape == (len(imgs), 256) and np.isfinite(e).all()
    _, agg, missing = evaluate_downstream(imgs, imgs, identities=lab, mobilefacenet_weights=WEIGHTS,
                                          identity=False, progress=False)
    assert agg["verif_mobilefacenet_n_identities"] >= 19
    assert agg["verif_mobilefacenet_auc"] > 0.9 and agg["verif_mobilefacenet_acc10"] > 0.8
    assert agg["identity_cos_mobilefacenet"] == pytest.approx(1.0)
    assert "verif_dlib_acc10" in missing  # dlib's descriptors were switched off, and say so


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="MobileFaceNet weights not in ../shared/models")
def test_mobilefacenet_refuses_other_bytes(tmp_path):
    from fsrlib.metrics.mobilefacenet import load_mobilefacenet

    bad = tmp_path / "m.ckpt"
    shutil.copy(WEIGHTS, bad)
    with open(bad, "r+b") as f:
        f.seek(-1, 2)
        b = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(ValueError, match="sha256"):
        load_mobilefacenet(bad)
    with pytest.raises(FileNotFoundError):
        load_mobilefacenet(Path(tmp_path / "none.ckpt"))


PFLD_WEIGHTS = REPO.parent / "shared" / "models" / "pfld_68pt.onnx"


@pytest.mark.skipif(not PFLD_WEIGHTS.is_file(), reason="PFLD weights not in ../shared/models")
def test_pfld_and_dlib_landmarks_against_helen_truth(mirror):
    from fsrlib.data.align import FaceAligner, apply_transform, read_pts
    from fsrlib.io import read_image
    from fsrlib.metrics.face import evaluate_downstream

    al = FaceAligner(128, 1.2, 640, 1)
    imgs, gts = [], []
    for f in sorted((mirror / "helen" / "test").glob("*.jpg"))[:12]:
        gt = read_pts(f.with_suffix(".pts"))
        r = al.align(read_image(f)[0], gt_landmarks=gt, use_gt_if_missed=True)
        if r["ok"]:
            imgs.append(r["image"]), gts.append(apply_transform(r["M"], gt))
    _, agg, _ = evaluate_downstream(imgs, imgs, gt_landmarks=np.stack(gts), identity=False, pfld_weights=PFLD_WEIGHTS,
                                    progress=False)
    assert agg["lmk_pfld_nme_io"] == pytest.approx(0.0) and agg["lmk_pfld_auc10"] == pytest.approx(100.0)
    assert 0.0 < agg["hr_lmk_pfld_nme_gt_io"] < 0.08 and 0.0 < agg["hr_lmk_nme_gt_io"] < 0.08
