"""Baselines: Bicubic, SRCNN, VDSR, EDSR, SRResNet (input convention, shapes, counts, grads)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from fsrlib.models import MODELS, build_model, count_params

# slim "demo" widths of the same architectures (see each module's docstring)
SLIM = {
    "srcnn": {"widths": [8, 4]},
    "vdsr": {"depth": 4, "ch": 4},
    "edsr": {"ch": 4, "n_blocks": 2},
    "srresnet": {"ch": 4, "n_blocks": 2},
    "bicubic": {},
}
LEARNED = ["srcnn", "vdsr", "edsr", "srresnet"]


def test_registered():
    for name in SLIM:
        assert name in MODELS


@pytest.mark.parametrize("name", list(SLIM))
@pytest.mark.parametrize("scale", [4, 8, 16])
def test_output_shape_from_the_right_input(name, scale):
    torch.manual_seed(0)
    m = build_model({"type": name, **SLIM[name]}, scale=scale).eval()
    size = 128 if m.input_kind == "upsampled" else 128 // scale
    assert m.expected_input_size() == size and m.scale == scale
    assert m.input_kind == ("lr" if name in ("edsr", "srresnet") else "upsampled")
    with torch.no_grad():
        y = m(torch.rand(1, 3, size, size))
    assert y.shape == (1, 3, 128, 128) and torch.isfinite(y).all()


@pytest.mark.parametrize("cfg,expected", [
    ({"type": "srcnn"}, 3 * 64 * 81 + 64 + 64 * 32 * 25 + 32 + 32 * 3 * 25 + 3),  # 69,251
    ({"type": "vdsr"}, 3 * 64 * 9 + 64 + 18 * (64 * 64 * 9 + 64) + 64 * 3 * 9 + 3),  # 668,227
    ({"type": "edsr", "scale": 4}, 1.518e6),  # EDSR-baseline x4 (official 1.5 M)
    ({"type": "srresnet", "scale": 4}, 1.55e6),  # Ledig et al. SRResNet x4 (1.55 M)
    ({"type": "bicubic"}, 0),
])
def test_param_counts(cfg, expected):
    n = count_params(build_model(cfg))
    assert n == expected if expected == 0 else abs(n - expected) / expected < 0.005, n


def test_bicubic_is_identity_and_weightless():
    m = build_model("bicubic")
    x = torch.rand(2, 3, 128, 128)
    assert torch.equal(m(x), x) and count_params(m) == 0 and m.state_dict() == {}
    assert next(m.buffers()).device == x.device


def test_structure():
    v = build_model("vdsr")
    assert sum(isinstance(x, nn.Conv2d) for x in v.modules()) == 20
    e = build_model("edsr")
    assert sum(isinstance(x, nn.PixelShuffle) for x in e.modules()) == 3
    assert not any(isinstance(x, nn.BatchNorm2d) for x in e.modules())
    s = build_model("srresnet", scale=16)
    assert sum(isinstance(x, nn.PixelShuffle) for x in s.modules()) == 4
    convs = [x for x in s.modules() if isinstance(x, nn.Conv2d)]
    assert convs[0].kernel_size == (9, 9) and convs[-1].kernel_size == (9, 9)
    assert sum(isinstance(x, nn.BatchNorm2d) for x in s.modules()) == 2 * 16 + 1


def test_edsr_mean_shift_option():
    a = build_model({"type": "edsr", **SLIM["edsr"], "mean_shift": False})
    b = build_model({"type": "edsr", **SLIM["edsr"]})
    assert count_params(a) == count_params(b)
    assert a.rgb_mean.abs().sum() == 0 and b.rgb_mean.abs().sum() > 0


def test_vdsr_global_residual():
    m = build_model({"type": "vdsr", **SLIM["vdsr"]})
    for p in m.parameters():
        nn.init.zeros_(p)
    x = torch.rand(1, 3, 128, 128)
    assert torch.equal(m(x), x)


@pytest.mark.parametrize("name", LEARNED)
def test_gradients_finite_on_every_parameter(name):
    torch.manual_seed(0)
    m = build_model({"type": name, **SLIM[name]}, scale=8)
    s = m.expected_input_size()
    (m(torch.rand(2, 3, s, s)) - torch.rand(2, 3, 128, 128)).pow(2).mean().backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", LEARNED)
def test_same_seed_same_output(name):
    outs = []
    x = torch.rand(1, 3, 128, 128)
    for _ in range(2):
        torch.manual_seed(7)
        m = build_model({"type": name, **SLIM[name]}, scale=8).eval()
        s = m.expected_input_size()
        with torch.no_grad():
            outs.append(m(x[..., :s, :s]))
    assert torch.equal(outs[0], outs[1])


def test_bad_scale():
    with pytest.raises(ValueError):
        build_model("edsr", scale=3)


# ---------------------------------------------------------------------- global residual (demo switch)
@pytest.mark.parametrize("cfg,scale", [
    ({"type": "fishfsrnet", "n_feats": 4}, 8),
    ({"type": "pgnet", "n_feats": 4, "n_blocks": 1, "fc_reduction": 2, "prior_ch": 4, "prior_n_res": 1,
      "hg_depth": 2, "fusion_ch": 4}, 8),
    ({"type": "sparnet", "min_ch": 4, "max_ch": 8, "res_depth": 1, "att_ch": 4}, 4),
    ({"type": "wnet", "input_mode": "native", "n_feats": 8, "w_scales": 1, "enc_levels": 2, "hg_depth": 2,
      "n_resblocks": 1}, 8),
])
def test_global_residual_adds_the_bicubic_input(cfg, scale):
    """Same weights with and without the switch: the outputs differ by exactly the bicubic
    input (the upsampled input itself for models that take one)."""
    from fsrlib.models.common import bicubic_up

    torch.manual_seed(0)
    plain = build_model(cfg, scale=scale).eval()
    torch.manual_seed(0)
    res = build_model({**cfg, "global_residual": True}, scale=scale).eval()
    res.load_state_dict(plain.state_dict())
    n = plain.expected_input_size()
    x = torch.rand(2, 3, n, n)
    prior = torch.rand(2, 1, n, n) if plain.needs_prior else None
    with torch.no_grad():
        d = res(x, prior) - plain(x, prior)
    want = x if plain.input_kind == "upsampled" else bicubic_up(x, scale)
    assert d.shape == (2, 3, 128, 128)
    assert torch.allclose(d, want, atol=1e-5)
