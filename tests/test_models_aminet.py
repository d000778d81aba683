"""AMINet: parameter counts vs the paper, shapes, attention maps, ablation presets, flags.

Full configurations are built on the meta device (no memory, no compute) for counts;
forward/backward tests use C = 4 (same topology)."""
from __future__ import annotations

import functools

import pytest
import torch

from fsrlib.models import MODELS, build_model, count_params
from fsrlib.models.aminet import AMINet
from fsrlib.models.common import SelectiveKernelFusion

TINY = dict(C=4)  # dims 4/8/16/32, head dims 4


def meta(cfg, **kw):
    with torch.device("meta"):
        return build_model(cfg, **kw)


@functools.lru_cache(maxsize=None)
def _n_params(cfg: str, kw: tuple) -> int:
    return count_params(meta(cfg, **dict(kw)))


def n_params(cfg: str, **kw) -> int:
    return _n_params(cfg, tuple(sorted(kw.items())))


# ------------------------------------------------------------------ parameter counts (paper)
@pytest.mark.parametrize("name,paper", [("aminet", 12.62e6), ("aminet_s", 8.2e6)])
def test_param_count_within_3_percent_of_paper(name, paper):
    n = n_params(name)
    assert abs(n - paper) / paper < 0.03, (name, n)


def test_component_budget_matches_table1_readings():
    full = n_params("aminet")
    # SKAF-kept reading of Table I: w/o SA 12.3 M, w/o RDFE 7.2 M (within 8 %)
    assert abs(n_params("aminet_no_sa_keep_skaf") - 12.3e6) / 12.3e6 < 0.08
    assert abs(n_params("aminet_no_rdfe_keep_skaf") - 7.2e6) / 7.2e6 < 0.08
    # w/o SKAF: paper 8.21 M
    assert abs(n_params("aminet_no_skaf") - 8.21e6) / 8.21e6 < 0.08
    assert n_params("aminet_no_skaf") < full


def test_param_matched_baselines():
    assert abs(n_params("aminet_restormer_matched") - 11.32e6) / 11.32e6 < 0.01
    assert abs(n_params("aminet_ffn_matched") - 12.11e6) / 12.11e6 < 0.01


ABLATIONS = [n for n in MODELS.names() if n.startswith("aminet_") and n != "aminet_s"
             and not n.endswith("_matched")]


def test_ablation_presets_exist():
    for n in ("aminet_no_sa", "aminet_no_rdfe", "aminet_no_skaf", "aminet_restormer", "aminet_ffn",
              "aminet_single3", "aminet_single5", "aminet_single7", "aminet_no_au", "aminet_no_frm",
              "aminet_skaf_none", "aminet_skaf_7_avgmax", "aminet_skaf_5_avgmax", "aminet_skaf_7_nopool",
              "aminet_skaf_7_avg", "aminet_skaf_7_max"):
        assert n in ABLATIONS


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_removes_parameters(name):
    assert n_params(name) < n_params("aminet")


def test_ablation_orderings():
    # single paths: larger kernel, more depthwise weights
    s3, s5, s7 = (n_params(f"aminet_single{k}") for k in (3, 5, 7))
    assert s3 < s5 < s7 < n_params("aminet")
    # Table V: keeping only the 5x5 (dropping the bigger 7x7) leaves fewer parameters
    assert n_params("aminet_skaf_5_avgmax") < n_params("aminet_skaf_7_avgmax")
    # the pooling variants differ only by the tiny squeeze conv
    assert n_params("aminet_skaf_7_avg") < n_params("aminet_skaf_7_avgmax")
    assert n_params("aminet_skaf_none") < n_params("aminet_skaf_7_nopool")


@pytest.mark.parametrize("name", ABLATIONS + ["aminet_restormer_matched", "aminet_ffn_matched"])
def test_ablation_presets_run(name):
    torch.manual_seed(0)
    m = build_model(name, **TINY)
    x = torch.rand(1, 3, 64, 64)
    out = m.forward_maps(x)
    assert out["sr"].shape == (1, 3, 64, 64) and torch.isfinite(out["sr"]).all()


# ------------------------------------------------------------------ shapes and maps
@pytest.mark.parametrize("scale", [8, 4])
def test_forward_shapes_and_maps(scale):
    torch.manual_seed(0)
    m = build_model("aminet", scale=scale, **TINY)
    assert m.input_kind == "upsampled" and m.value_range == (-1.0, 1.0) and m.expected_input_size() == 128
    shapes = {}
    hooks = [d.register_forward_hook(lambda mod, i, o, k=k: shapes.__setitem__(k, tuple(o.shape)))
             for k, d in enumerate(m.downs)]
    x = torch.rand(2, 3, 128, 128)
    out = m.forward_maps(x)
    for h in hooks:
        h.remove()
    assert out["sr"].shape == (2, 3, 128, 128)
    # spec section 2.0 table: F1 2C x 64, F2 4C x 32, F3 8C x 16
    assert shapes == {0: (2, 8, 64, 64), 1: (2, 16, 32, 32), 2: (2, 32, 16, 16)}
    assert set(out["features"]) == {"sa", "rdfe", "skaf"}
    for v in out["features"].values():
        assert v.shape == (2, 4, 128, 128)
    att = out["attention"]
    assert len(att) == 8  # one FRM map per LGFI
    assert [a.shape[-1] for a in att] == [128, 64, 32, 16, 16, 32, 64, 128]
    for a in att:
        assert a.shape[1] == 1 and (a > 0).all() and (a < 1).all()


def test_rejects_bad_input_size_and_scale():
    m = build_model("aminet", **TINY)
    with pytest.raises(ValueError):
        m(torch.rand(1, 3, 60, 60))
    with pytest.raises(ValueError):
        build_model("aminet", scale=3, **TINY)


def test_zero_init_tail_returns_input():
    m = build_model("aminet", zero_init_tail=True, **TINY).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(m(x), x, atol=1e-6)


def test_same_output_for_same_seed():
    x = torch.rand(1, 3, 64, 64)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        m = build_model("aminet", **TINY).eval()
        with torch.no_grad():
            outs.append(m(x))
    assert torch.equal(outs[0], outs[1])


def test_finite_gradients_on_every_parameter():
    torch.manual_seed(0)
    m = build_model("aminet", **TINY)
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    (m(x) - y).abs().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


# ------------------------------------------------------------------ flags
FLAGS = [dict(attn_scale="sqrt_d"), dict(skaf_literal=True), dict(skaf_depthwise=True), dict(skaf_hybrid="add"),
         dict(rdfe_au="se"), dict(frm_norm="ln"), dict(skip_source="post_down"), dict(frm_hourglass_residual=True),
         dict(edff="add"), dict(edff="concat1x1"), dict(lgfi_prenorm=False), dict(lgfi_shared_norm=False),
         dict(rdfe_second_dw=False), dict(skaf_scope="all", skaf_use5=False, skaf_max=False),
         dict(frm_hourglass_mid=8), dict(enc_blocks=(2, 1, 1), mid_blocks=1, dec_blocks=(1, 1, 2)),
         dict(heads=(1, 1, 2, 2))]


@pytest.mark.parametrize("kw", FLAGS, ids=[",".join(f"{k}={v}" for k, v in f.items()) for f in FLAGS])
def test_config_flags_build_and_run(kw):
    torch.manual_seed(0)
    m = build_model({"type": "aminet", **TINY, **kw})
    out = m(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_flag_parameter_effects():
    base = n_params("aminet")
    assert n_params("aminet", skaf_depthwise=True) < base
    assert n_params("aminet", rdfe_second_dw=False) < base
    assert n_params("aminet", frm_hourglass_mid=64) < base  # 64 < 8C at the bottleneck: fewer overall
    assert n_params("aminet", skaf_literal=True) < base


def test_block_counts_follow_config():
    m = meta("aminet", enc_blocks=(2, 1, 1), mid_blocks=3, dec_blocks=(1, 1, 1))
    assert [len(e) for e in m.encoders] == [2, 1, 1] and len(m.bottleneck) == 3
    assert isinstance(m, AMINet)


# ------------------------------------------------------------------ SKAF unit
def test_selective_kernel_fusion_variants():
    a, b = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    plain = SelectiveKernelFusion(4, kernels=(), pools=())
    assert count_params(plain) == 0 and torch.equal(plain(a, b), a + b)
    full = SelectiveKernelFusion(4)
    w = full.weights(a, b)
    assert w.shape == (2, 2, 8, 8) and (w > 0).all() and (w < 1).all()
    assert torch.allclose(full(a, b), a * w[:, :1] + b * w[:, 1:])
    with pytest.raises(ValueError):
        SelectiveKernelFusion(4, pools=("avg",), squeeze="none")


def test_channels_last_is_the_same_maths_in_nhwc():
    x = torch.rand(1, 3, 128, 128)
    outs = []
    for cfg in ({"type": "aminet", "C": 4}, {"type": "aminet", "C": 4, "channels_last": True}):
        torch.manual_seed(0)
        m = build_model(cfg).eval()
        with torch.no_grad():
            outs.append(m(x))
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
