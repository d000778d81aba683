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
