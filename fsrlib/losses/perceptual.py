"""The VGG19 perceptual loss (SPARNetHD, AMIGAN, W-Net, thesis)."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..registry import LOSSES, ConfigError
from .base import Loss, check_shapes, elementwise, union_mask
from .vgg import VGG19_SHA256, VGGFeatures

__all__ = ["PerceptualLoss"]


def _layer_weights(layers: Sequence[str], layer_weights) -> list[float]:
    if layer_weights is None:
        return [1.0] * len(layers)
    if isinstance(layer_weights, Mapping):
        bad = [k for k in layer_weights if k not in layers]
        if bad:
            raise ConfigError(f"layer_weights names {bad} not among layers {list(layers)}")
        return [float(layer_weights.get(n, 1.0)) for n in layers]
    if len(layer_weights) != len(layers):
        raise ConfigError(f"layer_weights has {len(layer_weights)} entries for {len(layers)} layers")
    return [float(w) for w in layer_weights]


@LOSSES.register("perceptual")
class PerceptualLoss(Loss):
    """VGG19 perceptual loss: ``sum_l w_l * mean(dist(phi_l(pred), phi_l(target)))``.

    Sources: SPARNetHD eq. 11 and AMIGAN eq. 19 (L1, mean over each layer's elements,
    layers relu1_2 relu2_2 relu3_4 relu4_4 relu5_4, weights 1); W-Net eq. 26 (squared L2 /
    (C_k H_k W_k), one layer, default relu2_2); thesis eq. 3.11 (squared L2, "VGG54" =
    relu5_4). ``criterion``: ``l1`` | ``l2`` (mean squared error over the layer).

    - ``input_range``: range of the images given to the loss (outside a model they are
      [0, 1]; SPARNetHD's code feeds [-1, 1] and maps ``(x+1)/2``); mapped to [0, 1], then
      ImageNet mean/std (``imagenet_norm``).
    - ``resize_min``: bilinear resize to this size when the image is smaller (SPARNetHD's
      code resizes to 224 below 224 px; default ``None``: no resize).
    - Weights: torchvision's ImageNet ``vgg19-dcbb9e9d.pth``, fetched with its sha256 into
      ``$FSR_CACHE`` (or reused from torch hub's cache); ``weights_path`` uses a local copy
      instead (``weights_sha256: null`` skips the check for a converted file). Offline
      without either -> :class:`fsrlib.io.OfflineError`. Features of the target are
      computed without gradient (detached, as in the SPARNetHD code).
    - ``mask``: both images are multiplied by the (union) mask before VGG (W-Net's masked
      perceptual loss).
    """

    supports_mask = True

    def __init__(self, weight: float = 1.0, pred: str = "sr", target: str = "hr", mask: str | None = None,
                 layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"),
                 layer_weights: Sequence[float] | Mapping[str, float] | None = None, criterion: str = "l1",
                 input_range: Sequence[float] = (0.0, 1.0), imagenet_norm: bool = True,
                 resize_min: int | None = None, weights_path: str | None = None,
                 weights_sha256: str | None = VGG19_SHA256):
        super().__init__(weight, pred, target, mask)
        if criterion not in ("l1", "l2", "mse"):
            raise ConfigError(f"perceptual criterion must be l1 or l2, got {criterion!r}")
        if isinstance(layers, str):
            layers = [layers]
        self.criterion = criterion
        self.layer_w = _layer_weights(layers, layer_weights)
        self.vgg = None
        if self.weight != 0:  # weight 0: never touch the weights file
            self.vgg = VGGFeatures(layers, input_range, imagenet_norm, resize_min, weights_path, weights_sha256)

    def per_image(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image distance (B,) between ``x`` (with grad) and ``y`` (no grad)."""
        fx = self.vgg(x)
        with torch.no_grad():
            fy = self.vgg(y)
        total = x.new_zeros(x.shape[0], dtype=torch.float32)
        for w, a, b in zip(self.layer_w, fx, fy):
            total = total + w * elementwise(self.criterion, a.float(), b.float()).flatten(1).mean(1)
        return total

    def value(self, out, batch, gan=None):
        if self.vgg is None:
            return self._pred(out).new_zeros(())
        p, t = self._pred(out), self._batch(batch, self.target)
        check_shapes(self.name, p, t)
        if self.mask:
            m = union_mask(self._batch(batch, self.mask), p)
            p, t = p * m, t * m
        return self.per_image(p, t).mean()
