"""ParsingNet + FishFSRNet: parameter counts (spec 001 §2.7 / facts.md), shapes at x4/x8/x16,
the parsing prior's influence, gradients, determinism and the Table III ablation presets.

Full configurations are built on the meta device (counts only); forward/backward tests use
slim widths (n_feats 8)."""
from __future__ import annotations

import pytest
import torch

from fsrlib.models import MODELS, build_model, count_macs, count_params
from fsrlib.models.fishfsrnet import MSRB, PAFB, FishFSRNet
from fsrlib.models.parsingnet import ParsingNet

SLIM = dict(n_feats=8)


def meta(cfg, **kw):
    with torch.device("meta"):
        return build_model(cfg, **kw)


def lr_and_prior(scale, b=1, size=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = size or 128 // scale
    return torch.rand(b, 3, s, s, generator=g), torch.rand(b, 3, s, s, generator=g)


def used_param_names(model, x, p):
    model.zero_grad(set_to_none=True)
    model(x, p).sum().backward()
    return {n for n, q in model.named_parameters() if q.grad is not None}


# ------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize("cfg,expected", [
    ({"type": "parsingnet"}, 594_371),                                   # official, facts.md
    ({"type": "parsingnet", "parsing_channels": 1}, 593_217),
    ({"type": "fishfsrnet", "scale": 8}, 8_361_987),                     # paper-faithful x8
    ({"type": "fishfsrnet", "scale": 8, "parsing_channels": 1}, 8_341_251),
    ({"type": "fishfsrnet", "scale": 8, "code_parity": True}, 8_423_683),  # official x8 file
    ({"type": "fishfsrnet", "scale": 4, "code_parity": True}, 4_948_419),  # official x4 file
    ({"type": "fishfsrnet", "scale": 4}, 4_845_507),                     # ChannelGate MSRB attention
    ({"type": "fishfsrnet", "scale": 16}, 12_707_267),
    ({"type": "fishfsrnet", "scale": 16, "code_parity": True}, 12_913_091),
])
def test_param_counts(cfg, expected):
    assert count_params(meta(cfg)) == expected


@pytest.mark.parametrize("scale,used", [(8, 8_177_331), (16, 12_469_923), (4, 4_948_419)])
def test_code_parity_used_params(scale, used):
    """The released files leave modules unused (x8: up2_stage3[1] + conv_tail1..3 = 246,352;
    x16: the second PAFB of the last two stages). Which parameters get a gradient does not
    depend on the width, so a slim forward tells which ones the full model uses."""
    slim = build_model({"type": "fishfsrnet", "code_parity": True, **SLIM}, scale=scale)
    names = used_param_names(slim, *lr_and_prior(scale, size=2))
    full = meta({"type": "fishfsrnet", "code_parity": True}, scale=scale)
    assert sum(q.numel() for n, q in full.named_parameters() if n in names) == used


def test_module_counts_per_scale():
    for scale, n in ((4, 2), (8, 3), (16, 4)):
        m = meta("fishfsrnet", scale=scale)
        assert sum(isinstance(x, PAFB) for x in m.modules()) == 6 * n
        msrbs = [x for x in m.modules() if isinstance(x, MSRB)]
        assert len(msrbs) == 2 * n and all(len(x.refine) == n for x in msrbs)


def test_msrb_resizers():
    """rel -1: nearest up; 0: identity; 1: one stride-2 conv; 2: conv-ReLU-conv."""
    m = MSRB(8, [-1, 0, 1, 2])
    cur = torch.rand(1, 8, 8, 8)
    prevs = [torch.rand(1, 8, 4, 4), torch.rand(1, 8, 8, 8), torch.rand(1, 8, 16, 16), torch.rand(1, 8, 32, 32)]
    assert all(r(p).shape == cur.shape for r, p in zip(m.resize, prevs))
    assert [sum(isinstance(c, torch.nn.Conv2d) for c in r.modules()) for r in m.resize] == [0, 0, 1, 2]
    assert m(cur, prevs).shape == cur.shape


# ------------------------------------------------------------------ ParsingNet
def test_parsingnet_shapes_and_no_sr():
    for cp in (1, 3):
        m = build_model({"type": "parsingnet", "parsing_channels": cp, "n_feats": 8, "n_resblocks": 2})
        x = torch.rand(2, 3, 16, 16)
        out = m.forward_maps(x)
        assert set(out) == {"parsing"} and out["parsing"].shape == (2, cp, 16, 16)
        assert torch.equal(m(x), out["parsing"])
    assert ParsingNet.input_kind == "lr"


# ------------------------------------------------------------------ FishFSRNet forward
@pytest.mark.parametrize("scale", [4, 8, 16])
def test_shapes_at_each_scale(scale):
    m = build_model({"type": "fishfsrnet", **SLIM}, scale=scale).eval()
    x, p = lr_and_prior(scale)
    assert x.shape[-1] == {4: 32, 8: 16, 16: 8}[scale]
    with torch.no_grad():
        out = m.forward_maps(x, p)
    assert out["sr"].shape == (1, 3, 128, 128)
    assert out["prior"].shape == p.shape and torch.isfinite(out["sr"]).all()


def test_prior_required_clamped_and_checked():
    m = build_model({"type": "fishfsrnet", **SLIM}, scale=8).eval()
    x, p = lr_and_prior(8, size=4)
    assert m.needs_prior and m.input_kind == "lr"
    with pytest.raises(ValueError):
        m(x)
    with pytest.raises(ValueError):  # prior must be at LR size
        m(x, torch.rand(1, 3, 32, 32))
    with torch.no_grad():
        out = m.forward_maps(x, 3 * p - 1)
        assert out["prior"].min() >= 0 and out["prior"].max() <= 1
        assert torch.allclose(m(x, 3 * p - 1), m(x, (3 * p - 1).clamp(0, 1)))
        one = m(x, p[:, :1])  # a 1-channel map is repeated to 3 channels
        assert torch.allclose(one, m(x, p[:, :1].expand(-1, 3, -1, -1)))


def test_prior_changes_output_and_zero_prior_runs():
    torch.manual_seed(0)
    m = build_model({"type": "fishfsrnet", **SLIM}, scale=8).eval()
    x, p = lr_and_prior(8, size=4)
    with torch.no_grad():
        a, b, z = m(x, p), m(x, 1 - p), m(x, torch.zeros_like(p))
    assert (a - b).abs().max() > 1e-6
    assert torch.isfinite(z).all() and (a - z).abs().max() > 1e-6


def test_gradients_on_every_parameter():
    """Paper-faithful config: every module is used, so every parameter gets a finite grad."""
    torch.manual_seed(0)
    m = build_model({"type": "fishfsrnet", **SLIM}, scale=8)
    x, p = lr_and_prior(8, b=2, size=4)
    (m(x, p) - torch.rand(2, 3, 32, 32)).abs().mean().backward()
    for name, q in m.named_parameters():
        assert q.grad is not None, name
        assert torch.isfinite(q.grad).all(), name
    assert sum(q.grad.abs().sum() for q in m.parameters()) > 0


def test_same_seed_same_output():
    x, p = lr_and_prior(8, size=4)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        m = build_model({"type": "fishfsrnet", **SLIM}, scale=8).eval()
        with torch.no_grad():
            outs.append(m(x, p))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("name", [f"fishfsrnet_model{i}" for i in range(1, 9)] + ["fishfsrnet_noparsing"])
def test_ablation_presets_build_and_run(name):
    m = build_model({"type": name, **SLIM}, scale=8)
    x, p = lr_and_prior(8, size=4)
    sr = m(x, p if m.needs_prior else None)
    assert sr.shape == (1, 3, 32, 32) and torch.isfinite(sr).all()
    sr.mean().backward()
    assert all(q.grad is not None for q in m.parameters())  # no dead module in any variant


def test_ablation_definitions():
    assert MODELS.get("fishfsrnet_model8") is FishFSRNet
    full = count_params(meta("fishfsrnet_model8"))
    assert full == count_params(meta("fishfsrnet"))
    m1 = meta("fishfsrnet_model1")
    assert not m1.needs_prior and not any(isinstance(x, MSRB) for x in m1.modules())
    assert not meta("fishfsrnet_model3").needs_prior and not meta("fishfsrnet_noparsing").needs_prior
    assert meta("fishfsrnet_model4").needs_prior
    # Table III: every variant is smaller than the final model
    assert all(count_params(meta(f"fishfsrnet_model{i}")) < full for i in range(1, 8))


def test_code_parity_runs_and_two_conv_projection():
    for scale in (4, 8, 16):
        m = build_model({"type": "fishfsrnet", "code_parity": True, **SLIM}, scale=scale)
        x, p = lr_and_prior(scale, size=2)
        assert m(x, p).shape == (1, 3, 2 * scale, 2 * scale)
    m = build_model({"type": "fishfsrnet", "refine_proj": "two_conv", **SLIM}, scale=8)
    assert m(*lr_and_prior(8, size=2)).shape == (1, 3, 16, 16)
    assert count_params(meta("fishfsrnet", refine_proj="two_conv")) < count_params(meta("fishfsrnet"))
    with pytest.raises(ValueError):
        build_model({"type": "fishfsrnet", "code_parity": True}, scale=2)


def test_macs_match_spec():
    """Spec §2.7 [DERIVED]: x8 official 36.28 G, ParsingNet 0.152 G at 16x16 (meta device)."""
    for cfg, expected in (({"type": "fishfsrnet", "code_parity": True}, 36.28e9), ({"type": "parsingnet"}, 0.152e9)):
        m = meta(cfg, scale=8)
        x = torch.empty(1, 3, 16, 16, device="meta")
        assert abs(count_macs(m, x, x if m.needs_prior else None) - expected) / expected < 0.001
