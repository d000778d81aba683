"""The thesis' prior-guided network (method 1): parameter counts derived in the spec,
shapes of the three outputs, attention gate, gradients, options.

Full configurations are built on the meta device for counts; forward/backward tests use
slim widths (same topology)."""
from __future__ import annotations

import pytest
import torch

from fsrlib.models import build_model, count_params
from fsrlib.models.pgnet import AttentionBasicBlock, PGNet

TINY = dict(n_feats=8, n_blocks=2, fc_reduction=4, prior_ch=8, prior_n_res=1, hg_depth=2, fusion_ch=8)


def meta(cfg, **kw):
    with torch.device("meta"):
        return build_model(cfg, **kw)


# ------------------------------------------------------------------ counts (spec section 2)
def test_param_counts_match_spec_derivation():
    m = meta("pgnet")
    assert count_params(m.sr_branch.body[0]) == 111_364          # one basic block [D]
    assert count_params(m.sr_branch.body) == 1_781_824            # 16 blocks [D]
    assert abs(count_params(m.sr_branch) - 2.29e6) / 2.29e6 < 0.01  # SR branch ~2.29 M [D]
    assert abs(count_params(m.fusing) - 84e3) / 84e3 < 0.01        # fusing module ~84 k [D]
    assert len(m.sr_branch.body) == 16 and len(m.sr_branch.up) == 3


def test_options_change_counts():
    base = count_params(meta("pgnet"))
    assert count_params(meta("pgnet", head_kernel=3)) < base
    assert count_params(meta("pgnet", multiscale_impl="plain5x5")) - base == 16 * (25 - 9) * 64 * 64
    assert count_params(meta("pgnet", attn_act="sigmoid")) == base
    assert count_params(meta("pgnet", prior_input="lr")) > base  # 3 PixelShuffle stages in the prior branch
    assert len(meta("pgnet", scale=4).sr_branch.up) == 2 and len(meta("pgnet", scale=16).sr_branch.up) == 4


# ------------------------------------------------------------------ forward
@pytest.mark.parametrize("scale,prior_input", [(8, "bicubic_up"), (8, "lr"), (4, "bicubic_up")])
def test_output_shapes(scale, prior_input):
    torch.manual_seed(0)
    m = build_model("pgnet", scale=scale, prior_input=prior_input, **TINY)
    assert m.input_kind == "lr" and m.value_range == (0.0, 1.0) and m.expected_input_size() == 128 // scale
    lr = 64 // scale  # 64 px output keeps the test fast; 128 // scale gives 128
    out = m.forward_maps(torch.rand(2, 3, lr, lr))
    assert set(out) == {"sr", "coarse", "parsing"}
    assert out["sr"].shape == out["coarse"].shape == (2, 3, 64, 64)
    assert out["parsing"].shape == (2, 11, 64, 64)


def test_full_size_x8_shape():
    m = build_model("pgnet", **TINY)
    assert m(torch.rand(1, 3, 16, 16)).shape == (1, 3, 128, 128)


def test_attention_gate_softmax_and_sigmoid():
    x = torch.randn(2, 16, 8, 8)
    soft = AttentionBasicBlock(16, reduction=4)
    w = soft.attn.weights(soft.c3(x) + soft.c5(x))
    assert w.shape == (2, 16, 1, 1) and (w > 0).all() and (w < 1).all()
    assert torch.allclose(w.sum(1), torch.ones(2, 1, 1))
    sig = AttentionBasicBlock(16, reduction=4, attn_act="sigmoid")
    w = sig.attn.weights(x)
    assert (w > 0).all() and (w < 1).all() and not torch.allclose(w.sum(1), torch.ones(2, 1, 1))
    assert soft.c5.dilation == (2, 2) and soft.c5.kernel_size == (3, 3)


def test_finite_gradients_on_every_parameter():
    torch.manual_seed(0)
    m = build_model("pgnet", **TINY)
    out = m.forward_maps(torch.rand(2, 3, 8, 8))
    hr, p = torch.rand(2, 3, 64, 64), (torch.rand(2, 11, 64, 64) > 0.5).float()
    loss = sum(torch.nn.functional.mse_loss(out[k], t) for k, t in (("sr", hr), ("coarse", hr), ("parsing", p)))
    loss.backward()
    for name, q in m.named_parameters():
        assert q.grad is not None, name
        assert torch.isfinite(q.grad).all(), name


def test_detach_fusion_inputs_blocks_fusion_gradient():
    torch.manual_seed(0)
    m = build_model("pgnet", detach_fusion_inputs=True, **TINY)
    m(torch.rand(1, 3, 8, 8)).mean().backward()
    assert all(q.grad is None for q in m.sr_branch.parameters())
    assert all(q.grad is not None for q in m.fusing.parameters())


def test_same_output_for_same_seed():
    x = torch.rand(1, 3, 8, 8)
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        m = build_model("pgnet", **TINY).eval()
        with torch.no_grad():
            outs.append(m(x))
    assert torch.equal(outs[0], outs[1])


def test_fusion_residual_and_sigmoid_flags():
    torch.manual_seed(0)
    m = build_model("pgnet", fusion_residual=True, parsing_sigmoid=True, **TINY).eval()
    with torch.no_grad():
        out = m.forward_maps(torch.rand(1, 3, 8, 8))
    assert (out["parsing"] > 0).all() and (out["parsing"] < 1).all()
    assert isinstance(m, PGNet)


def test_rejects_bad_options():
    with pytest.raises(ValueError):
        build_model("pgnet", attn_act="tanh", **TINY)
    with pytest.raises(ValueError):
        build_model("pgnet", prior_input="hr", **TINY)
    with pytest.raises(ValueError):
        build_model("pgnet", scale=3, **TINY)


DEMO = dict(n_feats=16, fc_reduction=4, head_kernel=3, prior_ch=8, prior_n_res=1, fusion_ch=8, channels_last=True)


def test_demo_width_keeps_the_topology():
    """The CPU demo's slim widths (params.yaml methods.pgnet.model) keep all 16 blocks."""
    torch.manual_seed(0)
    m = build_model({"type": "pgnet", **DEMO})
    out = m.forward_maps(torch.rand(2, 3, 16, 16))
    assert out["sr"].shape == (2, 3, 128, 128) and out["parsing"].shape == (2, 11, 128, 128)
    assert len(m.sr_branch.body) == 16  # same topology, slim widths


FLAGS = [dict(use_bn=True, body_bn=True), dict(block_skip=False, global_skip=False), dict(res_norm="none"),
         dict(prior_n_hg=2), dict(multiscale_impl="plain5x5"), dict(attn_act="sigmoid"), dict(sr_act="relu")]


@pytest.mark.parametrize("kw", FLAGS, ids=[",".join(f"{k}={v}" for k, v in f.items()) for f in FLAGS])
def test_config_flags_build_and_run(kw):
    torch.manual_seed(0)
    m = build_model({"type": "pgnet", **TINY, **kw})
    out = m.forward_maps(torch.rand(2, 3, 8, 8))
    assert out["sr"].shape == (2, 3, 64, 64) and torch.isfinite(out["sr"]).all()
