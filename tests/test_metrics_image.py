"""Image metrics pinned against scikit-image, numpy, sewar and hand-computed values on real faces."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import find_mirror
from PIL import Image
from scipy.ndimage import gaussian_filter

from fsrlib.metrics import image as M
from fsrlib.metrics import learned as LM
from fsrlib.metrics import scoring as SC
from fsrlib.registry import METRICS, ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _center_128(path: Path) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = int(min(w, h) * 0.6)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return np.asarray(im.resize((128, 128), Image.BICUBIC, box=box))


def _degrade(a: np.ndarray, scale: int) -> np.ndarray:
    im = Image.fromarray(a)
    small = im.resize((a.shape[1] // scale, a.shape[0] // scale), Image.BICUBIC)
    return np.asarray(small.resize((a.shape[1], a.shape[0]), Image.BICUBIC))


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """(N,128,128,3) uint8: five real CelebA faces and the astronaut."""
    from skimage.data import astronaut

    out = [np.asarray(Image.fromarray(astronaut()[0:260, 120:380]).resize((128, 128), Image.BICUBIC))]
    d = (find_mirror() or Path('/nonexistent')) / "celeba" / "images"
    if not d.is_dir():
        pytest.skip(f"face data mirror not found at {d} (set FSR_DATA_MIRROR to the shared datasets folder)")
    for p in sorted(d.glob("*.jpg"))[:5]:
        out.append(_center_128(p))
    return np.stack(out)


@pytest.fixture(scope="module")
def pairs(faces):
    """(SR float tensor, HR float tensor, SR uint8, HR uint8): SR = bicubic x4 + mild noise."""
    rng = np.random.default_rng(0)
    sr8 = np.stack([_degrade(f, 4) for f in faces]).astype(np.float64)
    sr8 = np.clip(sr8 + rng.normal(0, 2, sr8.shape), 0, 255).round().astype(np.uint8)
    hr_t = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255.0
    # an SR tensor that is not on the uint8 grid: the metric must round it like MATLAB
    sr_t = torch.from_numpy(sr8).permute(0, 3, 1, 2).double() / 255.0 + 0.3 / 255.0
    return sr_t.float(), hr_t, sr8, faces


def _y_np(a: np.ndarray) -> np.ndarray:
    return 16.0 + (a.astype(np.float64) @ np.array([65.481, 128.553, 24.966])) / 255.0


# ---------------------------------------------------------------------- conversions
def test_y_known_values():
    cols = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]], np.uint8)
    y = M.rgb_to_y(M.quantize(cols.reshape(1, 6, 1, 3)))[0, 0, :, 0].numpy()
    expected = [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966, 16 + 219.0 * 128 / 255]
    np.testing.assert_allclose(y, expected, atol=1e-9)
    q = M.quantize(cols.reshape(1, 6, 1, 3))
    np.testing.assert_array_equal(M.rgb_to_y(q, "round")[0, 0, :, 0].numpy(), [16, 235, 81, 145, 41, 126])
    np.testing.assert_array_equal(M.rgb_to_y(q, "floor")[0, 0, :, 0].numpy(), [16, 235, 81, 144, 40, 125])
    # exact against integer arithmetic (Y * 255000 is an integer), incl. the colours whose Y is an integer
    rng = np.random.default_rng(0)
    c = np.concatenate([rng.integers(0, 256, (20000, 3)), [[36, 122, 23], [255, 157, 14], [41, 81, 221]]])
    num = 65481 * c[:, 0] + 128553 * c[:, 1] + 24966 * c[:, 2]
    q = torch.from_numpy(c.astype(np.float64)).T[None, :, :, None]
    np.testing.assert_array_equal(M.rgb_to_y(q, "floor")[0, 0, :, 0].numpy(), 16 + num // 255000)
    np.testing.assert_array_equal(M.rgb_to_y(q, "round")[0, 0, :, 0].numpy(), 16 + (2 * num + 255000) // 510000)
    np.testing.assert_allclose(M.rgb_to_y(q)[0, 0, :, 0].numpy(), 16 + num / 255000, rtol=0, atol=1e-12)


def test_quantize_matlab_rounding(faces):
    hr_t = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255.0
    np.testing.assert_array_equal(M.quantize(hr_t).numpy(), faces.transpose(0, 3, 1, 2))  # exact round trip
    x = torch.tensor([-0.1, 0.5 / 255, 1.5 / 255, 0.49 / 255, 254.5 / 255, 1.2], dtype=torch.float64)
    x = x.view(1, 1, 1, 6).expand(1, 3, 1, 6)
    before = x.clone()
    np.testing.assert_array_equal(M.quantize(x)[0, 0, 0].numpy(), [0, 1, 2, 0, 255, 255])  # half up, clamped
    assert torch.equal(x, before)  # the caller's tensor is untouched


# ---------------------------------------------------------------------- PSNR / SSIM references
@pytest.mark.parametrize("crop_border", [0, 8])
def test_psnr_matches_numpy(pairs, crop_border):
    sr_t, hr_t, sr8, hr8 = pairs
    ours_y = M.psnr(sr_t, hr_t, crop_border=crop_border).numpy()
    ours_rgb = M.psnr(sr_t, hr_t, crop_border=crop_border, color="rgb").numpy()
    b = crop_border
    sl = (slice(b, 128 - b), slice(b, 128 - b))
    for i in range(len(hr8)):
        sr_q = np.floor(np.clip(sr_t[i].permute(1, 2, 0).double().numpy(), 0, 1) * 255 + 0.5)
        np.testing.assert_array_equal(sr_q, sr8[i])  # the +0.3/255 offset rounds back to the uint8 image
        ya, yb = _y_np(sr8[i])[sl], _y_np(hr8[i])[sl]
        ref_y = 10 * np.log10(255.0**2 / np.mean((ya - yb) ** 2))
        ref_rgb = 10 * np.log10(255.0**2 / np.mean((sr8[i][sl].astype(float) - hr8[i][sl].astype(float)) ** 2))
        assert abs(ours_y[i] - ref_y) < 1e-4
        assert abs(ours_rgb[i] - ref_rgb) < 1e-4
    assert (ours_y > 15).all() and (ours_y < 45).all()


@pytest.mark.parametrize("crop_border", [0, 8])
def test_ssim_matches_skimage(pairs, crop_border):
    from skimage.metrics import structural_similarity

    sr_t, hr_t, sr8, hr8 = pairs
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    ours_y = M.ssim(sr_t, hr_t, crop_border=crop_border).numpy()
    ours_rgb = M.ssim(sr_t, hr_t, crop_border=crop_border, color="rgb").numpy()
    b = crop_border
    sl = (slice(b, 128 - b), slice(b, 128 - b))
    for i in range(len(hr8)):
        ref_y = structural_similarity(_y_np(hr8[i])[sl], _y_np(sr8[i])[sl], **kw)
        ref_rgb = structural_similarity(hr8[i][sl].astype(np.float64), sr8[i][sl].astype(np.float64),
                                        channel_axis=-1, **kw)
        assert abs(ours_y[i] - ref_y) < 1e-4, (i, ours_y[i], ref_y)
        assert abs(ours_rgb[i] - ref_rgb) < 1e-4, (i, ours_rgb[i], ref_rgb)
    assert (ours_y > 0.3).all() and (ours_y < 1).all()


def test_ssim_y_quant_uint8_matches_sparnet_script(pairs):
    """y_quant='floor' is SPARNet's psnr_ssim.py (uint8 Y, skimage data range 255)."""
    from skimage.metrics import structural_similarity

    sr_t, hr_t, sr8, hr8 = pairs
    ours = M.ssim(sr_t, hr_t, y_quant="floor").numpy()
    for i in range(len(hr8)):
        ya, yb = _y_np(hr8[i]).astype(np.uint8), _y_np(sr8[i]).astype(np.uint8)
        ref = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=255)
        assert abs(ours[i] - ref) < 1e-4


def test_gaussian_window_is_matlab_fspecial():
    w = M.gaussian_window()
    assert w.shape == (11, 11)
    t = np.arange(-5, 6)
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.5**2))
    np.testing.assert_allclose(w.numpy(), g / g.sum(), atol=1e-15)


def test_identical_images(pairs):
    _, hr_t, _, _ = pairs
    p = M.psnr(hr_t, hr_t)
    assert torch.isinf(p).all() and (p > 0).all()
    assert torch.allclose(M.ssim(hr_t, hr_t), torch.ones(len(hr_t), dtype=torch.float64))
    assert (M.psnr(hr_t, hr_t, max_db=100.0) == 100.0).all()
    df, agg, missing = SC.evaluate_images(hr_t, hr_t, metrics=["psnr", "ssim"], progress=False)
    assert np.isinf(df["psnr"]).all()
    assert agg["psnr"] is None and "inf" in missing["psnr"]
    assert agg["ssim"] == pytest.approx(1.0)
    json.dumps(agg)  # no Infinity in what goes to metrics.json
    _, agg2, missing2 = SC.evaluate_images(hr_t, hr_t, metrics=[{"type": "psnr", "max_db": 100.0}], progress=False)
    assert agg2["psnr"] == 100.0 and not missing2


def test_crop_border_validation(pairs):
    sr_t, hr_t, _, _ = pairs
    with pytest.raises(ValueError):
        M.psnr(sr_t, hr_t, crop_border=64)
    with pytest.raises(ValueError):
        M.psnr(sr_t, hr_t[:, :, :64])


# ---------------------------------------------------------------------- LPIPS
def _alexnet_hub_file() -> Path:
    return LM.torch_hub_checkpoint(LM._TV_URLS["alex"])


def test_lpips_reports_missing_not_zero(pairs):
    if _alexnet_hub_file().exists():
        pytest.skip("AlexNet weights are present on this machine")
    sr_t, hr_t, _, _ = pairs
    m = LM.LPIPS()
    ok, reason = m.available()
    assert not ok and "AlexNet" in reason and "offline" in reason
    with pytest.raises(RuntimeError):
        m(sr_t, hr_t)
    df, agg, missing = SC.evaluate_images(sr_t, hr_t, metrics=["psnr", "lpips"], progress=False)
    assert agg["lpips"] is None and "lpips" not in df.columns
    assert "AlexNet backbone weights not on this machine" in missing["lpips"]
    assert agg["psnr"] is not None


def _random_alexnet_features(path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    sd = {k: v for k, v in torchvision.models.alexnet(weights=None).state_dict().items() if k.startswith("features.")}
    torch.save(sd, path)


def test_lpips_plumbing_with_random_backbone(pairs, tmp_path):
    """Plumbing only: a random trunk saved to a file must be loaded exactly as the lpips package
    would use torchvision's; this is a test fixture, never a metric value."""
    import lpips

    sr_t, hr_t, sr8, hr8 = pairs
    w = tmp_path / "alexnet_random_features.pth"
    _random_alexnet_features(w)
    m = SC.build_metric({"type": "lpips", "backbone_weights": str(w)})
    assert m.available() == (True, "")
    v = m(sr_t, hr_t)
    assert v.shape == (len(hr8),) and (v > 0).all()
    assert torch.allclose(m(hr_t, hr_t), torch.zeros(len(hr8), dtype=torch.float64), atol=1e-7)

    with pytest.warns(UserWarning):  # torchvision's deprecation notes about `pretrained`
        ref = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    sd = torch.load(w)
    for name, slc in ref.net.named_children():
        for idx, mod in slc.named_children():
            if not hasattr(mod, "weight"):
                continue
            mod.weight.data.copy_(sd[f"features.{idx}.weight"])
            mod.bias.data.copy_(sd[f"features.{idx}.bias"])
    with torch.no_grad():
        x = torch.from_numpy(sr8).permute(0, 3, 1, 2).float() / 127.5 - 1
        y = torch.from_numpy(hr8).permute(0, 3, 1, 2).float() / 127.5 - 1
        expected = ref(x, y).flatten().double()
    torch.testing.assert_close(v, expected, rtol=1e-5, atol=1e-6)

    df, agg, missing = SC.evaluate_images(sr_t, hr_t, metrics=["lpips"], lpips_weights=str(w), progress=False)
    assert not missing and agg["lpips"] == pytest.approx(float(v.mean()), rel=1e-6)
    np.testing.assert_allclose(df["lpips"], v.numpy(), rtol=1e-6)


def test_lpips_hub_cache_lookup_and_hash_check(monkeypatch, tmp_path):
    """Availability comes from the torch hub cache file; a corrupt file there is rejected."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    ok, reason = LM.LPIPS().available()
    assert not ok and "$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth" in reason   # portable, no machine path
    f = tmp_path / "checkpoints" / "alexnet-owt-7be5be79.pth"
    f.parent.mkdir()
    f.write_bytes(b"not the real weights")
    ok, reason = LM.LPIPS().available()
    assert not ok and "sha256" in reason


# ---------------------------------------------------------------------- VIF
def test_vif_identity_and_blur(pairs):
    import sewar

    _, hr_t, _, hr8 = pairs
    for backend in ("piq", "fsrlib"):
        m = M.VIF(backend=backend)
        assert torch.allclose(m(hr_t, hr_t), torch.ones(len(hr8), dtype=torch.float64), atol=1e-6)
    prev = np.ones(len(hr8))
    hr_y = M.rgb_to_y(M.quantize(hr8))[:, 0].numpy()
    for sigma in (0.5, 1.0, 2.0):
        blurred = np.clip(gaussian_filter(hr8.astype(float), (0, sigma, sigma, 0)) + 0.5, 0, 255).astype(np.uint8)
        v_piq = M.VIF()(blurred, hr8).numpy()
        v_fast = M.VIF(backend="fsrlib")(blurred, hr8).numpy()
        assert (v_piq < prev).all(), (sigma, v_piq, prev)
        # both backends against sewar.vifp (a port of LIVE's vifp_mscale.m) on the same Y channel
        bl_y = M.rgb_to_y(M.quantize(blurred))[:, 0].numpy()
        for i in (0, 1):
            ref = sewar.vifp(hr_y[i], bl_y[i])
            assert abs(v_fast[i] - ref) < 1e-8
            assert abs(v_piq[i] - ref) < 1e-4
        prev = v_piq


# ---------------------------------------------------------------------- FID
def test_fid_missing_with_reason(pairs):
    if LM.torch_hub_checkpoint(LM.FID_WEIGHTS_URL).exists():
        pytest.skip("FID Inception weights are present on this machine")
    sr_t, hr_t, _, _ = pairs
    df, agg, missing = SC.evaluate_images(sr_t, hr_t, metrics=["fid"], progress=False)
    assert agg["fid"] is None and "Inception" in missing["fid"] and "fid" not in df.columns
    ok, reason = LM.FID(weights="/nonexistent/pt_inception.pth").available()
    assert not ok and "/nonexistent" in reason


def test_fid_plumbing_with_a_stand_in_network(pairs, tmp_path, monkeypatch):
    """Batching, quantisation and the Frechet distance, with a fixed stand-in feature map in
    place of Inception (plumbing only; the real weights are not on this machine)."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    sr_t, hr_t, _, _ = pairs
    w = tmp_path / "stand_in_inception.pth"
    w.write_bytes(b"x")
    torch.manual_seed(0)
    proj = torch.randn(3 * 8 * 8, 5)

    def stand_in(weights, dims, device):
        assert weights == str(w)
        return lambda x: [(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1) @ proj)[:, :, None, None]]

    monkeypatch.setattr(LM, "_fid_model", stand_in)
    m = LM.FID(weights=str(w), batch_size=4)
    assert m.available() == (True, "")
    assert m(hr_t, hr_t) == pytest.approx(0.0, abs=1e-6)
    value = m(sr_t, hr_t)

    def f(t):
        pooled = torch.nn.functional.adaptive_avg_pool2d(M.quantize(t).float() / 255, 8).flatten(1)
        return (pooled @ proj).double().numpy()

    a, b = f(sr_t), f(hr_t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pytorch-fid's sqrtm(disp=) on scipy 1.17
        ref = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert value == pytest.approx(ref, rel=1e-4) and value > 0
    _, agg, missing = SC.evaluate_images(sr_t, hr_t, metrics=["psnr", "fid"], fid_weights=str(w), batch_size=4,
                                        progress=False)
    assert not missing and agg["fid"] == pytest.approx(value, rel=1e-6)


# ---------------------------------------------------------------------- registry / evaluate
def test_registry_metadata():
    assert {"psnr", "ssim", "psnr_rgb", "ssim_rgb", "lpips", "lpips_vgg", "vif", "fid"} <= set(METRICS.names())
    p = METRICS.build({"type": "psnr", "crop_border": 8})
    assert p.higher_is_better and p.range == (0.0, math.inf)
    assert p.convention == "Y BT.601, uint8, crop 8, peak 255"
    assert METRICS.build("lpips").higher_is_better is False
    assert METRICS.build("lpips_vgg").name == "lpips_vgg"
    assert "crop 0" in METRICS.build("ssim_rgb").convention and "RGB" in METRICS.build("ssim_rgb").convention
    with pytest.raises(ConfigError):
        METRICS.validate({"type": "psnr", "crop": 8})
    info = SC.describe_metrics(["psnr", "ssim", "lpips", "vif", "fid"], crop_border=8)
    json.dumps(info)
    assert info["ssim"]["convention"].startswith("Y BT.601, uint8, crop 8")
    assert info["fid"]["per_image"] is False and info["psnr"]["range"] == [0.0, None]


def test_evaluate_images_table(pairs):
    sr_t, hr_t, sr8, hr8 = pairs
    names = [f"img{i}" for i in range(len(hr8))]
    metrics = ["psnr", "ssim", "psnr_rgb", "ssim_rgb", "vif", {"type": "psnr", "crop_border": 0, "name": "psnr_c0"}]
    df, agg, missing = SC.evaluate_images(sr_t, hr_t, metrics=metrics, crop_border=8, names=names, batch_size=4,
                                         progress=False)
    assert list(df.columns) == ["index", "name", "psnr", "ssim", "psnr_rgb", "ssim_rgb", "vif", "psnr_c0"]
    assert len(df) == len(hr8) and not missing
    np.testing.assert_allclose(df["psnr"], M.psnr(sr_t, hr_t, crop_border=8).numpy(), atol=1e-12)
    np.testing.assert_allclose(df["psnr_c0"], M.psnr(sr_t, hr_t).numpy(), atol=1e-12)
    for k in ("psnr", "ssim", "vif"):
        assert agg[k] == pytest.approx(df[k].mean())
    # uint8 HxWx3 inputs give the same numbers as the float tensors
    df2, agg2, _ = SC.evaluate_images(list(sr8), hr8, metrics=["psnr", "ssim"], crop_border=8, progress=False)
    assert agg2["psnr"] == pytest.approx(agg["psnr"], abs=1e-12)
    with pytest.raises(ValueError, match="twice"):
        SC.evaluate_images(sr_t, hr_t, metrics=["psnr", "psnr"], progress=False)
