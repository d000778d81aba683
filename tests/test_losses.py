"""Each loss against a hand-computed value on small tensors (fsrlib.losses)."""
from __future__ import annotations

import math
import urllib.error

import pytest
import torch
import torch.nn.functional as F

from fsrlib import losses as L
from fsrlib.io import OfflineError
from fsrlib.losses import vgg as V
from fsrlib.registry import ConfigError


def tiny_vgg():
    torch.manual_seed(0)
    return V.make_vgg19_features(width=1 / 16, upto=8)


@pytest.fixture
def vgg():
    with V.vgg_override(tiny_vgg):
        yield


def t(*vals, shape=None):
    x = torch.tensor(vals, dtype=torch.float32)
    return x.view(shape) if shape else x


# ====================================================================== pixel
def test_pixel_losses_hand_values():
    pred = t(0, 1, 2, 3, shape=(1, 1, 2, 2))
    hr = torch.zeros(1, 1, 2, 2)
    out, batch = {"sr": pred}, {"hr": hr}
    assert L.build_loss({"type": "l1"})(out, batch).item() == pytest.approx(1.5)
    assert L.build_loss({"type": "mse", "weight": 2})(out, batch).item() == pytest.approx(2 * 14 / 4)
    ch = L.build_loss({"type": "charbonnier", "eps": 1.0})(out, batch).item()
    assert ch == pytest.approx(sum(math.sqrt(v * v + 1) for v in range(4)) / 4)
    # SPARNet: paper L2 by default, code L1 as a parameter
    assert L.build_loss({"type": "sparnet_pix"}).criterion == "l2"
    assert L.build_loss({"type": "sparnet_pix", "criterion": "l1"})(out, batch).item() == pytest.approx(1.5)
    # mask: mean over the masked elements only; a 4-channel mask is reduced to its union
    batch["m"] = t(0, 1, 0, 1, shape=(1, 1, 2, 2))
    assert L.build_loss({"type": "l1", "mask": "m"})(out, batch).item() == pytest.approx((1 + 3) / 2)
    batch["regions"] = torch.zeros(1, 4, 2, 2)
    batch["regions"][0, 0, 0, 0] = batch["regions"][0, 3, 1, 1] = 1
    assert L.build_loss({"type": "mse", "mask": "regions"})(out, batch).item() == pytest.approx((0 + 9) / 2)
    # pred / target pick other keys
    loss = L.build_loss({"type": "l1", "pred": "coarse", "target": "lr_up"})
    assert loss({"coarse": pred}, {"lr_up": pred + 0.5}).item() == pytest.approx(0.5)
    with pytest.raises(KeyError, match="no 'coarse'"):
        loss({"sr": pred}, {"lr_up": pred})


def test_registry_rejects_bad_configs():
    with pytest.raises(ConfigError, match="unknown parameter"):
        L.build_loss({"type": "l1", "wieght": 1})
    with pytest.raises(ConfigError, match="unknown loss"):
        L.build_loss({"type": "l3"})
    with pytest.raises(ConfigError, match="mask"):
        L.build_loss({"type": "adversarial", "mask": "regions"})
    with pytest.raises(ConfigError, match="gan_type"):
        L.build_loss({"type": "adversarial", "gan_type": "wgan"})


def test_build_losses_skips_zero_weight_and_names():
    ls = L.build_losses([{"type": "l1"}, {"type": "perceptual", "weight": 0}, {"type": "l1", "weight": 2},
                         {"type": "mse", "name": "pix"}])
    assert [x.name for x in ls] == ["l1", "l1_2", "pix"]


# ====================================================================== perceptual
def test_perceptual_matches_manual_features(vgg):
    torch.manual_seed(1)
    x, y = torch.rand(2, 3, 16, 16, requires_grad=True), torch.rand(2, 3, 16, 16)
    loss = L.build_loss({"type": "perceptual", "layers": ["relu1_2", "conv2_2"], "layer_weights": [1.0, 0.5]})
    v = loss({"sr": x}, {"hr": y})
    net = tiny_vgg()
    mean = torch.tensor(V.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(V.IMAGENET_STD).view(1, 3, 1, 1)

    def feats(img, upto):
        return net[: upto + 1]((img - mean) / std)

    names = V.vgg19_layer_names()
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"] and names[-1] == "pool5"
    i1, i2 = names.index("relu1_2"), names.index("conv2_2")
    expect = ((feats(x, i1) - feats(y, i1)).abs().mean() + 0.5 * (feats(x, i2) - feats(y, i2)).abs().mean())
    assert v.item() == pytest.approx(expect.item(), rel=1e-5)
    v.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # l2 distance, [-1, 1] input range = the [0, 1] image mapped
    l2 = L.build_loss({"type": "perceptual", "layers": ["relu2_2"], "criterion": "l2", "input_range": [-1, 1]})
    xd = x.detach()
    i = names.index("relu2_2")
    expect2 = (feats((xd + 1) / 2, i) - feats((y + 1) / 2, i)).pow(2).mean()
    assert l2({"sr": xd}, {"hr": y}).item() == pytest.approx(expect2.item(), rel=1e-5)
    with pytest.raises(ConfigError, match="unknown VGG19 layer"):
        L.build_loss({"type": "perceptual", "layers": ["relu9_9"]})


@pytest.fixture
def offline(monkeypatch, tmp_path):
    calls = []

    def no_net(*a, **k):
        calls.append(a)
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr("fsrlib.io.urllib.request.urlopen", no_net)
    monkeypatch.setenv("FSR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return calls


def test_perceptual_offline_error_and_weight_zero(offline, tmp_path):
    with pytest.raises(OfflineError, match="vgg19-dcbb9e9d.pth"):
        L.build_loss({"type": "perceptual", "weight": 1.0})
    assert len(offline) == 1
    assert L.build_loss({"type": "perceptual", "weight": 0}) is None  # not built at all
    assert L.build_losses([{"type": "l1"}, {"type": "perceptual", "weight": 0.0}])[0].name == "l1"
    kr = L.build_loss({"type": "wnet_key_region", "per_weight": 0})  # masked MSE only: no VGG
    assert kr.per is None
    assert len(offline) == 1  # none of these touched the network
    # a local weights file (torchvision key names) is used without any download
    net = V.make_vgg19_features(upto=3)
    path = tmp_path / "vgg_local.pth"
    torch.save({f"features.{k}": v for k, v in net.state_dict().items()}, path)
    loss = L.build_loss({"type": "perceptual", "layers": ["relu1_2"], "weights_path": str(path),
                         "weights_sha256": None})
    assert torch.equal(loss.vgg.net[2].weight, net[2].weight)
    assert len(offline) == 1


# ====================================================================== GAN
def test_split_d_output_formats():
    s = torch.zeros(2, 1)
    assert L.split_d_output(s) == [([], s)]
    f1, f2 = torch.ones(1), torch.ones(2)
    assert L.split_d_output([f1, f2, s])[0][0] == [f1, f2]
    ms = L.split_d_output([[f1, s], [f2, s]])
    assert len(ms) == 2 and ms[1][0] == [f2]


class FixedD:
    """A 'discriminator context' returning fixed outputs."""

    def __init__(self, fake, real):
        self._f, self._r = L.split_d_output(fake), L.split_d_output(real)

    def fake(self, key):
        return self._f

    def real(self, key):
        return self._r


def test_adversarial_hand_values():
    log2 = math.log(2.0)
    zero = torch.zeros(2, 1)
    van = L.build_loss({"type": "adversarial", "gan_type": "vanilla"})
    assert van({}, {}, FixedD(zero, zero)).item() == pytest.approx(log2)  # -log sigmoid(0)
    assert van.d_value(zero, zero).item() == pytest.approx(2 * log2)
    logit = torch.tensor([[2.0]])
    assert van({}, {}, FixedD(logit, zero)).item() == pytest.approx(math.log1p(math.exp(-2.0)))

    hinge = L.build_loss({"type": "adversarial", "gan_type": "hinge", "weight": 2.0})
    fake = t(0.5, -1.5, shape=(1, 1, 1, 2))
    assert hinge({}, {}, FixedD(fake, fake)).item() == pytest.approx(2 * 0.5)  # 2 * -mean(fake)
    real, fake = t(2.0, 0.0, shape=(1, 1, 1, 2)), t(-2.0, 0.0, shape=(1, 1, 1, 2))
    assert hinge.d_value(real, fake).item() == pytest.approx(0.5 + 0.5)
    half = L.build_loss({"type": "adversarial", "gan_type": "hinge", "d_half": True})
    assert half.d_value(real, fake).item() == pytest.approx(0.5)

    ls = L.build_loss({"type": "adversarial", "gan_type": "lsgan"})
    f = t(0.0, 2.0)
    assert ls({}, {}, FixedD(f, f)).item() == pytest.approx(1.0)  # mean((f-1)^2)
    assert ls.d_value(t(1.0, 3.0), f).item() == pytest.approx(2.0 + 2.0)

    # two scales: mean (SPARNetHD code) vs sum (eq. 8)
    two = [[t(1.0)], [t(3.0)]]
    m = L.build_loss({"type": "adversarial", "gan_type": "hinge"})
    s = L.build_loss({"type": "adversarial", "gan_type": "hinge", "scale_reduction": "sum"})
    assert m({}, {}, FixedD(two, two)).item() == pytest.approx(-2.0)
    assert s({}, {}, FixedD(two, two)).item() == pytest.approx(-4.0)
    with pytest.raises(RuntimeError, match="discriminator"):
        m({}, {}, None)


def test_feature_matching_hand_value():
    # two scales, two feature layers + score each
    fake = [[t(1.0, 1.0), t(0.0, 0.0, 0.0, 0.0), t(9.0)], [t(2.0), t(4.0, 4.0), t(9.0)]]
    real = [[t(0.0, 2.0), t(1.0, 1.0, 1.0, 1.0), t(-9.0)], [t(0.0), t(1.0, 3.0), t(-9.0)]]
    # scale 1: mean|.| = 1 + 1 = 2 ; scale 2: 2 + (3 + 1)/2 = 4 -> mean 3, sum 6
    fm = L.build_loss({"type": "feature_matching", "weight": 10})
    assert fm({}, {}, FixedD(fake, real)).item() == pytest.approx(10 * 3.0)
    fm_sum = L.build_loss({"type": "feature_matching", "scale_reduction": "sum", "layer_weights": [1.0, 0.5]})
    assert fm_sum({}, {}, FixedD(fake, real)).item() == pytest.approx((1 + 0.5) + (2 + 1.0))
    with pytest.raises(ValueError, match="features"):
        fm({}, {}, FixedD(t(1.0), t(1.0)))


def test_feature_matching_detaches_real():
    a = torch.ones(3, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    v = L.build_loss({"type": "feature_matching"})({}, {}, FixedD([[a, t(0.0)]], [[b, t(0.0)]]))
    v.backward()
    assert a.grad is not None and b.grad is None


# ====================================================================== W-Net
def test_key_region_masked_mse_hand_value():
    sr = torch.zeros(2, 3, 4, 4)
    hr = torch.zeros(2, 3, 4, 4)
    sr[:, :, 0, 0] = 2.0  # error 4 per channel at (0, 0)
    sr[:, :, 3, 3] = 1.0  # error 1 per channel at (3, 3)
    regions = torch.zeros(2, 4, 4, 4)
    regions[:, 0, 0, :2] = 1  # eyes: (0,0), (0,1) -> area 2, sum err 3*4
    regions[:, 1, 3, 3] = 1   # brows: (3,3) -> area 1, sum err 3*1
    regions[0, 3, 1, 1] = 1   # mouth in image 0 only, zero error; nose empty everywhere
    batch = {"hr": hr, "regions": regions}
    kr = L.build_loss({"type": "wnet_key_region", "per_weight": 0, "weight": 0.5})
    # per image: eyes 12 / (3*2) = 2, brows 3 / 3 = 1, mouth 0, nose skipped -> 3; mean over 2 images
    assert kr({"sr": sr}, batch).item() == pytest.approx(0.5 * 3.0)
    full = L.build_loss({"type": "wnet_key_region", "per_weight": 0, "mse_norm": "full"})
    assert full({"sr": sr}, batch).item() == pytest.approx((12 + 3) / 48)
    rw = L.build_loss({"type": "wnet_key_region", "per_weight": 0, "region_weights": [1, 0, 0, 0]})
    assert rw({"sr": sr}, batch).item() == pytest.approx(2.0)


def test_key_region_perceptual_term(vgg):
    torch.manual_seed(2)
    sr, hr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    regions = torch.zeros(2, 4, 16, 16)
    regions[:, 0, 2:6, 2:10] = 1
    regions[1, 2, 8:12, 4:12] = 1  # nose only in image 1
    kr = L.build_loss({"type": "wnet_key_region", "mse_weight": 0})
    per = L.build_loss({"type": "perceptual", "layers": ["relu2_2"], "criterion": "l2"})
    expect = 0.0
    for i in range(2):
        for r in range(4):
            m = regions[i:i + 1, r:r + 1]
            if m.sum() > 0:
                expect += per({"sr": sr[i:i + 1] * m}, {"hr": hr[i:i + 1] * m}).item()
    assert kr({"sr": sr}, {"hr": hr, "regions": regions}).item() == pytest.approx(expect / 2, rel=1e-5)
    assert set(kr.terms) == {"mse", "per"}


def test_parsing_map_losses():
    p = torch.full((2, 3, 4, 4), 0.5)
    skin = torch.zeros(2, 3, 4, 4)
    skin[:, :, :2] = 1
    assert L.build_loss({"type": "wnet_parsing"})({"parsing": p}, {"skin": skin}).item() == pytest.approx(0.25)
    one = L.build_loss({"type": "wnet_parsing"})({"parsing": p[:, :1]}, {"skin": skin})  # 1-ch vs replicated
    assert one.item() == pytest.approx(0.25)
    skin_lr = torch.rand(2, 3, 2, 2)
    pn = L.build_loss({"type": "parsingnet_l1"})
    assert pn({"parsing": skin_lr + 0.1}, {"skin_lr": skin_lr}).item() == pytest.approx(0.1, rel=1e-5)
    with pytest.raises(ValueError, match="resize"):
        L.build_loss({"type": "wnet_parsing", "target": "skin_lr"})({"parsing": p}, {"skin_lr": skin_lr})
    up = L.build_loss({"type": "wnet_parsing", "target": "skin_lr", "resize": "nearest"})
    ref = F.interpolate(skin_lr, size=4, mode="nearest")
    assert up({"parsing": p}, {"skin_lr": skin_lr}).item() == pytest.approx((p - ref).pow(2).mean().item())


# ====================================================================== thesis
def test_pgnet_content_hand_value():
    hr = torch.zeros(1, 3, 2, 2)
    parts = torch.zeros(1, 11, 2, 2)
    out = {"coarse": torch.ones(1, 3, 2, 2), "parsing": torch.full((1, 11, 2, 2), 2.0),
           "sr": torch.full((1, 3, 2, 2), 3.0)}
    batch = {"hr": hr, "parts11": parts}
    loss = L.build_loss({"type": "pgnet_content"})
    assert loss(out, batch).item() == pytest.approx(1 + 4 + 9)
    assert {k: v.item() for k, v in loss.terms.items()} == {"coarse": 1.0, "parsing": 4.0, "final": 9.0}
    w = L.build_loss({"type": "pgnet_content", "coarse_weight": 0.5, "parsing_weight": 0, "final_weight": 2,
                      "weight": 10})
    assert w(out, batch).item() == pytest.approx(10 * (0.5 + 18))
    assert "parsing" not in w.pred_keys()
