"""The ``fsr upscale`` and ``fsr evaluate`` commands, run in-process through ``fsrlib.cli.main``
with tiny checkpoints written here in the trainer's model.pt format."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fsrlib.cli import main

REPO = Path(__file__).resolve().parents[1]


# ====================================================================== helpers
def make_checkpoint(runs_root: Path, method: str, scale: int, model: dict, seed: int = 0) -> Path:
    """``runs_root/<method>-x<scale>/model.pt`` as ``Trainer._finish`` writes it (random init
    weights: the tests check plumbing, not quality)."""
    from fsrlib.inference import MODEL_FILE_FORMAT
    from fsrlib.models.common import count_params
    from fsrlib.registry import MODELS
    from fsrlib.train.schema import validate_config

    c = validate_config({"method": method, "scale": scale, "iters": 1, "model": model, "losses": [{"type": "l1"}],
                         "run": f"{method}-x{scale}"})
    torch.manual_seed(seed)
    net = MODELS.build(c["model"])
    path = runs_root / c["run"] / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": MODEL_FILE_FORMAT, "model": c["model"], "state_dict": net.state_dict(),
                "weights": "raw", "run_config": c, "iteration": 1, "params": count_params(net),
                "input_kind": getattr(net, "input_kind", "lr"), "prior": None}, path)
    return path


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    import skimage.data

    p = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(p)
    return p


@pytest.fixture(scope="module")
def face_box(astronaut):
    """The astronaut's face: (x0, y0, x1, y1) of its 68 landmarks, found independently."""
    from fsrlib.data.align import FaceAligner

    lm = FaceAligner().detect(_rgb(astronaut))[0]
    return (*lm.min(0), *lm.max(0))


def _check_only_face_changed(photo: np.ndarray, result: np.ndarray, box) -> None:
    assert result.shape == photo.shape and result.dtype == np.uint8
    changed = np.abs(result.astype(int) - photo.astype(int)).max(2) > 0
    assert changed.sum() > 2000, "the face was not replaced"
    x0, y0, x1, y1 = box
    cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
    assert changed[cy - 10:cy + 10, cx - 10:cx + 10].mean() > 0.5  # the middle of the face
    # changes stay within the aligned crop around the face: the landmark box grown by its size
    # (the 128 template at margin 1.2 spans ~2.3x the eye-to-mouth layout)
    w, h = x1 - x0, y1 - y0
    ys, xs = np.nonzero(changed)
    assert xs.min() >= x0 - w and xs.max() <= x1 + w and ys.min() >= y0 - h and ys.max() <= y1 + h
    # and far from it, nothing moved
    assert not changed[:, : max(0, int(x0 - w))].any() and not changed[int(y1 + h) + 1:].any()


# ====================================================================== upscale
def test_upscale_bicubic_default_checkpoint_and_out(tmp_path, monkeypatch, astronaut, face_box, capsys):
    monkeypatch.chdir(tmp_path)
    make_checkpoint(tmp_path / "runs", "bicubic", 8, {"type": "bicubic"})
    assert main(["upscale", str(astronaut), "--method", "bicubic", "--scale", "8", "--simulate"]) == 0
    out = tmp_path / "astronaut_fsr_bicubic_x8.png"
    side = tmp_path / "astronaut_fsr_bicubic_x8_side_by_side.png"
    assert out.is_file() and side.is_file()
    assert "wrote" in capsys.readouterr().out
    photo = _rgb(astronaut)
    _check_only_face_changed(photo, _rgb(out), face_box)
    s = _rgb(side)  # original | result on top, then LR | SR | aligned tiles
    assert s.shape[1] >= 2 * photo.shape[1] and s.shape[0] > photo.shape[0] + 256


def test_upscale_edsr_raw_lr_model(tmp_path, astronaut, face_box):
    from fsrlib.pipeline.upscale import upscale_photo

    ck = make_checkpoint(tmp_path / "runs", "edsr", 4, {"type": "edsr", "ch": 4, "n_blocks": 1})
    res = upscale_photo(astronaut, "edsr", 4, checkpoint=ck.parent, out=tmp_path / "o" / "edsr.png",
                        params_path=None, simulate=True)
    assert res.photo.is_file() and res.side_by_side.is_file()
    assert len(res.faces) == 1
    f = res.faces[0]
    assert f["lr"].shape == (32, 32, 3) and f["sr"].shape == (128, 128, 3) and f["aligned"].shape == (128, 128, 3)
    _check_only_face_changed(_rgb(astronaut), _rgb(res.photo), face_box)


@pytest.fixture(scope="module")
def small_face(tmp_path_factory, face_box) -> Path:
    """A real low-resolution photo: the astronaut shrunk so that her face (landmark box) is
    ~16 px wide, inside a larger grey frame."""
    import skimage.data

    x0, y0, x1, y1 = face_box
    f = 16.0 / (x1 - x0)
    small = Image.fromarray(skimage.data.astronaut()).resize((round(512 * f), round(512 * f)), Image.LANCZOS)
    frame = Image.new("RGB", (small.width + 60, small.height + 40), (120, 120, 120))
    frame.paste(small, (40, 10))
    p = tmp_path_factory.mktemp("small") / "small_face.png"
    frame.save(p)
    return p


def test_upscale_real_small_face_enlarged_by_the_scale(tmp_path, monkeypatch, small_face, capsys):
    """Default mode: the photo is the LR; the output is the photo x8 with the face super-resolved."""
    from fsrlib.pipeline.upscale import upscale_photo

    monkeypatch.chdir(tmp_path)
    make_checkpoint(tmp_path / "runs", "bicubic", 8, {"type": "bicubic"})
    photo = _rgb(small_face)
    assert main(["upscale", str(small_face), "--method", "bicubic", "--scale", "8"]) == 0
    out = _rgb(tmp_path / "small_face_fsr_bicubic_x8.png")
    assert out.shape == (photo.shape[0] * 8, photo.shape[1] * 8, 3)
    assert (tmp_path / "small_face_fsr_bicubic_x8_side_by_side.png").is_file()
    res = upscale_photo(small_face, "bicubic", 8, out=tmp_path / "again.png")
    f = res.faces[0]
    assert len(res.faces) == 1 and f["lr"].shape == (16, 16, 3) and f["sr"].shape == (128, 128, 3)
    # the LR frame is cut from the photo's own pixels: it is the photo's face, not a degraded copy
    assert abs(float(f["lr"].mean()) - float(photo[10:, 40:].mean())) < 60
    # the same face is too small for a x4 model (32 px LR frame): a clear message with its size
    ck = make_checkpoint(tmp_path / "runs", "edsr", 4, {"type": "edsr", "ch": 4, "n_blocks": 1})
    assert main(["upscale", str(small_face), "--method", "edsr", "--scale", "4", "--checkpoint", str(ck)]) == 2
    err = capsys.readouterr().err
    assert "too small" in err and "smaller than the model's 32x32 LR input at x4" in err and " px" in err


def test_upscale_folder_with_progress(tmp_path, monkeypatch, small_face, capsys):
    import skimage.data

    monkeypatch.chdir(tmp_path)
    make_checkpoint(tmp_path / "runs", "bicubic", 8, {"type": "bicubic"})
    d = tmp_path / "photos"
    d.mkdir()
    shutil.copy(small_face, d / "a.png")
    Image.fromarray(skimage.data.coffee()[::4, ::4]).save(d / "b_noface.jpg")
    assert main(["upscale", str(d), "--method", "bicubic", "--scale", "8"]) == 0
    out = capsys.readouterr().out
    assert "skipped b_noface.jpg" in out and "wrote 1 photo(s)" in out
    assert (tmp_path / "photos_fsr_bicubic_x8" / "a.png").is_file()


def test_semi_transparent_photo_is_composited_on_white(tmp_path, astronaut):
    from fsrlib.io import BadImage, read_image

    rgb = _rgb(astronaut)
    p = tmp_path / "alpha128.png"
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(p)
    img, notes = read_image(p)
    assert "semi_transparent_on_white" in notes
    expect = np.floor(rgb * (128 / 255) + 255 * (127 / 255) + 0.5)
    assert np.abs(img.astype(float) - expect).max() <= 1
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # a fully transparent pixel has no colour: refused
    Image.fromarray(rgba).save(p)
    with pytest.raises(BadImage, match="fully transparent"):
        read_image(p)


@pytest.mark.parametrize("kind", ["coffee", "flat"])
def test_upscale_no_face_exit_2_and_nothing_written(tmp_path, monkeypatch, capsys, kind):
    import skimage.data

    monkeypatch.chdir(tmp_path)
    make_checkpoint(tmp_path / "runs", "bicubic", 8, {"type": "bicubic"})
    img = skimage.data.coffee() if kind == "coffee" else np.full((200, 300, 3), 128, np.uint8)
    Image.fromarray(img).save(tmp_path / "p.png")
    before = set(os.listdir(tmp_path))
    assert main(["upscale", "p.png", "--method", "bicubic", "--scale", "8"]) == 2
    err = capsys.readouterr().err
    assert "no face found in p.png" in err and "nothing written" in err
    assert set(os.listdir(tmp_path)) == before


def test_upscale_missing_or_wrong_checkpoint(tmp_path, monkeypatch, capsys, astronaut):
    monkeypatch.chdir(tmp_path)
    assert main(["upscale", str(astronaut), "--method", "sparnet", "--scale", "8"]) == 2
    err = capsys.readouterr().err
    assert "runs/sparnet-x8/model.pt does not exist" in err and "dvc repro train@sparnet-x8" in err
    assert main(["upscale", str(astronaut), "--method", "edsr", "--scale", "4", "--checkpoint", "runs/nope"]) == 2
    assert "does not exist" in capsys.readouterr().err
    # a checkpoint of another method or scale is refused before any work
    make_checkpoint(tmp_path / "runs", "bicubic", 8, {"type": "bicubic"})
    assert main(["upscale", str(astronaut), "--method", "edsr", "--scale", "8", "--checkpoint", "runs/bicubic-x8"]) == 2
    assert "holds a 'bicubic' model" in capsys.readouterr().err
    assert main(["upscale", str(astronaut), "--method", "bicubic", "--scale", "4",
                 "--checkpoint", "runs/bicubic-x8/model.pt"]) == 2
    assert "x8 model" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["runs"]


# ====================================================================== evaluate
@pytest.fixture(scope="module")
def helen_folder(tmp_path_factory, mirror) -> Path:
    src = mirror / "helen" / "test"
    d = tmp_path_factory.mktemp("helen6") / "photos"
    d.mkdir()
    for jpg in sorted(src.glob("*.jpg"))[:6]:
        shutil.copy(jpg, d)
        if jpg.with_suffix(".pts").exists():
            shutil.copy(jpg.with_suffix(".pts"), d)
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" + bytes(range(256)) * 4)
    (d / "notes.txt").write_text("not an image: ignored")
    return d


def test_evaluate_folder_bicubic(tmp_path, monkeypatch, helen_folder, capsys):
    from fsrlib.data.degrade import degrade
    from fsrlib.metrics.image import psnr

    monkeypatch.chdir(tmp_path)  # no params.yaml here: every stage's defaults
    make_checkpoint(tmp_path / "runs", "bicubic", 8, {"type": "bicubic"})
    assert main(["evaluate", str(helen_folder), "--method", "bicubic", "--scale", "8",
                 "--checkpoint", "runs/bicubic-x8"]) == 0
    out = tmp_path / "results" / "folder-photos" / "bicubic-x8"
    assert str(out.relative_to(tmp_path)) in capsys.readouterr().out
    for f in ("per_image.csv", "metrics.json", "downstream.json", "downstream_per_image.csv", "rejects.csv"):
        assert (out / f).is_file(), f

    rejects = pd.read_csv(out / "rejects.csv")
    assert rejects.set_index("file").loc["corrupt.jpg", "reason"] == "unreadable"
    assert "notes.txt" not in set(rejects.file)
    per = pd.read_csv(out / "per_image.csv", dtype={"name": str})
    assert len(per) + len(rejects) == 7 and len(per) >= 4
    m = json.loads((out / "metrics.json").read_text())
    p = m["protocol"]
    assert (m["method"], m["scale"], m["n_images"]) == ("bicubic", 8, len(per))
    assert p["folder"] == str(helen_folder.resolve()) and p["n_images"] == len(per) and p["scale"] == 8
    assert p["method"] == "bicubic" and p["rejects"] == len(rejects)
    assert p["checkpoint"] == str((tmp_path / "runs" / "bicubic-x8" / "model.pt").resolve())
    assert set(m["metrics"]) == {"psnr", "ssim", "vif"} and all(v is not None for v in m["metrics"].values())

    # bicubic SR = the MATLAB-bicubic upsampling of the LR: PSNR as metrics.image.psnr gives it
    hr = np.stack([_rgb(out / "faces" / "folder" / f"{n}.png") for n in per.name])
    up = np.stack([degrade(h, 8)[1] for h in hr])
    sr = np.stack([_rgb(out / "sr" / "folder" / f"{n}.png") for n in per.name])
    assert np.array_equal(sr, up)
    assert np.array_equal(np.stack([_rgb(out / "lr" / "x8" / "folder" / f"{n}.png") for n in per.name]),
                          np.stack([degrade(h, 8)[0] for h in hr]))
    t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    ref = psnr(t(up), t(hr)).numpy()
    np.testing.assert_allclose(per.psnr.to_numpy(), ref, rtol=0, atol=1e-9)
    assert m["metrics"]["psnr"] == pytest.approx(float(ref.mean()), abs=1e-9)

    # downstream, with the .pts ground truth of the Helen mirror
    d = json.loads((out / "downstream.json").read_text())
    assert d["metrics"]["lmk_dist_gt_px"] is not None and d["metrics"]["identity_cos"] is not None
    assert "lmk_dist_gt_px" in pd.read_csv(out / "downstream_per_image.csv").columns


def test_evaluate_folder_refuses_wrong_method_and_empty_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_checkpoint(tmp_path / "runs", "bicubic", 8, {"type": "bicubic"})
    d = tmp_path / "photos"
    d.mkdir()
    (d / "broken.png").write_bytes(b"garbage")
    assert main(["evaluate", str(d), "--method", "edsr", "--scale", "8", "--checkpoint", "runs/bicubic-x8"]) == 2
    assert "holds a 'bicubic' model" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # refused before any work
    assert main(["evaluate", str(d), "--method", "bicubic", "--scale", "8", "--checkpoint", "runs/bicubic-x8"]) == 2
    assert "none of the 1 images" in capsys.readouterr().err
    rej = pd.read_csv(tmp_path / "results" / "folder-photos" / "bicubic-x8" / "rejects.csv")
    assert list(rej.file) == ["broken.png"] and list(rej.reason) == ["unreadable"]


def test_evaluate_folder_verifies_with_the_folders_identities(tmp_path, monkeypatch, mirror, capsys):
    src = mirror / "celeba_test"
    if not src.is_dir():
        pytest.skip("celeba_test not in the mirror")
    ids = pd.read_csv(src / "identity.csv").sort_values("file")
    ids = ids[ids.face_extent_px > 90]
    ids = ids[ids.identity.isin(sorted(set(ids.identity))[:6])].groupby("identity").head(2)
    photos = tmp_path / "set" / "images"  # the mirror's layout: identity.csv one folder above
    photos.mkdir(parents=True)
    for f in ids.file:
        shutil.copy(src / "images" / f, photos / f)
    ids.to_csv(tmp_path / "set" / "identity.csv", index=False)
    monkeypatch.chdir(tmp_path)
    make_checkpoint(tmp_path / "runs", "bicubic", 8, {"type": "bicubic"})
    weights = REPO.parent / "shared" / "models" / "mobilefacenet_casia_068.ckpt"
    if weights.is_file():  # a params file naming the second identity network
        (tmp_path / "params.yaml").write_text(f"downstream: {{mobilefacenet_weights: {weights}}}\n")
    assert main(["evaluate", str(photos), "--method", "bicubic", "--scale", "8",
                 "--checkpoint", "runs/bicubic-x8"]) == 0
    d = json.loads((tmp_path / "results" / "folder-images" / "bicubic-x8" / "downstream.json").read_text())
    assert d["metrics"]["verif_dlib_n_identities"] >= 5 and d["metrics"]["verif_dlib_auc"] is not None
    assert d["protocol"]["identities"].endswith("identity.csv")
    if weights.is_file():
        assert d["metrics"]["verif_mobilefacenet_n_identities"] >= 5
