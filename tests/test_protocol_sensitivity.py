"""The protocol-sensitivity conventions: one metric code, scikit-image's default SSIM reproduced."""
import numpy as np
import pytest
from skimage import data
from skimage.metrics import structural_similarity

from fsrlib.metrics.image import quantize, rgb_to_y, ssim_uniform
from fsrlib.metrics.scoring import CONVENTIONS, score_conventions


@pytest.fixture(scope="module")
def pair():
    hr = data.astronaut()[60:188, 180:308].copy()
    noise = np.random.default_rng(0).integers(-25, 25, hr.shape)
    return np.clip(hr.astype(int) + noise, 0, 255).astype(np.uint8)[None], hr[None]


def test_ssim_uniform_is_scikit_images_default(pair):
    sr, hr = pair
    ys, yh = (rgb_to_y(quantize(x))[0, 0].numpy() for x in (sr, hr))
    assert ssim_uniform(sr, hr).item() == pytest.approx(structural_similarity(ys, yh, data_range=255), abs=1e-10)


def test_conventions_move_the_numbers_each_their_own_way(pair):
    sr, hr = pair
    sc = score_conventions(sr, hr, scale=8)
    assert set(sc) == set(CONVENTIONS)
    assert sc["family_A"] == sc["y_floor"]  # A differs from the project's protocol by the truncation only
    assert sc["crop8"] == sc["crop_scale"]  # at x8 the two crops coincide
    assert abs(sc["y_round"]["psnr"] - sc["ref"]["psnr"]) < 0.1  # quantising Y moves hundredths of a dB
    assert sc["ssim_uniform7"]["psnr"] == sc["ref"]["psnr"] and sc["ssim_uniform7"]["ssim"] != sc["ref"]["ssim"]


# ---------------------------------------------------------------------- the table on a fake results tree
def _hr_faces(n=3):
    """Real faces: the first prepared Helen faces when present, else scikit-image photos at 128x128."""
    from pathlib import Path

    from PIL import Image

    helen = sorted((Path(__file__).parents[1] / "data/faces/helen").glob("*.png"))[:n]
    if len(helen) == n:
        return {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in helen}
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()][:n]
    return {f"img{i}": np.asarray(Image.fromarray(a).resize((128, 128), Image.BICUBIC)) for i, a in enumerate(photos)}


def _pil_round_trip(hr, scale):
    from PIL import Image

    im = Image.fromarray(hr)
    lr = im.resize((128 // scale, 128 // scale), Image.BICUBIC)
    return np.asarray(lr.resize((128, 128), Image.BICUBIC))


@pytest.fixture(scope="module")
def results_tree(tmp_path_factory):
    """data/faces (3 real faces marked helen50 + faces.csv) and two runs at x4: ``bicubic-x4`` with sr/
    (MATLAB imresize round trip) and sr_pil/ (PIL round trip), ``nopil-x4`` with sr/ only."""
    import json

    import pandas as pd
    from PIL import Image

    from fsrlib.imresize import imresize

    root = tmp_path_factory.mktemp("ps")
    faces = _hr_faces()
    (root / "data/faces/helen").mkdir(parents=True)
    pd.DataFrame({"name": list(faces), "dataset": "helen", "split": "test", "helen50": True}).to_csv(
        root / "data/faces/faces.csv", index=False)
    for name, hr in faces.items():
        Image.fromarray(hr).save(root / "data/faces/helen" / f"{name}.png")
    for run, folders in (("bicubic-x4", ("sr", "sr_pil")), ("nopil-x4", ("sr",))):
        ts = root / "results" / run / "helen50"
        ts.mkdir(parents=True)
        (ts / "metrics.json").write_text(json.dumps({"outputs_sr": True}))
        for name, hr in faces.items():
            out = {"sr": imresize(imresize(hr, 1 / 4), 4), "sr_pil": _pil_round_trip(hr, 4)}
            for f in folders:
                (ts / f / "helen").mkdir(parents=True, exist_ok=True)
                Image.fromarray(out[f]).save(ts / f / "helen" / f"{name}.png")
    return root, faces


def test_lr_pil_and_family_a_score_the_pil_outputs(results_tree):
    from fsrlib.imresize import imresize
    from fsrlib.metrics.image import psnr, ssim
    from fsrlib.pipeline.protocol_sensitivity import FALLBACK, protocol_sensitivity, write_protocol_sensitivity

    root, faces = results_tree
    df = protocol_sensitivity(root / "results", root / "data", ["helen50"])
    hr = np.stack(list(faces.values()))
    sr = np.stack([imresize(imresize(h, 1 / 4), 4) for h in hr])
    sr_pil = np.stack([_pil_round_trip(h, 4) for h in hr])
    a = df[df.run == "bicubic-x4"].set_index("convention")
    direct = float(psnr(sr_pil, hr).mean() - psnr(sr, hr).mean())
    assert a.loc["lr_pil", "d_psnr"] == pytest.approx(direct, abs=1e-9)
    assert a.loc["lr_pil", "lr_source"] == "sr_pil" and a.loc["ref", "lr_source"] == "sr"
    assert a.loc["family_A", "psnr"] == pytest.approx(float(psnr(sr_pil, hr, y_quant="floor").mean()), abs=1e-9)
    assert a.loc["family_A", "ssim"] == pytest.approx(float(ssim(sr_pil, hr, y_quant="floor").mean()), abs=1e-9)
    assert 0 < a.loc["family_A", "vif"] < 1 and np.isfinite(a.loc["ref", "vif"]) and np.isnan(a.loc["crop8", "vif"])
    assert a.loc["family_A", "d_vif"] == pytest.approx(a.loc["family_A", "vif"] - a.loc["ref", "vif"])
    b = df[df.run == "nopil-x4"].set_index("convention")
    assert "lr_pil" not in b.index and b.loc["family_A", "lr_source"] == FALLBACK
    assert b.loc["family_A", "psnr"] == pytest.approx(b.loc["y_floor", "psnr"])
    md = write_protocol_sensitivity(df, root / "tables").read_text()
    assert "not in this table" not in md and "†" in md and "nopil-x4" in md.split("† `family_A`")[1]
    assert f"{a.loc['lr_pil', 'd_psnr']:+.2f} / " in md
    if np.isnan(a.loc["family_A", "lpips"]):
        assert "LPIPS missing:" in md  # missing with its reason, never a substitute
