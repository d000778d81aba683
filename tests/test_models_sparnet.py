"""SPARNet / SPARNetHD: layout, parameter counts, attention maps, ablation switches.

Full configurations are built on the meta device (no memory, no compute) for counts and
shapes; forward/backward tests use slim widths."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from fsrlib.models import build_model, count_params
from fsrlib.models.sparnet import FAU, HourglassAttention, SPARNet

SLIM = dict(min_ch=4, max_ch=8, res_depth=1, att_ch=4)  # 3 down + 1 body + 3 up = 7 FAUs
TINY = dict(SLIM, in_size=32, out_size=32, min_feat_size=8)  # 2 + 2 + 2 = 6 FAUs at 32 px


def meta(cfg, **kw):
    with torch.device("meta"):
        return build_model(cfg, **kw)


def out_ch(u: FAU) -> int:
    return u.conv2[1].out_channels  # ConvLayer = [reflection pad, conv, norm, act]


def hg_depths(m: SPARNet) -> list[int | None]:
    return [u.att_func.depth if isinstance(u.att_func, HourglassAttention) else None for u in m.faus]


# ------------------------------------------------------------------ parameter counts (facts.md)
@pytest.mark.parametrize("cfg,expected", [
    ({"type": "sparnet", "act": "leakyrelu"}, 10.519e6),
    ({"type": "sparnet", "act": "leakyrelu", "att_type": "spar3d"}, 11.56e6),
    ({"type": "sparnet_light", "act": "leakyrelu"}, 5.242e6),
    ({"type": "sparnethd", "act": "leakyrelu"}, 85.79e6),
    ({"type": "sparnet"}, 10.53e6),  # PReLU (paper default), spec 2.4
])
def test_param_counts(cfg, expected):
    n = count_params(meta(cfg))
    assert abs(n - expected) / expected < 0.005, n


def test_default_layout_matches_spec_table():
    m = meta("sparnet")
    assert m.n_faus == 16 and len(m.encoder) == 3 and len(m.res_layers) == 10 and len(m.decoder) == 3
    assert hg_depths(m) == [4, 3, 2] + [2] * 10 + [3, 4, 5]
    assert [out_ch(u) for u in m.faus] == [64, 128, 128] + [128] * 10 + [128, 64, 32]
    assert isinstance(m.faus[4].shortcut_func, nn.Identity)
    assert not isinstance(m.faus[0].shortcut_func, nn.Identity)
    assert any(isinstance(x, nn.PReLU) for x in m.modules())
    assert not any(isinstance(x, nn.PReLU) for x in meta("sparnet", act="leakyrelu").modules())
    assert m.input_kind == "upsampled" and m.value_range == (-1.0, 1.0) and m.expected_input_size() == 128


def test_sparnethd_layout_and_shapes():
    m = meta("sparnethd")
    assert m.n_faus == 17 and len(m.encoder) == 4 and len(m.res_layers) == 9 and len(m.decoder) == 4
    assert hg_depths(m) == [4, 3, 2, 1] + [1] * 9 + [2, 3, 4, 5]  # bottleneck 16 everywhere
    assert m.head[1].out_channels == 102
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert convs and all(hasattr(c, "weight_orig") for c in convs)  # spectral norm on every conv
    assert any(isinstance(x, nn.InstanceNorm2d) for x in m.modules())
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    with torch.device("meta"):  # shape inference only, no compute
        out = m.eval().forward_maps(torch.empty(1, 3, 512, 512))
    assert out["sr"].shape == (1, 3, 512, 512) and len(out["attention"]) == 17
    assert out["attention"][-1].shape == (1, 1, 512, 512)


# ------------------------------------------------------------------ forward / backward (slim)
@pytest.mark.parametrize("scale", [4, 8, 16])
def test_output_shape_every_scale(scale):
    # same architecture for every scale: the input is the LR bicubic-upsampled to 128
    m = meta({"type": "sparnet", **SLIM}, scale=scale)
    assert m.scale == scale and m.expected_input_size() == 128
    with torch.device("meta"):
        out = m.eval().forward_maps(torch.empty(2, 3, 128, 128))
    assert out["sr"].shape == (2, 3, 128, 128)
    assert [a.shape[-1] for a in out["attention"]] == [64, 32, 16, 16, 32, 64, 128]
    assert all(a.shape[1] == 1 for a in out["attention"])
    assert out["attention_fau"] == list(range(1, 8))


def test_real_forward_at_128():
    torch.manual_seed(0)
    m = build_model({"type": "sparnet", "min_ch": 2, "max_ch": 4, "res_depth": 0, "att_ch": 2}).eval()
    with torch.no_grad():
        out = m.forward_maps(torch.rand(1, 3, 128, 128))
    assert out["sr"].shape == (1, 3, 128, 128) and torch.isfinite(out["sr"]).all()
    assert [a.shape[-1] for a in out["attention"]] == [64, 32, 16, 32, 64, 128]


def test_gradients_finite_on_every_parameter():
    torch.manual_seed(0)
    m = build_model({"type": "sparnet", **TINY})
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    (m(x) - y).abs().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert sum(float(p.grad.abs().sum()) for p in m.parameters()) > 0


def test_attention_maps_strictly_inside_unit_interval():
    torch.manual_seed(1)
    m = build_model({"type": "sparnet", **TINY}).eval()
    with torch.no_grad():
        maps = m.forward_maps(torch.rand(2, 3, 32, 32))["attention"]
    assert len(maps) == m.n_faus == 6
    for a in maps:
        assert a.min() > 0 and a.max() < 1


def test_same_seed_same_output():
    x = torch.rand(1, 3, 32, 32)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        m = build_model({"type": "sparnet", **TINY}).eval()
        with torch.no_grad():
            outs.append(m(x))
    assert torch.equal(outs[0], outs[1])


def test_value_range_mapping():
    torch.manual_seed(0)
    m = build_model({"type": "sparnet", **TINY}).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        raw = m._forward(x * 2 - 1)["sr"]
        assert torch.allclose(m(x), (raw + 1) / 2)


# ------------------------------------------------------------------ ablation switches
@pytest.mark.parametrize("n", [0, 1, 2, 4, 8, 16])
def test_vn_attention_only_in_last_n_faus(n):
    m = meta("sparnet", n_att_from_back=n)
    has = [u.att_func is not None for u in m.faus]
    assert has == [False] * (16 - n) + [True] * n


def test_vn1_forward_has_exactly_one_map():
    torch.manual_seed(0)
    m = build_model({"type": "sparnet", **TINY, "n_att_from_back": 1}).eval()
    with torch.no_grad():
        out = m.forward_maps(torch.rand(1, 3, 32, 32))
    assert len(out["attention"]) == 1 and out["attention_fau"] == [m.n_faus]
    assert out["attention"][0].shape == (1, 1, 32, 32)


def test_baseline_has_no_attention_and_same_feature_branches():
    base, full = meta("sparnet_baseline"), meta("sparnet")
    assert all(u.att_func is None for u in base.faus)
    att = sum(count_params(u.att_func) for u in full.faus)
    assert count_params(base) + att == count_params(full)
    torch.manual_seed(0)
    m = build_model({"type": "sparnet_baseline", **TINY}).eval()
    with torch.no_grad():
        out = m.forward_maps(torch.rand(1, 3, 32, 32))
    # no attention, so it declares none (the report then draws no attention figure for it)
    assert m.maps == () and set(out) == {"sr"} and out["sr"].shape == (1, 3, 32, 32)
    assert meta("sparnet").maps == ("attention", "attention_fau")


@pytest.mark.parametrize("m_size,depths", [
    (2, [5, 4, 3] + [3] * 10 + [4, 5, 6]),
    (4, [4, 3, 2] + [2] * 10 + [3, 4, 5]),
    (8, [3, 2, 1] + [1] * 10 + [2, 3, 4]),
    (16, [2, 1, 0] + [0] * 10 + [1, 2, 3]),  # 0 = plain-conv attention (spec GUESS)
])
def test_bottleneck_size_sets_hourglass_depth(m_size, depths):
    m = meta("sparnet", bottleneck_size=m_size)
    assert hg_depths(m) == depths
    for u in m.faus:  # S16: the plain branch still produces a map (attention kept, not dropped)
        if u.att_func.depth == 0:
            assert hasattr(u.att_func, "plain") and len(u.att_func.plain) == 2


def test_s16_plain_attention_runs():
    torch.manual_seed(0)
    m = build_model({"type": "sparnet", **TINY, "bottleneck_size": 8}).eval()  # body 8x8 -> plain
    assert 0 in hg_depths(m)
    with torch.no_grad():
        maps = m.forward_maps(torch.rand(1, 3, 32, 32))["attention"]
    assert len(maps) == m.n_faus and all(0 < a.min() and a.max() < 1 for a in maps)


def test_3d_attention_is_c_channel():
    torch.manual_seed(0)
    m = build_model({"type": "sparnet_light", **{k: v for k, v in TINY.items() if k != "res_depth"}}).eval()
    with torch.no_grad():
        out = m.forward_maps(torch.rand(1, 3, 32, 32))
    assert [a.shape[1] for a in out["attention"]] == [out_ch(u) for u in m.faus]
    assert len(m.res_layers) == 1 + 3 - 2  # res_depth 1 at two down steps


@pytest.mark.parametrize("att,map_hw", [("rcan", (1, 1)), ("cbam", None)])
def test_rcan_cbam_variants(att, map_hw):
    torch.manual_seed(0)
    m = build_model({"type": f"sparnet_{att}", **TINY})
    x = torch.rand(2, 3, 32, 32)
    out = m.forward_maps(x)
    assert out["sr"].shape == (2, 3, 32, 32) and len(out["attention"]) == m.n_faus
    for a, u in zip(out["attention"], m.faus):
        assert 0 < a.min() and a.max() < 1
        if map_hw:
            assert a.shape[2:] == map_hw and a.shape[1] > 1
        else:
            assert a.shape[1] == 1
    out["sr"].mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert not any(isinstance(x, HourglassAttention) for x in m.modules())


def test_fau_scales_and_norm_none():
    x = torch.rand(2, 4, 16, 16)
    assert FAU(4, 6, "down", hg_depth=1, att_ch=4)(x)[0].shape == (2, 6, 8, 8)
    assert FAU(4, 6, "up", hg_depth=3, att_ch=4)(x)[0].shape == (2, 6, 32, 32)
    u = FAU(4, 4, "none", hg_depth=2, norm="none", act="leakyrelu", att_ch=4)
    x.requires_grad_(True)
    y, a = u(x)
    y.sum().backward()  # no in-place op on x when there is no norm before the activation
    assert a.shape == (2, 1, 16, 16) and torch.isfinite(x.grad).all()


def test_bad_arguments():
    with pytest.raises(ValueError):
        SPARNet(att_type="nope")
    with pytest.raises(ValueError):
        SPARNet(n_att_from_back=17)
    with pytest.raises(ValueError):
        SPARNet(in_size=96)
