"""W-Net: parameter count and its breakdown (spec 000 §9 estimate), shapes, parsing output,
gradients, determinism and the Table 3 ablation presets.

The full config is only built on the meta device (its W-stage activations are 1024^2);
forward/backward tests use slim widths and a one-step W-stage."""
from __future__ import annotations

import pytest
import torch

from fsrlib.models import MODELS, build_model, count_macs, count_params
from fsrlib.models.wnet import LPF, SCAB, CascadeFusion, ConvBlockParser, ParsingBlock, WNet

TINY = dict(n_feats=8, w_scales=1, n_resblocks=1)


def meta(cfg, **kw):
    with torch.device("meta"):
        return build_model(cfg, **kw)


def img(size, b=1, seed=0):
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ parameter counts
def test_full_param_count_and_breakdown():
    m = meta("wnet")
    n = count_params(m)
    assert n == 6_967_606
    assert abs(n - 7.0e6) / 7.0e6 < 0.005  # spec §9: "about 7.0 M"
    assert count_params(m.parser) == 1_293_229                 # spec: ~1.29 M
    lpfs = [x for x in m.modules() if isinstance(x, LPF)]
    scabs = [x for x in m.modules() if isinstance(x, SCAB)]
    assert len(lpfs) == 10 and sum(map(count_params, lpfs)) == 1_953_670   # spec: ~1.95 M
    assert len(scabs) == 16 and sum(map(count_params, scabs)) == 1_462_400  # spec: ~1.49 M
    updown = [*m.w_resample, *m.enc_down, *m.dec_up]
    assert len(updown) == 14 and sum(map(count_params, updown)) == 2_068_416  # spec: ~2.07 M


def test_ablation_presets_counts():
    counts = {k: count_params(meta(f"wnet_exp{k}")) for k in "ABCDEFGH"}
    assert counts["H"] == count_params(meta("wnet"))
    assert min(counts, key=counts.get) == "A" and max(counts, key=counts.get) == "H"
    a = meta("wnet_expA")
    assert isinstance(a.parser, ConvBlockParser) and isinstance(a.w_fuse[0], CascadeFusion)
    assert all(s.attn is None for s in a.modules() if isinstance(s, SCAB))
    f = meta("wnet_expF")
    assert isinstance(f.parser, ParsingBlock) and isinstance(f.w_fuse[0], LPF)
    assert MODELS.get("wnet_expH") is WNet


# ------------------------------------------------------------------ forward
@pytest.mark.parametrize("scale", [4, 8])
def test_shapes_bicubic128(scale):
    m = build_model({"type": "wnet", **TINY}, scale=scale).eval()
    assert m.input_kind == "upsampled" and not m.needs_prior
    with torch.no_grad():
        out = m.forward_maps(img(128))
    assert out["sr"].shape == (1, 3, 128, 128)
    assert out["parsing"].shape == (1, 3, 128, 128)
    assert torch.isfinite(out["sr"]).all()


def test_two_step_w_stage_shapes():
    m = build_model({"type": "wnet", **TINY, "w_scales": 2, "enc_levels": 2, "hg_depth": 2}).eval()
    with torch.no_grad():
        out = m.forward_maps(img(32))
    assert out["sr"].shape == (1, 3, 32, 32) and out["parsing"].shape == (1, 3, 32, 32)


@pytest.mark.parametrize("scale,lr", [(4, 32), (8, 16)])
def test_native_mode(scale, lr):
    m = build_model({"type": "wnet", **TINY, "input_mode": "native", "enc_levels": 2, "hg_depth": 2},
                    scale=scale).eval()
    assert m.input_kind == "lr"
    with torch.no_grad():
        out = m.forward_maps(img(lr))
    assert out["sr"].shape == (1, 3, 128, 128) and out["parsing"].shape == (1, 3, lr, lr)
    with pytest.raises(ValueError):  # native x16: an 8x8 input cannot take 4 encoder halvings
        build_model({"type": "wnet", "input_mode": "native"}, scale=16)


def test_gradients_on_every_parameter():
    torch.manual_seed(0)
    m = build_model({"type": "wnet", **TINY, "enc_levels": 3, "hg_depth": 3})
    out = m.forward_maps(img(32, b=2))
    loss = (out["sr"] - img(32, b=2, seed=1)).pow(2).mean() + out["parsing"].pow(2).mean()
    loss.backward()
    for name, q in m.named_parameters():
        assert q.grad is not None, name
        assert torch.isfinite(q.grad).all(), name


def test_same_seed_same_output():
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        m = build_model({"type": "wnet", **TINY, "enc_levels": 2, "hg_depth": 2}).eval()
        with torch.no_grad():
            outs.append(m(img(32)))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("exp", list("ABCDEFGH"))
def test_ablation_presets_run(exp):
    m = build_model({"type": f"wnet_exp{exp}", **TINY, "enc_levels": 2, "hg_depth": 2})
    out = m.forward_maps(img(32, b=2))
    assert out["sr"].shape == (2, 3, 32, 32) and out["parsing"].shape == (2, 3, 32, 32)
    out["sr"].mean().backward()


def test_options_validated():
    with pytest.raises(ValueError):
        build_model({"type": "wnet", "fusion": "concat"})
    with pytest.raises(ValueError):
        build_model({"type": "wnet", "w_scales": 0})
    m = build_model({"type": "wnet", **TINY, "enc_levels": 2, "hg_depth": 2, "parsing_act": "sigmoid",
                     "global_residual": True, "attn_norm": "ln"}).eval()
    with torch.no_grad():
        p = m.forward_maps(img(32))["parsing"]
    assert p.min() >= 0 and p.max() <= 1


def test_macs_match_spec_estimate():
    """Spec §9: about 514 G MACs per 128x128 output (meta device: no compute)."""
    m = meta("wnet")
    assert abs(count_macs(m, torch.empty(1, 3, 128, 128, device="meta")) - 514e9) / 514e9 < 0.005


DEMO = dict(input_mode="native", n_feats=16, w_scales=1, enc_levels=2, hg_depth=2, n_resblocks=1)


@pytest.mark.parametrize("scale", [4, 8, 16])
def test_demo_native_shapes(scale):
    """The CPU demo's native-LR configuration (params.yaml methods.wnet.model) at every scale."""
    m = build_model({"type": "wnet", **DEMO}, scale=scale).eval()
    lr = 128 // scale
    with torch.no_grad():
        out = m.forward_maps(img(lr))
    assert out["sr"].shape == (1, 3, 128, 128) and out["parsing"].shape == (1, 3, lr, lr)
