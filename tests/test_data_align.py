"""Alignment on real faces, splits, the raw download/index path, and the rejects table."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fsrlib.data.align import (
    FaceAligner,
    apply_transform,
    key_points,
    read_pts,
    similarity_from_points,
    split_identities,
    template_points,
)
from fsrlib.io import OfflineError
from fsrlib.pipeline.prepare import prepare

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def aligner():
    return FaceAligner()


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


def _eyes_mouth_in_crop(aligner, crop):
    """Independent check: detect the face again on the 128 crop itself."""
    det = aligner.detect(np.ascontiguousarray(crop))
    assert det is not None, "no face found again in the aligned crop"
    return key_points(det[0])


# ---------------------------------------------------------------------- geometry
def test_template_definition():
    assert np.allclose(template_points(128, 1.0), [[44, 50], [84, 50], [64, 94]])
    t = template_points(128, 1.2)
    assert np.allclose(t[0], 64 + (np.array([44, 50]) - 64) / 1.2)
    assert np.allclose(template_points(256, 1.0)[2], (np.array([64, 94]) + 0.5) * 2 - 0.5)


def test_similarity_recovers_a_known_transform():
    a, t = 0.7 * np.array([np.cos(0.3), np.sin(0.3)]), np.array([5.0, -3.0])
    m = np.array([[a[0], -a[1], t[0]], [a[1], a[0], t[1]]])
    src = np.array([[10.0, 20.0], [50.0, 22.0], [30.0, 70.0], [5.0, 5.0]])
    assert np.allclose(similarity_from_points(src, apply_transform(m, src)), m)


# ---------------------------------------------------------------------- real faces
def _sample(mirror, n_celeba=6, n_helen=4):
    ids = pd.read_csv(mirror / "celeba" / "identity.csv")
    big = ids[ids.face_extent_px > 120].iloc[::97][:n_celeba]
    cel = [mirror / "celeba" / "images" / f for f in big.file]
    hel = sorted((mirror / "helen" / "test").glob("*.jpg"))[:n_helen]
    return cel, hel


def test_alignment_puts_eyes_on_the_template(mirror, aligner):
    from fsrlib.io import read_image

    cel, hel = _sample(mirror)
    t = aligner.template
    errs = []
    for f in cel + hel:
        rgb, _ = read_image(f)
        r = aligner.align(rgb)
        assert r["ok"], f
        assert r["image"].shape == (128, 128, 3) and r["image"].dtype == np.uint8
        # transformed landmarks: least-squares fit of 3 points, each within a few px
        kp = key_points(r["landmarks"])
        assert np.abs(kp - t).max() < 4.0, (f, kp, t)
        # independent: the face found again on the crop has its eyes where the template says
        kp2 = _eyes_mouth_in_crop(aligner, r["image"])
        errs.append(np.linalg.norm(kp2[:2] - t[:2], axis=1).max())
    assert np.median(errs) < 2.5 and max(errs) < 5.0, errs


def test_helen_ground_truth_lands_in_the_frame(mirror, aligner):
    from fsrlib.io import read_image

    _, hel = _sample(mirror, 0, 4)
    for f in hel:
        rgb, _ = read_image(f)
        gt = read_pts(f.with_suffix(".pts"))
        assert gt.shape == (68, 2)
        r = aligner.align(rgb)
        gt128 = apply_transform(r["M"], gt)
        # ground-truth eye centres near the template, and near the detected points
        assert np.abs(key_points(gt128)[:2] - aligner.template[:2]).max() < 5.0
        assert np.linalg.norm(gt128 - r["landmarks"], axis=1).mean() < 4.0


def test_astronaut_is_aligned(aligner, astronaut):
    r = aligner.align(astronaut)
    assert r["ok"] and r["n_faces"] == 1
    kp = _eyes_mouth_in_crop(aligner, r["image"])
    assert np.linalg.norm(kp[:2] - aligner.template[:2], axis=1).max() < 4.0


# ---------------------------------------------------------------------- splits
def test_identity_split_is_deterministic_and_disjoint():
    ids = list(range(1000, 1250))
    a = split_identities(ids, (0.8, 0.1, 0.1), seed=0)
    assert a == split_identities(reversed(ids), (0.8, 0.1, 0.1), seed=0)
    assert a != split_identities(ids, (0.8, 0.1, 0.1), seed=1)
    counts = pd.Series(a).value_counts()
    assert counts["train"] == 200 and counts["val"] == 25 and counts["test"] == 25


# ---------------------------------------------------------------------- bad inputs -> rejects
@pytest.fixture(scope="module")
def bad_raw(tmp_path_factory, astronaut, mirror):
    """A raw folder of tricky files and its index."""
    root = tmp_path_factory.mktemp("raw")
    d = root / "celeba" / "images"
    d.mkdir(parents=True)
    up = Image.fromarray(astronaut)
    up.save(d / "good.jpg", quality=95)
    data = (d / "good.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))
    (d / "empty.jpg").write_bytes(b"")
    from skimage import data as skdata

    Image.fromarray(skdata.coffee()).save(d / "noface.jpg")
    up.resize((180, 180), Image.LANCZOS).save(d / "small.jpg")             # face ~55 px
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:40, :40, 3] = 0
    Image.fromarray(rgba).save(d / "transparent.png")
    rgba[:40, :40, 3] = 255
    Image.fromarray(rgba).save(d / "opaque_alpha.png")
    up.convert("L").save(d / "gray.jpg")
    up.convert("CMYK").save(d / "cmyk.jpg", quality=95)
    # stored rotated 90 degrees counter-clockwise, EXIF orientation 6 says "rotate clockwise to view"
    rot = Image.fromarray(np.ascontiguousarray(np.rot90(astronaut, 1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    rot.save(d / "exif_rotated.jpg", exif=exif, quality=95)
    # a real mirror face whose index says it was tiny in the original photo
    ids = pd.read_csv(mirror / "celeba" / "identity.csv")
    tiny = ids[ids.face_extent_px < 60].iloc[0]
    Image.open(mirror / "celeba" / "images" / tiny.file).save(d / "tiny_in_index.jpg")
    files = ["good.jpg", "truncated.jpg", "corrupt.jpg", "empty.jpg", "noface.jpg", "small.jpg", "transparent.png",
             "opaque_alpha.png", "gray.jpg", "cmyk.jpg", "exif_rotated.jpg", "tiny_in_index.jpg", "missing.jpg"]
    ext = [np.nan] * len(files)
    ext[files.index("tiny_in_index.jpg")] = float(tiny.face_extent_px)
    idx = pd.DataFrame({"file": [f"celeba/images/{f}" for f in files], "dataset": "celeba", "orig_split": "",
                        "identity": pd.array(range(len(files)), dtype="Int64"), "face_extent_px": ext,
                        "has_pts": False})
    return root, idx


@pytest.fixture(scope="module")
def bad_prepared(bad_raw, tmp_path_factory):
    root, idx = bad_raw
    out = tmp_path_factory.mktemp("faces")
    faces, rejects = prepare(idx, out, {"workers": 1}, progress=False, raw_root=root)
    return out, faces, rejects


def test_every_bad_input_ends_in_the_rejects_table(bad_prepared):
    out, faces, rejects = bad_prepared
    reason = dict(zip(rejects.file.str.split("/").str[-1], rejects.reason))
    assert reason["truncated.jpg"] == "unreadable"
    assert reason["corrupt.jpg"] == "unreadable"
    assert reason["empty.jpg"] == "unreadable"
    assert reason["missing.jpg"] == "unreadable"
    assert reason["noface.jpg"] == "no_face"
    assert reason["small.jpg"] == "too_small"
    assert reason["tiny_in_index.jpg"] == "too_small"
    assert reason["transparent.png"] == "transparent"
    assert reason["gray.jpg"] == "grayscale"
    assert set(faces.name) == {"good", "opaque_alpha", "cmyk", "exif_rotated"}
    assert len(faces) + len(rejects) == 13
    assert list(rejects.columns) == ["file", "dataset", "reason", "detail"]
    assert (out / "rejects.csv").exists() and (out / "faces.csv").exists()


def test_handled_inputs_are_aligned_correctly(bad_prepared, aligner):
    out, faces, _ = bad_prepared
    notes = dict(zip(faces.name, faces.notes.fillna("")))
    assert "cmyk_to_rgb" in notes["cmyk"]
    assert "exif_rotated" in notes["exif_rotated"]
    assert "opaque_alpha_dropped" in notes["opaque_alpha"]
    for name in ("good", "cmyk", "exif_rotated", "opaque_alpha"):
        img = np.asarray(Image.open(out / "celeba" / f"{name}.png"))
        assert img.shape == (128, 128, 3)
        kp = _eyes_mouth_in_crop(aligner, img)
        assert np.linalg.norm(kp[:2] - aligner.template[:2], axis=1).max() < 4.0, name
    # the EXIF-rotated photo gives the same crop as the upright one
    a = np.asarray(Image.open(out / "celeba" / "good.png")).astype(int)
    b = np.asarray(Image.open(out / "celeba" / "exif_rotated.png")).astype(int)
    assert np.abs(a - b).mean() < 6


def test_prepare_outputs(bad_prepared):
    out, faces, _ = bad_prepared
    for c in ("name", "dataset", "split", "identity", "file", "score", "det_size", "notes", "helen50"):
        assert c in faces.columns
    z = np.load(out / "landmarks.npz")
    assert z["detected"].shape == (len(faces), 68, 2) and z["gt"].shape == (len(faces), 68, 2)
    assert np.isnan(z["gt"]).all()  # no ground truth for these
    assert list(z["keys"]) == [f"celeba/{n}" for n in faces.name]


# ---------------------------------------------------------------------- download / index
def test_fetch_raw_from_a_mirror_and_verify(tmp_path, mirror, monkeypatch):
    import shutil

    from fsrlib.data.download import fetch_raw, verify_raw
    from fsrlib.io import ChecksumError

    # a small mirror with the real layout
    small = tmp_path / "mirror"
    ids = pd.read_csv(mirror / "celeba" / "identity.csv").iloc[:5]
    (small / "celeba" / "images").mkdir(parents=True)
    ids.to_csv(small / "celeba" / "identity.csv", index=False)
    for f in ids.file:
        shutil.copy(mirror / "celeba" / "images" / f, small / "celeba" / "images" / f)
    for split in ("train", "test"):
        (small / "helen" / split).mkdir(parents=True)
        hi = pd.read_csv(mirror / "helen" / split / "index.csv").iloc[:2]
        hi.to_csv(small / "helen" / split / "index.csv", index=False)
        for f in hi.file:
            for ext in (".jpg", ".pts"):
                shutil.copy(mirror / "helen" / split / Path(f).with_suffix(ext).name,
                            small / "helen" / split / Path(f).with_suffix(ext).name)
    monkeypatch.setenv("FSR_DATA_MIRROR", str(small))
    raw = fetch_raw(tmp_path / "raw", progress=False)
    idx = verify_raw(raw)
    assert list(idx.columns) == ["file", "dataset", "orig_split", "identity", "face_extent_px", "has_pts"]
    assert (idx.dataset == "celeba").sum() == 5 and (idx.dataset == "helen").sum() == 4
    assert idx[idx.dataset == "helen"].has_pts.all()
    man = pd.read_csv(raw / "MANIFEST.csv")
    assert not man.file.str.startswith("/").any() and str(small) not in (raw / "SOURCES.json").read_text()
    (raw / idx.file[0]).write_bytes(b"tampered")
    with pytest.raises(ChecksumError):
        verify_raw(raw)


def test_no_mirror_offline_says_how_to_point_at_one(tmp_path, monkeypatch):
    from fsrlib.data.download import fetch_raw

    monkeypatch.delenv("FSR_DATA_MIRROR", raising=False)
    with pytest.raises(OfflineError) as e:
        fetch_raw(tmp_path / "raw", source="mirror", progress=False)
    assert "FSR_DATA_MIRROR=" in str(e.value) and "data: {mirror:" in str(e.value)


def test_public_source_offline_raises_offline_error(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    from fsrlib.data.download import fetch_raw

    def no_net(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", no_net)
    monkeypatch.setenv("FSR_CACHE", str(tmp_path / "cache"))
    with pytest.raises(OfflineError) as e:
        fetch_raw(tmp_path / "raw", source="public", datasets=("helen",), progress=False)
    assert "FSR_DATA_MIRROR" in str(e.value)
