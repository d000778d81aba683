"""The authors' released Face-SPARNet checkpoints: key layout, round trip, ``fsr import``.

The official layout is written here from the released code's facts (``models/sparnet.py``,
``models/blocks.py`` of github.com/chaofengc/Face-SPARNet), independently of
``fsrlib.models.official``: the unit list and its hourglass depths (``log2(64 / M)`` at the
first unit, one less per down step, back up in the decoder), the conv layer's
``conv2d`` / ``relu.func`` / ``norm.norm`` and the hourglass order (``b1``/``b2`` going down,
``b2_plus_1``, then every ``b3`` coming back up).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch

from fsrlib.cli import main as fsr
from fsrlib.inference import load_run_model
from fsrlib.models import load_official, to_official
from fsrlib.registry import ConfigError

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _conv(prefix, c_in, c_out, norm=True):
    keys = [(f"{prefix}.conv2d.weight", (c_out, c_in, 3, 3))]
    if norm:
        keys += [(f"{prefix}.norm.norm.{b}", () if b == "num_batches_tracked" else (c_out,)) for b in BN]
    else:
        keys += [(f"{prefix}.conv2d.bias", (c_out,))]
    return keys


def released_sparnet_keys(res_depth=10, c_att="2d", bottleneck=4):
    """(key, shape) of the released SPARNet (LeakyReLU, BN, 128 px, min_feat 16) in its order."""
    clip = lambda c: max(32, min(c, 128))  # noqa: E731
    down, n_ch = 3, clip(128 // 4)
    units, depth = [], int(math.log2(64 / bottleneck))
    for i in range(down):
        units.append((f"encoder.{i + 1}", clip(n_ch), clip(2 * n_ch), "down", depth))
        n_ch, depth = n_ch * 2, depth - 1
    depth += 1
    units += [(f"res_layers.{i}", clip(n_ch), clip(n_ch), "none", depth) for i in range(res_depth + 3 - down)]
    for i in range(down):
        depth += 1
        units.append((f"decoder.{i}", clip(n_ch), clip(n_ch // 2), "up", depth))
        n_ch //= 2
    keys = _conv("encoder.0", 3, 32, norm=False)
    for name, ci, co, scale, d in units:
        if scale != "none" or ci != co:
            keys += _conv(f"{name}.shortcut_func", ci, co, norm=False)
        keys += [(f"{name}.preact_func.0.norm.{b}", () if b == "num_batches_tracked" else (ci,)) for b in BN]
        keys += _conv(f"{name}.conv1", ci, co) + _conv(f"{name}.conv2", co, co)
        hg = f"{name}.att_func"
        for level in range(d, 0, -1):
            c1 = co if level == d else 64
            keys += _conv(f"{hg}.b1_{level}", c1, 64) + _conv(f"{hg}.b2_{level}", c1, 64)
        keys += _conv(f"{hg}.b2_plus_1", 64, 64)
        for level in range(1, d + 1):
            keys += _conv(f"{hg}.b3_{level}", 64, 64)
        keys += _conv(f"{hg}.out_block.0", 64, co if c_att == "3d" else 1, norm=False)
    keys += _conv("out_conv", 32, 3, norm=False)
    return keys


def random_state_dict(keys, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict()
    for k, shape in keys:
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(1000)
        elif k.endswith("running_var"):
            sd[k] = 0.5 + torch.rand(shape, generator=g)
        elif k.endswith("norm.weight"):
            sd[k] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            sd[k] = 0.05 * torch.randn(shape, generator=g)
    return sd


@pytest.fixture(scope="module")
def released():
    return random_state_dict(released_sparnet_keys())


def test_layout_and_round_trip(released, tmp_path):
    model = load_official("sparnet", released)
    back = to_official(model)
    assert list(back) == list(released)  # same keys, in the released order
    assert all(torch.equal(back[k], released[k]) for k in released)
    n = sum(v.numel() for k, v in released.items() if not k.endswith(("running_mean", "running_var", "tracked")))
    assert n == sum(p.numel() for p in model.parameters())  # 10.52 M, LeakyReLU has no weights
    # a positional zip would pair other convs of the same shape: the hourglass order differs
    ours = list(model.state_dict())
    pos = [(o, r) for o, r in zip(ours, released) if "att_func" in r and o.split("att_func.")[1].split(".")[0]
           != r.split("att_func.")[1].split(".")[0]]
    assert pos, "the two layouts should differ in order (b3 coming back up)"

    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        y = model(x)
        y2 = load_official("sparnet", back)(x)
    assert torch.equal(y, y2)
    # a wrong weight changes the output (the test sees the mapping)
    swapped = OrderedDict(released)
    a, b = "encoder.1.att_func.b3_4.conv2d.weight", "encoder.1.att_func.b1_3.conv2d.weight"
    swapped[a], swapped[b] = released[b], released[a]
    with torch.no_grad():
        assert not torch.allclose(load_official("sparnet", swapped)(x), y)

    # fsr import -> a run folder the evaluate stage / fsr evaluate read like any run
    path = tmp_path / "SPARNet-V16-S4-epoch20.pth"
    torch.save({f"module.{k}": v for k, v in released.items()}, path)  # DataParallel prefix is accepted
    runs = tmp_path / "runs"
    assert fsr(["import", "sparnet", str(path), "--run", "sparnet-x8-official", "--runs-root", str(runs)]) == 0
    loaded, blob = load_run_model("sparnet-x8-official", runs)
    assert blob["weights"] == "official" and blob["run_config"]["method"] == "sparnet"
    with torch.no_grad():
        assert torch.equal(loaded(x), y)
    from fsrlib.pipeline.folder import resolve_checkpoint
    ck = resolve_checkpoint(runs / "sparnet-x8-official", "sparnet", 8)
    assert ck.run == "sparnet-x8-official" and ck.summary["sha256"]


def test_light_layout():
    # SPARNetLight_Attn3D: res_depth 1, 3D attention (out_block has C output channels)
    with pytest.raises(ConfigError, match="out_block"):  # a 2D-attention file into the 3D model
        load_official("sparnet_light", random_state_dict(released_sparnet_keys(res_depth=1), seed=1))
    keys3d = released_sparnet_keys(res_depth=1, c_att="3d")
    sd = random_state_dict(keys3d, seed=2)
    model = load_official("sparnet_light", sd)
    assert list(to_official(model)) == [k for k, _ in keys3d]
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(model(x), load_official("sparnet_light", to_official(model))(x))


def test_clear_errors(released):
    bad = OrderedDict(released)
    bad.pop("out_conv.conv2d.bias")
    bad["extra.weight"] = torch.zeros(1)
    with pytest.raises(ConfigError, match="1 keys missing.*out_conv.conv2d.bias.*1 unexpected"):
        load_official("sparnet", bad)
    with pytest.raises(ConfigError, match="known"):
        load_official("srcnn", released)


def test_sparnethd_round_trip():
    """SPARNetHD (512 px, IN, spectral norm on every conv): keys carry weight_orig/_u/_v."""
    from fsrlib.models import build_model
    from fsrlib.models.official import official_config

    model = build_model(official_config("sparnethd"))
    sd = to_official(model)
    assert "encoder.1.att_func.b3_4.conv2d.weight_orig" in sd and "encoder.0.conv2d.weight_u" in sd
    assert "encoder.1.conv1.norm.norm.weight" in sd and not any("running_mean" in k for k in sd)
    back = load_official("sparnethd", sd).state_dict()
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())
