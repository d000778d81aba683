"""MATLAB-imresize bicubic: pinned against an independent per-pixel formulation, analytic
properties and PIL; the torch version against the numpy one; the blind degradation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from fsrlib.data.degrade import BLIND_PRESETS, blind_degrade, degrade
from fsrlib.imresize import cubic, imresize, imresize_torch
from fsrlib.pipeline.degrade import degrade_all


# ---------------------------------------------------------------------- independent reference
def _keys(t: float) -> float:
    """Keys cubic, a = -0.5, written piecewise from the paper's formula."""
    t = abs(t)
    if t <= 1:
        return 1.5 * t ** 3 - 2.5 * t ** 2 + 1
    if t <= 2:
        return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2
    return 0.0


def _mirror(j: int, n: int) -> int:
    """Symmetric extension (edge sample repeated), by repeated reflection."""
    while j < 0 or j >= n:
        j = -j - 1 if j < 0 else 2 * n - 1 - j
    return j


def _ref_1d(line: list[float], out_len: int, scale: float) -> list[float]:
    """One MATLAB pass, per output sample, 0-based centres: c = (i + 0.5) / scale - 0.5."""
    n = len(line)
    shrink = scale < 1
    radius = 2.0 / scale if shrink else 2.0
    out = []
    for i in range(out_len):
        c = (i + 0.5) / scale - 0.5
        acc = wsum = 0.0
        for j in range(int(math.floor(c - radius)) - 1, int(math.ceil(c + radius)) + 2):
            d = c - j
            wt = scale * _keys(scale * d) if shrink else _keys(d)
            acc += wt * line[_mirror(j, n)]
            wsum += wt
        out.append(acc / wsum)
    return out


def _ref_imresize(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Slow separable reference: rows first when scales tie (else the smaller scale first),
    uint8 rounded half-up and saturated after each pass."""
    a = img.astype(np.float64)
    if a.ndim == 2:
        a = a[..., None]
    h, w, c = a.shape
    sh, sw = out_hw[0] / h, out_hw[1] / w
    u8 = img.dtype == np.uint8

    def q(v):
        return min(255.0, max(0.0, math.floor(v + 0.5))) if u8 else v

    def pass_rows(x, n_out, s):
        y = np.zeros((n_out, x.shape[1], c))
        for col in range(x.shape[1]):
            for ch in range(c):
                y[:, col, ch] = [q(v) for v in _ref_1d(list(x[:, col, ch]), n_out, s)]
        return y

    def pass_cols(x, n_out, s):
        y = np.zeros((x.shape[0], n_out, c))
        for row in range(x.shape[0]):
            for ch in range(c):
                y[row, :, ch] = [q(v) for v in _ref_1d(list(x[row, :, ch]), n_out, s)]
        return y

    if sh <= sw:
        a = pass_cols(pass_rows(a, out_hw[0], sh), out_hw[1], sw)
    else:
        a = pass_rows(pass_cols(a, out_hw[1], sw), out_hw[0], sh)
    if img.ndim == 2:
        a = a[..., 0]
    return a.astype(np.uint8) if u8 else a


@pytest.fixture(scope="module")
def face128():
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()[0:240, 120:360]).resize((128, 128), Image.LANCZOS))


# ---------------------------------------------------------------------- kernel
def test_cubic_kernel_values():
    assert np.allclose(cubic([0, 0.5, 1, 1.5, 2, 2.5]), [1, 0.5625, 0, -0.0625, 0, 0])
    x = np.linspace(-3, 3, 601)
    assert np.allclose(cubic(x), [_keys(t) for t in x])


# ---------------------------------------------------------------------- against the reference
@pytest.mark.parametrize("in_hw,out_hw", [((40, 40), (10, 10)), ((48, 48), (6, 6)), ((16, 16), (8, 8)),
                                          ((8, 8), (32, 32)), ((13, 11), (7, 19)), ((30, 45), (11, 14))])
def test_imresize_matches_slow_reference(in_hw, out_hw):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=in_hw + (3,), dtype=np.uint8)
    assert np.array_equal(imresize(img, output_shape=out_hw), _ref_imresize(img, out_hw))
    f = rng.random(in_hw)
    assert np.allclose(imresize(f, output_shape=out_hw), _ref_imresize(f, out_hw), atol=1e-12)


def test_scale_argument_matches_matlab_size_rule():
    img = np.zeros((128, 128, 3), np.uint8)
    for s, n in ((1 / 4, 32), (1 / 8, 16), (1 / 16, 8), (4, 512)):
        assert imresize(img, s).shape == (n, n, 3)
    assert imresize(np.zeros((10, 7)), 1 / 3).shape == (4, 3)  # ceil(scale * size)


def test_face_downsample_matches_reference(face128):
    for s in (4, 16):
        n = 128 // s
        assert np.array_equal(imresize(face128[..., 1], 1 / s), _ref_imresize(face128[..., 1], (n, n)))
    lr = imresize(face128[..., 0], 1 / 8)
    assert np.array_equal(imresize(lr, 8), _ref_imresize(lr, (128, 128)))


# ---------------------------------------------------------------------- analytic properties
@pytest.mark.parametrize("scale", [1 / 4, 1 / 8, 1 / 16, 4, 8])
def test_constant_stays_constant(scale):
    n = 128 if scale < 1 else 16
    img = np.full((n, n, 3), 77, np.uint8)
    assert np.all(imresize(img, scale) == 77)
    assert np.allclose(imresize(np.full((n, n), 0.3), scale), 0.3, atol=1e-12)


def test_linear_ramp_downsample_is_exact_in_the_interior():
    x = np.arange(128, dtype=np.float64)
    img = np.tile(3.0 * x + 5.0, (8, 1))  # ramp along columns
    out = imresize(img, output_shape=(8, 32))
    u = 4 * np.arange(32) + 1.5  # 0-based centre of output column i at scale 1/4
    inner = slice(2, 30)  # taps of columns 2..29 stay inside the image
    assert np.allclose(out[:, inner], 3.0 * u[inner] + 5.0, atol=1e-9)
    # at the borders the mirrored (not linear) extension makes it differ
    assert abs(out[0, 0] - (3.0 * u[0] + 5.0)) > 0.1


def test_linear_ramp_upsample_is_exact_in_the_interior():
    x = np.arange(16, dtype=np.float64)
    img = np.tile(2.0 * x + 1.0, (4, 1))
    out = imresize(img, output_shape=(4, 128))
    c = (np.arange(128) + 0.5) / 8 - 0.5
    inner = (c >= 1) & (c <= 14)
    assert np.allclose(out[:, inner], 2.0 * c[inner] + 1.0, atol=1e-9)


def test_flip_commutes():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    for s in (4, 8, 16):
        lr, up = degrade(img, s)
        lr_f, up_f = degrade(img[:, ::-1].copy(), s)
        assert np.array_equal(lr_f, lr[:, ::-1]) and np.array_equal(up_f, up[:, ::-1])


# ---------------------------------------------------------------------- PIL (antialiased bicubic, a = -0.5)
def test_float_path_matches_pil_in_the_interior(face128):
    for s in (4, 8):
        n = 128 // s
        for ch in range(3):
            ours = imresize(face128[..., ch].astype(np.float64), output_shape=(n, n))
            pil = np.asarray(Image.fromarray(face128[..., ch].astype(np.float32)).resize((n, n), Image.BICUBIC))
            b = 2  # PIL renormalises truncated kernels at the border instead of mirroring
            assert np.abs(ours - pil)[b:-b, b:-b].max() < 1e-3


def test_uint8_path_matches_pil_within_one_level(face128):
    for s in (4, 8):
        n = 128 // s
        pil = np.asarray(Image.fromarray(face128).resize((n, n), Image.BICUBIC)).astype(int)
        # PIL resizes columns first; MATLAB rows first (ties). Same order -> same numbers:
        ours_cols_first = imresize(face128.transpose(1, 0, 2), output_shape=(n, n)).transpose(1, 0, 2)
        assert np.abs(ours_cols_first.astype(int) - pil)[2:-2, 2:-2].max() <= 1
        # MATLAB order: within one grey level except where the first pass saturates
        d = np.abs(imresize(face128, output_shape=(n, n)).astype(int) - pil)[2:-2, 2:-2]
        assert np.mean(d <= 1) > 0.9


# ---------------------------------------------------------------------- torch
def test_torch_matches_numpy_and_is_differentiable(face128):
    x = torch.from_numpy(face128.transpose(2, 0, 1).astype(np.float64) / 255.0)[None].repeat(2, 1, 1, 1)
    for s in (4, 8, 16):
        y = imresize_torch(x, 1 / s)
        ref = imresize(face128.astype(np.float64) / 255.0, 1 / s)
        assert y.shape == (2, 3, 128 // s, 128 // s)
        assert np.allclose(y[1].numpy().transpose(1, 2, 0), ref, atol=1e-10)
        q = imresize_torch(x.float(), 1 / s, quantize=True)
        q8 = (q[0] * 255).round().to(torch.uint8).numpy().transpose(1, 2, 0)
        assert np.array_equal(q8, imresize(face128, 1 / s))
    xg = x.float().clone().requires_grad_(True)
    imresize_torch(imresize_torch(xg, 1 / 8), 8).mean().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()
    assert imresize_torch(x.float(), size=(40, 52)).shape == (2, 3, 40, 52)


# ---------------------------------------------------------------------- degrade
def test_degrade_shapes_and_types(face128):
    for s, n in ((4, 32), (8, 16), (16, 8)):
        lr, up = degrade(face128, s)
        assert lr.shape == (n, n, 3) and up.shape == (128, 128, 3)
        assert lr.dtype == np.uint8 and up.dtype == np.uint8
        assert np.array_equal(up, imresize(lr, s))
    with pytest.raises(ValueError):
        degrade(face128[:127], 8)
    with pytest.raises(TypeError):
        degrade(face128.astype(np.float32), 8)


def test_degrade_all_writes_the_layout(tmp_path, face128):
    import pandas as pd

    (tmp_path / "faces" / "celeba").mkdir(parents=True)
    Image.fromarray(face128).save(tmp_path / "faces" / "celeba" / "a.png")
    pd.DataFrame({"name": ["a"], "dataset": ["celeba"]}).to_csv(tmp_path / "faces" / "faces.csv", index=False)
    out = degrade_all(tmp_path / "faces", tmp_path / "lr", {"scales": [4, 8], "workers": 1}, progress=False)
    assert len(out) == 2
    for s in (4, 8):
        lr = np.asarray(Image.open(tmp_path / "lr" / f"x{s}" / "celeba" / "a.png"))
        up = np.asarray(Image.open(tmp_path / "lr" / f"x{s}" / "up" / "celeba" / "a.png"))
        ref_lr, ref_up = degrade(face128, s)
        assert np.array_equal(lr, ref_lr) and np.array_equal(up, ref_up)


# ---------------------------------------------------------------------- blind degradation
def test_blind_degrade_is_seeded_and_in_range(face128):
    a = blind_degrade(face128, 5, "paper")
    b = blind_degrade(face128, 5, "paper")
    assert np.array_equal(a["lr"], b["lr"]) and np.array_equal(a["lr_up"], b["lr_up"]) and a["params"] == b["params"]
    assert a["lr_up"].shape == face128.shape and a["lr_up"].dtype == np.uint8
    sizes, kinds = [], set()
    for seed in range(40):
        r = blind_degrade(face128, seed, "paper")
        sizes.append(r["lr"].shape[0])
        kinds.add(r["params"]["blur"])
        assert 15 <= r["params"]["jpeg_quality"] <= 40
    lo, hi = BLIND_PRESETS["paper"]["lr_frac"]
    assert min(sizes) >= round(128 * lo) and max(sizes) <= round(128 * hi)
    assert kinds == {"gaussian", "average", "median", "motion"}
    rel = [blind_degrade(face128, s, "released")["params"] for s in range(60)]
    assert any(p.get("gray") for p in rel) and any("blur" not in p for p in rel)
    assert not np.array_equal(blind_degrade(face128, 1, "paper")["lr_up"], blind_degrade(face128, 2, "paper")["lr_up"])


def test_pil_degrade_is_pils_bicubic_and_not_matlabs():
    """The family-A LR: PIL's antialiased bicubic, 128 -> 16 -> 128, uint8; close to MATLAB's
    imresize LR but not equal (the protocol-sensitivity table measures what that moves)."""
    from PIL import Image
    from skimage.data import astronaut

    from fsrlib.data.degrade import degrade, pil_degrade

    hr = np.asarray(Image.fromarray(astronaut()).resize((128, 128), Image.BICUBIC))
    lr, up = pil_degrade(hr, 8)
    assert lr.shape == (16, 16, 3) and up.shape == (128, 128, 3) and lr.dtype == up.dtype == np.uint8
    assert np.array_equal(lr, np.asarray(Image.fromarray(hr).resize((16, 16), Image.BICUBIC)))
    m_lr, _ = degrade(hr, 8)
    d = np.abs(lr.astype(int) - m_lr.astype(int))
    assert 0 < d.mean() < 8
    with pytest.raises(ValueError, match="divisible"):
        pil_degrade(hr[:100], 8)
