"""The authors' released checkpoints: Face-SPARNet's generator state dicts <-> fsrlib models.

:func:`load_official` returns the fsrlib model holding the weights of a state dict saved by
the official Face-SPARNet code (github.com/chaofengc/Face-SPARNet: ``SPARNet-V16-S4-epoch20.pth``,
``SPARNetLight_Attn3D-epoch20.pth``, SPARNetHD's ``latest_net_H.pth``); :func:`to_official`
writes an fsrlib model back in that layout (the round trip).

Keys are mapped **by module path**, never by position. The facts of the released layout
(read from its ``models/blocks.py`` and ``models/sparnet.py``):

- the network: ``encoder.0`` (the head conv), ``encoder.1..`` (down units), ``res_layers.i``,
  ``decoder.i``, ``out_conv``; here ``head``, ``encoder.i-1``, ``res_layers.i``, ``decoder.i``,
  ``out_conv``;
- a conv layer holds ``conv2d`` (the Conv2d), ``relu.func`` (a PReLU; LeakyReLU has no
  tensors) and ``norm.norm`` (BatchNorm / affine InstanceNorm), registered in that order;
  the up-scaling conv's nearest x2 has no module there (here ``Sequential(Upsample, conv)``);
- a residual unit (FAU): ``shortcut_func`` (a conv layer, or no tensors for the identity),
  ``preact_func.0.norm`` and ``preact_func.1.func``, ``conv1``, ``conv2``, ``att_func``;
- the attention hourglass registers ``b1_L``, ``b2_L`` going down (L = depth..1), then
  ``b2_plus_1``, then every ``b3_L`` on the way back up (L = 1..depth), then
  ``out_block.0`` (conv + bias, then a sigmoid). Here each level's three convs sit together,
  so a positional zip of the two state dicts pairs different convs of the same shape;
- SPARNetHD applies spectral norm to every Conv2d (``weight_orig`` / ``weight_u`` /
  ``weight_v``); its released test loads the EMA copy ``netH`` (same keys as ``netG``).

The released models use LeakyReLU(0.2) (the code's default), not the paper's PReLU, and an
hourglass depth ``log2(64 / M)`` at 64 px features: ``bottleneck_size`` 4 at 128 px and
16 at 512 px (our presets) give the same depths.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Iterator, Mapping

import torch
import torch.nn as nn

from ..registry import MODELS, ConfigError

__all__ = ["OFFICIAL_MODELS", "official_config", "official_key_map", "load_official", "to_official",
           "read_state_dict"]

# Released models: method name -> fsrlib model config (without scale). What each file is
# is in the Face-SPARNet README / test.sh.
OFFICIAL_MODELS: dict[str, dict] = {
    "sparnet": {"type": "sparnet", "act": "leakyrelu"},                        # SPARNet-V16-S4-epoch20.pth
    "sparnet_light": {"type": "sparnet_light", "act": "leakyrelu"},            # SPARNetLight_Attn3D-epoch20.pth
    "sparnethd": {"type": "sparnethd", "act": "leakyrelu"},                    # SPARNetHD_V4_Attn2D latest_net_H.pth
    "sparnethd_3d": {"type": "sparnethd", "act": "leakyrelu", "att_type": "spar3d"},  # SPARNetHD_V4_Attn3D
}


def official_config(method: str, scale: int = 8, **overrides) -> dict:
    """The fsrlib model config (with ``scale``) of a released method."""
    if method not in OFFICIAL_MODELS:
        raise ConfigError(f"no released checkpoint layout for {method!r}; known: {sorted(OFFICIAL_MODELS)}")
    return {**OFFICIAL_MODELS[method], **overrides, "scale": int(scale)}


# ====================================================================== module paths
def _leaf(ours: str, module: nn.Module, off: str) -> Iterator[tuple[str, str]]:
    for name in module.state_dict().keys():
        yield f"{ours}.{name}", f"{off}.{name}"


def _conv_layer(ours: str, module: nn.Module, off: str) -> Iterator[tuple[str, str]]:
    """An fsrlib ConvLayer (optionally behind ``Sequential(Upsample, ...)``) -> official ConvLayer."""
    if isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[0], nn.Upsample):
        yield from _conv_layer(f"{ours}.1", module[1], off)
        return
    convs, acts, norms = [], [], []
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            convs.append((name, child))
        elif isinstance(child, nn.PReLU):
            acts.append((name, child))
        elif isinstance(child, (nn.BatchNorm2d, nn.InstanceNorm2d)):
            norms.append((name, child))
        elif next(iter(child.state_dict()), None) is not None:
            raise ConfigError(f"{ours}.{name}: {type(child).__name__} has no counterpart in the released layout")
    if len(convs) != 1:
        raise ConfigError(f"{ours}: expected one Conv2d, found {len(convs)}")
    for (name, child), part in [*((c, "conv2d") for c in convs), *((a, "relu.func") for a in acts),
                                *((n, "norm.norm") for n in norms)]:
        yield from _leaf(f"{ours}.{name}", child, f"{off}.{part}")


def _hourglass(ours: str, att: nn.Module, off: str) -> Iterator[tuple[str, str]]:
    depth = int(getattr(att, "depth", -1))
    if depth <= 0:
        raise ConfigError(f"{ours}: an attention branch of depth {depth} (plain convs) has no counterpart in the "
                          "released code, which drops the attention there; use bottleneck sizes below the "
                          "feature size")
    for level in range(depth, 0, -1):  # going down
        for b in ("b1", "b2"):
            yield from _conv_layer(f"{ours}.{b}_{level}", getattr(att, f"{b}_{level}"), f"{off}.{b}_{level}")
    yield from _conv_layer(f"{ours}.b2_plus_1", att.b2_plus_1, f"{off}.b2_plus_1")
    for level in range(1, depth + 1):  # coming back up
        yield from _conv_layer(f"{ours}.b3_{level}", getattr(att, f"b3_{level}"), f"{off}.b3_{level}")
    yield from _conv_layer(f"{ours}.out_block.0", att.out_block[0], f"{off}.out_block.0")


def _fau(ours: str, unit: nn.Module, off: str) -> Iterator[tuple[str, str]]:
    if not isinstance(unit.shortcut_func, nn.Identity):
        yield from _conv_layer(f"{ours}.shortcut_func", unit.shortcut_func, f"{off}.shortcut_func")
    norm, act = unit.preact_func[0], unit.preact_func[1]
    yield from _leaf(f"{ours}.preact_func.0", norm, f"{off}.preact_func.0.norm")
    yield from _leaf(f"{ours}.preact_func.1", act, f"{off}.preact_func.1.func")
    yield from _conv_layer(f"{ours}.conv1", unit.conv1, f"{off}.conv1")
    yield from _conv_layer(f"{ours}.conv2", unit.conv2, f"{off}.conv2")
    if unit.att_func is None or not hasattr(unit.att_func, "out_block"):
        raise ConfigError(f"{ours}: attention {type(unit.att_func).__name__} is not the released hourglass "
                          "(spar / spar3d only)")
    yield from _hourglass(f"{ours}.att_func", unit.att_func, f"{off}.att_func")


def official_key_map(model: nn.Module) -> "OrderedDict[str, str]":
    """``{official key: fsrlib key}`` of a SPARNet-family model, in the released code's order."""
    from .sparnet import SPARNet

    if not isinstance(model, SPARNet):
        raise ConfigError(f"the released Face-SPARNet layout is for SPARNet models, not {type(model).__name__}")
    if model.global_residual:
        raise ConfigError("global_residual=True has no counterpart in the released SPARNet")
    pairs = list(_conv_layer("head", model.head, "encoder.0"))
    for i, u in enumerate(model.encoder):
        pairs += _fau(f"encoder.{i}", u, f"encoder.{i + 1}")
    for name in ("res_layers", "decoder"):
        for i, u in enumerate(getattr(model, name)):
            pairs += _fau(f"{name}.{i}", u, f"{name}.{i}")
    pairs += _conv_layer("out_conv", model.out_conv, "out_conv")
    out = OrderedDict((off, ours) for ours, off in pairs)
    ours_all = set(model.state_dict())
    if len(out) != len(pairs) or set(out.values()) != ours_all:
        left = sorted(ours_all - set(out.values()))[:5]
        raise ConfigError(f"the released layout does not cover this model (unmapped: {left})")
    return out


# ====================================================================== load / save
def read_state_dict(path_or_sd) -> dict:
    """A state dict from a file (``torch.load``, tensors only) or a mapping; unwraps
    ``{"state_dict": ...}`` / ``{"params": ...}`` and DataParallel's ``module.`` prefix."""
    if isinstance(path_or_sd, Mapping):
        sd = dict(path_or_sd)
    else:
        p = Path(path_or_sd)
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint {p} does not exist")
        sd = torch.load(p, map_location="cpu", weights_only=True)
    for wrap in ("state_dict", "params", "params_ema"):
        if isinstance(sd.get(wrap), Mapping):
            sd = dict(sd[wrap])
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_official(method: str, path, scale: int = 8, **overrides) -> nn.Module:
    """The fsrlib model of ``method`` (a key of :data:`OFFICIAL_MODELS`) with the weights of a
    released Face-SPARNet generator state dict (a path or a mapping), in eval mode. Raises
    :class:`ConfigError` naming the keys that are missing, unexpected or of another shape."""
    model = MODELS.build(official_config(method, scale, **overrides))
    sd = read_state_dict(path)
    key_map = official_key_map(model)
    missing = [k for k in key_map if k not in sd]
    unexpected = [k for k in sd if k not in key_map]
    if missing or unexpected:
        raise ConfigError(f"{path if not isinstance(path, Mapping) else 'state dict'} is not a released {method} "
                          f"generator: {len(missing)} keys missing (e.g. {missing[:3]}), {len(unexpected)} "
                          f"unexpected (e.g. {unexpected[:3]})")
    ours_sd = model.state_dict()
    new = {}
    for off, ours in key_map.items():
        t = sd[off]
        if tuple(t.shape) != tuple(ours_sd[ours].shape):
            raise ConfigError(f"{off}: shape {tuple(t.shape)} in the file, {tuple(ours_sd[ours].shape)} in "
                              f"fsrlib's {method} ({ours})")
        new[ours] = t
    model.load_state_dict(new, strict=True)
    return model.eval()


def to_official(model: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """The model's weights in the released layout (keys and order of the official code)."""
    sd = model.state_dict()
    return OrderedDict((off, sd[ours].detach().clone()) for off, ours in official_key_map(model).items())
