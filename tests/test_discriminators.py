"""Discriminators: SPARNetHD multi-scale PatchGAN, single PatchGAN, SRGAN D."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from fsrlib.models import build_model, count_params
from fsrlib.models.discriminators import MultiScalePatchD, NLayerD, PatchGAN, SRGANDiscriminator


def test_hd_d_counts_and_512_shapes():
    d = build_model("patchgan_ms")
    assert isinstance(d, MultiScalePatchD) and not hasattr(d, "input_kind") and len(d.D_pool) == 3
    per_d = count_params(d.D_pool[0])
    assert abs(per_d - 3.92e6) / 3.92e6 < 0.005, per_d  # spec 2.7: 3.92 M per D
    assert count_params(d) == 3 * per_d
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert all(hasattr(c, "weight_orig") for c in convs)  # spectral norm everywhere
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in d.modules()) == 3 * 4
    with torch.device("meta"):  # shape inference only
        dm = build_model("patchgan_ms")
        out = dm(torch.empty(1, 3, 512, 512))
    assert [o[-1].shape[-1] for o in out] == [30, 14, 6]
    assert [t.shape[1:] for t in out[0]] == [(64, 512, 512), (128, 256, 256), (256, 128, 128),
                                             (512, 64, 64), (512, 32, 32), (1, 30, 30)]


def test_multiscale_forward_backward_slim():
    torch.manual_seed(0)
    d = build_model({"type": "patchgan_ms", "base_ch": 4, "max_ch": 16})
    x = torch.rand(2, 3, 256, 256)
    out = d(x)
    assert len(out) == 3 and all(len(o) == 6 for o in out)  # 5 FM features + score
    assert [o[-1].shape for o in out] == [(2, 1, 14, 14), (2, 1, 6, 6), (2, 1, 2, 2)]
    loss = sum(torch.relu(1 - o[-1]).mean() + sum(f.abs().mean() for f in o[:-1]) for o in out)
    loss.backward()
    for name, p in d.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    d.eval()  # in train mode spectral norm runs a power iteration per call
    with torch.no_grad():
        assert all(torch.equal(s, o[-1]) for s, o in zip(d.scores(x), d(x)))


def test_patchgan_single_scale():
    d = build_model("patchgan")
    assert isinstance(d, PatchGAN) and len(d.D_pool) == 1 and isinstance(d.D_pool[0], NLayerD)
    assert abs(count_params(d) - 3.915e6) / 3.915e6 < 0.005
    assert not any(isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d)) for m in d.modules())
    assert not any(hasattr(m, "weight_orig") for m in d.modules())
    strides = [m.stride[0] for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert strides == [1, 2, 2, 2, 2, 1]
    torch.manual_seed(0)
    ds = build_model({"type": "patchgan", "base_ch": 4, "max_ch": 16})
    out = ds(torch.rand(2, 3, 128, 128))
    assert len(out) == 1 and out[0][-1].shape == (2, 1, 6, 6)
    out[0][-1].mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in ds.parameters())


def test_srgan_d():
    d = build_model("srgan_d")
    assert isinstance(d, SRGANDiscriminator)
    assert abs(count_params(d) - 38.2e6) / 38.2e6 < 0.005  # spec 004 2.5: ~38.2 M
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 7
    assert d.classifier[1].in_features == 512 * 8 * 8
    torch.manual_seed(0)
    ds = build_model({"type": "srgan_d", "in_size": 64, "base_ch": 4, "fc_dim": 8})
    out = ds(torch.rand(3, 3, 64, 64))
    assert len(out) == 1 and out[0][-1].shape == (3, 1) and out[0][-2].shape == (3, 32, 4, 4)
    out[0][-1].sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in ds.parameters())
    with pytest.raises(ValueError):
        SRGANDiscriminator(in_size=100)


@pytest.mark.parametrize("cfg,size", [({"type": "patchgan", "base_ch": 4, "max_ch": 8}, 64),
                                      ({"type": "srgan_d", "in_size": 32, "base_ch": 4, "fc_dim": 8}, 32)])
def test_input_range_mapping_and_determinism(cfg, size):
    x = torch.rand(2, 3, size, size)
    outs = []
    for vr in [(-1.0, 1.0), (-1.0, 1.0), (0.0, 1.0)]:
        torch.manual_seed(3)
        d = build_model({**cfg, "value_range": vr}).eval()
        with torch.no_grad():
            outs.append(d.scores(x)[0])
    assert torch.equal(outs[0], outs[1])  # same seed, same output
    assert not torch.allclose(outs[0], outs[2])  # [0, 1] input is mapped to [-1, 1] by default
