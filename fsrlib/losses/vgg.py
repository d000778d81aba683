"""The VGG19 feature network of the perceptual losses (torchvision's layer layout, ImageNet weights).

The ImageNet weights are fetched with their sha256 (or reused from torch hub's cache, or read
from a local ``weights_path``); offline without them -> :class:`fsrlib.io.OfflineError`.
:func:`vgg_override` swaps in another network (tests: a thin random one).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..io import cache_dir, fetch, verify
from ..registry import ConfigError

__all__ = ["VGG19_URL", "VGG19_SHA256", "IMAGENET_MEAN", "IMAGENET_STD", "vgg19_layer_names", "make_vgg19_features",
           "vgg_override", "VGGFeatures"]

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
# torchvision names weights files by the first 8 hex digits of their sha256 ("dcbb9e9d").
VGG19_SHA256 = "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44"
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_layer_names() -> list[str]:
    """Names of ``torchvision.models.vgg19().features`` indices: ``conv1_1, relu1_1,
    conv1_2, relu1_2, pool1, conv2_1, ...``."""
    names, block, k = [], 1, 1
    for v in _VGG19_CFG:
        if v == "M":
            names.append(f"pool{block}")
            block, k = block + 1, 1
        else:
            names += [f"conv{block}_{k}", f"relu{block}_{k}"]
            k += 1
    return names


def make_vgg19_features(width: float = 1.0, upto: int | None = None) -> nn.Sequential:
    """VGG19 ``features`` with torchvision's layer indices (so its ``state_dict`` loads the
    ImageNet file after stripping ``features.``). ReLUs are **not** in-place, so pre-ReLU
    ``conv*`` features are what they say (SPARNetHD's code stores conv outputs that the
    next in-place ReLU silently overwrites). ``width`` < 1 makes a thin copy for tests."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            c = max(1, int(round(v * width)))
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(inplace=False)]
            c_in = c
    if upto is not None:
        layers = layers[: upto + 1]
    return nn.Sequential(*layers)


_VGG_OVERRIDE: Callable[[], nn.Sequential] | None = None
_VGG_CACHE: dict[str, nn.Sequential] = {}


@contextlib.contextmanager
def vgg_override(builder: Callable[[], nn.Sequential]):
    """Test hook: inside this context every perceptual loss uses ``builder()`` (e.g.
    ``lambda: make_vgg19_features(width=1/16)``, random weights) instead of loading the
    ImageNet VGG19."""
    global _VGG_OVERRIDE
    old, _VGG_OVERRIDE = _VGG_OVERRIDE, builder
    try:
        yield
    finally:
        _VGG_OVERRIDE = old


def _vgg19_weights_file(weights_path: str | os.PathLike | None, sha256: str | None) -> Path:
    if weights_path is not None:
        p = Path(weights_path).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"perceptual loss: weights_path {p} does not exist")
        if sha256:
            verify(p, sha256=sha256)
        return p
    # a copy torchvision already downloaded is as good as ours (checked the same way)
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    if (hub / Path(VGG19_URL).name).exists():
        p = hub / Path(VGG19_URL).name
        verify(p, sha256=sha256)
        return p
    return fetch(VGG19_URL, cache_dir() / Path(VGG19_URL).name, sha256=sha256,
                 what="VGG19 ImageNet weights (perceptual loss)",
                 offline_hint="Or set the loss's weights_path: to a local copy, or its weight: to 0 "
                              "to train without the perceptual term.")


def _load_vgg19(weights_path, sha256, upto: int) -> nn.Sequential:
    """VGG19 features ``[0 .. upto]`` with ImageNet weights (only those layers are loaded)."""
    if _VGG_OVERRIDE is not None:
        net = _VGG_OVERRIDE()
    else:
        path = _vgg19_weights_file(weights_path, sha256)
        key = f"{Path(path).resolve()}:{upto}"
        if key in _VGG_CACHE:
            return _VGG_CACHE[key]
        net = make_vgg19_features(upto=upto)
        sd = torch.load(path, map_location="cpu", weights_only=True)
        want = net.state_dict().keys()
        sd = {k[len("features."):]: v for k, v in sd.items() if k[len("features."):] in want}
        missing = sorted(set(want) - set(sd))
        if missing:
            raise ValueError(f"{path} lacks VGG19 weights {missing}")
        net.load_state_dict(sd)
        _VGG_CACHE[key] = net
    net.eval().requires_grad_(False)
    return net


class VGGFeatures(nn.Module):
    """Frozen VGG19 feature extractor: input range mapping -> [0, 1] -> (optional resize)
    -> ImageNet mean/std -> features at the named layers."""

    def __init__(self, layers: Sequence[str], input_range=(0.0, 1.0), imagenet_norm: bool = True,
                 resize_min: int | None = None, weights_path=None, sha256: str | None = VGG19_SHA256):
        super().__init__()
        names = vgg19_layer_names()
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise ConfigError(f"unknown VGG19 layer(s) {unknown}; known: {names}")
        self.layers = list(layers)
        self.idx = [names.index(n) for n in layers]
        net = _load_vgg19(weights_path, sha256, max(self.idx))
        self.net = nn.Sequential(*list(net.children())[: max(self.idx) + 1])  # shares the modules
        self.lo, self.hi = float(input_range[0]), float(input_range[1])
        self.imagenet_norm = imagenet_norm
        self.resize_min = resize_min
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):  # always eval (no dropout/BN here anyway)
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if (self.lo, self.hi) != (0.0, 1.0):
            x = (x - self.lo) / (self.hi - self.lo)
        if self.resize_min and min(x.shape[-2:]) < self.resize_min:
            x = F.interpolate(x, size=(self.resize_min, self.resize_min), mode="bilinear", align_corners=False)
        if self.imagenet_norm:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        feats, want = [], set(self.idx)
        for i, layer in enumerate(self.net):
            x = layer(x)
            if i in want:
                feats.append(x)
        return [feats[sorted(self.idx).index(i)] for i in self.idx]
