"""Label space and derived maps, the landmark parser on real faces, BiSeNet (architecture,
official state-dict keys, preprocessing, offline error), and the parse stage.

BiSeNet's real weights are not on this machine: its *labelling* of eyes, nose and mouth can
only be checked with them; here we test what holds without them (builds, loads the official
key set strictly, preprocessing, shapes, the offline error)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fsrlib.io import OfflineError
from fsrlib.labels import (
    CLASSES,
    PARTS11_NAMES,
    class_index,
    colorize,
    flip_labels,
    flip_parts11,
    overlay,
    parts11,
    regions4,
    skin_lr,
    skin_map,
)
from fsrlib.parsing import make_parser
from fsrlib.pipeline.parse import parse_all

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def aligned(mirror):
    """A few real aligned faces: (crops, detected landmarks, Helen ground truth in the frame)."""
    from fsrlib.data.align import FaceAligner, apply_transform, read_pts
    from fsrlib.io import read_image

    al = FaceAligner()
    files = sorted((mirror / "helen" / "test").glob("*.jpg"))[:10]
    crops, lms, gts = [], [], []
    for f in files:
        r = al.align(read_image(f)[0])
        if not r["ok"] or len(crops) == 5:
            continue
        crops.append(r["image"])
        lms.append(r["landmarks"])
        gts.append(apply_transform(r["M"], read_pts(f.with_suffix(".pts"))))
    return np.stack(crops), np.stack(lms), np.stack(gts)


# ---------------------------------------------------------------------- label space
def test_label_space():
    assert len(CLASSES) == 19 and CLASSES[1] == "skin" and CLASSES[10] == "nose" and CLASSES[18] == "hat"
    assert PARTS11_NAMES == ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "mouth", "l_lip",
                             "l_ear", "r_ear")
    assert colorize(np.arange(19).reshape(1, 19)).shape == (1, 19, 3)


def test_derived_maps():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 19, (128, 128)).astype(np.uint8)
    lab[40:90, 30:100] = 1
    s = skin_map(lab)
    assert s.dtype == np.float32 and set(np.unique(s)) <= {0.0, 1.0} and s[50, 50] == 1
    for sc in (4, 8, 16):
        lr = skin_lr(lab, sc)
        assert lr.shape == (128 // sc, 128 // sc) and lr.min() >= 0 and lr.max() <= 1
    assert np.allclose(skin_lr(np.ones((128, 128), np.uint8), 8), 1.0)
    p = parts11(lab)
    assert p.shape == (11, 128, 128) and np.array_equal(p[0], s)
    assert np.array_equal(p[5], (lab == 10).astype(np.float32))
    r = regions4(lab)
    assert r.shape == (4, 128, 128) and np.array_equal(r[3], np.isin(lab, (11, 12, 13)).astype(np.float32))
    assert overlay(np.zeros((128, 128, 3), np.uint8), lab).shape == (128, 128, 3)


def test_flip_swaps_left_and_right():
    lab = np.zeros((8, 8), np.uint8)
    lab[2, 1] = class_index("l_eye")
    lab[2, 6] = class_index("r_eye")
    lab[5, 0] = class_index("l_brow")
    f = flip_labels(lab)
    assert f[2, 6] == class_index("r_eye") and f[2, 1] == class_index("l_eye")
    assert f[5, 7] == class_index("r_brow")
    rng = np.random.default_rng(1)
    lab = rng.integers(0, 19, (32, 32)).astype(np.uint8)
    assert np.array_equal(flip_parts11(parts11(lab)), parts11(flip_labels(lab)))
    assert np.array_equal(flip_labels(flip_labels(lab)), lab)


# ---------------------------------------------------------------------- landmark parser on real faces
def _at(lab, p):
    x, y = int(round(p[0])), int(round(p[1]))
    return int(lab[y, x])


def test_landmark_parser_labels_eyes_nose_mouth_where_the_landmarks_are(aligned):
    crops, lms, gts = aligned
    parser = make_parser("landmark")
    labels = parser.parse(crops, lms)
    assert labels.shape == (len(crops), 128, 128) and labels.dtype == np.uint8
    for lab, lm, gt in zip(labels, lms, gts):
        assert _at(lab, lm[36:42].mean(0)) == class_index("l_eye")
        assert _at(lab, lm[42:48].mean(0)) == class_index("r_eye")
        assert _at(lab, (lm[30] + lm[33]) / 2) == class_index("nose")
        assert _at(lab, lm[19]) == class_index("l_brow") and _at(lab, lm[24]) == class_index("r_brow")
        assert _at(lab, (lm[51] + lm[62]) / 2) == class_index("u_lip")
        assert _at(lab, (lm[57] + lm[66]) / 2) == class_index("l_lip")
        assert _at(lab, (lm[3] + lm[30]) / 2) == class_index("skin")  # cheek
        assert _at(lab, (2, 2)) == 0 and _at(lab, (125, 125)) == 0
        # and against the *ground-truth* landmarks (independent of the points it drew from)
        assert _at(lab, gt[36:42].mean(0)) == class_index("l_eye")
        assert _at(lab, gt[42:48].mean(0)) == class_index("r_eye")
        assert _at(lab, (gt[30] + gt[33]) / 2) == class_index("nose")
        assert _at(lab, gt[48:60].mean(0)) in (class_index("mouth"), class_index("u_lip"), class_index("l_lip"))
    # the image-left eye is on the left
    assert np.all(lms[:, 36:42, 0].mean(1) < lms[:, 42:48, 0].mean(1))


def test_landmark_parser_rejects_bad_landmarks():
    with pytest.raises(ValueError):
        make_parser("landmark").parse(np.zeros((1, 128, 128, 3), np.uint8), np.full((1, 68, 2), np.nan))
    with pytest.raises(ValueError):
        make_parser("nope")


# ---------------------------------------------------------------------- BiSeNet
def test_bisenet_builds_and_loads_the_official_keys_strictly():
    from fsrlib.parsing.bisenet import BiSeNet, load_state_dict_official, official_key_shapes

    net = BiSeNet(19)
    shapes = official_key_shapes(19)
    assert set(net.state_dict()) == set(shapes)
    g = torch.Generator().manual_seed(0)
    sd = {k: (torch.randn(s, generator=g) if s else torch.tensor(0)) for k, s in shapes.items()}
    for k in sd:
        if k.endswith("running_var"):
            sd[k] = sd[k].abs() + 0.5
    net.load_state_dict(sd, strict=True)
    key = "cp.resnet.layer3.0.downsample.0.weight"
    assert torch.equal(net.state_dict()[key], sd[key])
    # an old-style checkpoint: DataParallel prefix and no num_batches_tracked
    old = {"module." + k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    load_state_dict_official(BiSeNet(19), old)
    bad = dict(sd)
    bad.pop("ffm.conv1.weight")
    with pytest.raises(RuntimeError):
        BiSeNet(19).load_state_dict(bad, strict=True)
    n = sum(p.numel() for p in net.parameters())
    assert 13.0e6 < n < 13.6e6


def test_bisenet_forward_shapes_and_parser_output():
    from fsrlib.parsing.bisenet import BiSeNet, BiSeNetParser

    torch.manual_seed(0)
    net = BiSeNet(19).eval()
    with torch.no_grad():
        outs = net(torch.randn(1, 3, 96, 64))
    assert len(outs) == 3 and all(o.shape == (1, 19, 96, 64) for o in outs)
    p = BiSeNetParser(model=net, batch_size=2)
    lab = p.parse(np.random.default_rng(0).integers(0, 256, (1, 128, 128, 3), dtype=np.uint8))
    assert lab.shape == (1, 128, 128) and lab.dtype == np.uint8 and lab.max() < 19


def test_bisenet_preprocessing():
    import torch.nn.functional as F

    from fsrlib.parsing.bisenet import IMAGENET_MEAN, IMAGENET_STD, labels_512_to, preprocess

    img = np.full((128, 128, 3), 200, np.uint8)
    x = preprocess(img)
    assert x.shape == (1, 3, 512, 512)
    for c in range(3):
        assert torch.allclose(x[0, c], torch.tensor((200 / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]), atol=1e-6)
    # 128 -> 512 bilinear: same as torch's half-pixel bilinear up to uint8 rounding
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    x = preprocess(img)[0] * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    ref = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255, size=(512, 512),
                        mode="bilinear", align_corners=False)[0]
    assert (x.double() - ref).abs().max() < 1.01 / 255  # PIL works in fixed point on uint8
    lab512 = np.repeat(np.repeat(np.arange(128 * 128).reshape(128, 128), 4, 0), 4, 1)
    assert np.array_equal(labels_512_to(lab512, 128), np.arange(128 * 128).reshape(128, 128))


def test_bisenet_offline_raises_a_clear_error(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    monkeypatch.setenv("FSR_CACHE", str(tmp_path))

    def no_net(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", no_net)
    with pytest.raises(OfflineError) as e:
        make_parser("bisenet")
    msg = str(e.value)
    assert "79999_iter.pth" in msg and "landmark" in msg and "FSR_CACHE" in msg
    with pytest.raises(OfflineError):
        make_parser("bisenet", offline=True)
    with pytest.raises(OfflineError):
        make_parser("bisenet", weights=tmp_path / "nope.pth")


# ---------------------------------------------------------------------- the stage
def test_parse_all_writes_labels_maps_and_parser_json(tmp_path, aligned):
    import json

    crops, lms, gts = aligned
    faces = tmp_path / "faces"
    (faces / "helen").mkdir(parents=True)
    names = [f"f{i}" for i in range(len(crops))]
    for n, c in zip(names, crops):
        Image.fromarray(c).save(faces / "helen" / f"{n}.png")
    pd.DataFrame({"name": names, "dataset": "helen", "split": "test"}).to_csv(faces / "faces.csv", index=False)
    np.savez(faces / "landmarks.npz", keys=np.array([f"helen/{n}" for n in names]), detected=lms.astype(np.float32),
             gt=gts.astype(np.float32), M=np.zeros((len(names), 2, 3), np.float32))
    info = parse_all(faces, tmp_path / "parsing", {"parser": "landmark", "scales": [4, 8]}, progress=False)
    assert info["parser"] == "landmark" and info["n_faces"] == len(names)
    j = json.loads((tmp_path / "parsing" / "parser.json").read_text())
    assert j["parser"] == "landmark" and "limits" in j
    lab = np.asarray(Image.open(tmp_path / "parsing" / "labels" / "helen" / "f0.png"))
    assert lab.shape == (128, 128) and lab.max() < 19
    assert np.array_equal(lab, make_parser("landmark").parse(crops[:1], lms[:1])[0])
    sk = np.asarray(Image.open(tmp_path / "parsing" / "skin_lr" / "x8" / "helen" / "f0.png"))
    assert sk.shape == (16, 16) and np.abs(sk / 255.0 - skin_lr(lab, 8)).max() <= 0.5 / 255 + 1e-6
