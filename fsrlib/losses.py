"""Training losses, registered in :data:`fsrlib.registry.LOSSES`.

Every loss is built from one config entry ``{type, weight, pred, target, mask, ...}``
(``docs/conventions.md``):

- ``weight``: the lambda in front of the term. An entry with ``weight: 0`` is **not built
  at all** by :func:`build_losses` (so a perceptual term switched off never needs VGG19
  weights on an offline machine).
- ``pred``: a key of the model's ``forward_maps`` output (default ``"sr"``).
- ``target``: a batch key (default ``"hr"``).
- ``mask``: an optional batch key (e.g. ``"regions"``) for losses that support masking; a
  mask with a different channel count than the prediction is reduced to its union
  (max over channels).
- ``name``: optional label for logging (default: the ``type``), popped before building.

Calling a loss: ``loss(out, batch, gan=None)`` returns ``weight * value`` (a scalar);
``loss.value(...)`` is the unweighted term and ``loss.terms`` holds detached sub-terms
of the last call for logging. Losses that need a discriminator
(``needs_discriminator = True``: ``adversarial``, ``feature_matching``) read it through
the ``gan`` context the trainer passes (:class:`fsrlib.train.recipes.GanContext`, any
object with ``fake(pred_key)`` and ``real(target_key)`` returning :func:`split_d_output`
lists works). The discriminator side of ``adversarial`` is :meth:`AdversarialLoss.d_value`.

Discriminator outputs (the contract with ``fsrlib.models.discriminators``): a tensor
(logit / score map, e.g. ``srgan_d``, ``patchgan``), a list of tensors (one scale: the
features, last item = the score map), or a list of such lists (multi-scale, e.g.
``patchgan_ms``). :func:`split_d_output` normalises all three to
``[(features, score), ...]`` per scale.

Registered types (paper-vs-code choices are parameters; the sources are in each docstring):

==================  ========================================================================
``pixel``           L1 / L2 (MSE) / Charbonnier on ``pred`` vs ``target``, optional mask
``l1``, ``mse``,    presets of ``pixel``; ``sparnet_pix`` = ``pixel`` with ``criterion: l2``
``charbonnier``     (SPARNet paper eq. 1; the released code uses ``l1``)
``perceptual``      VGG19 feature loss (SPARNetHD eq. 11, AMIGAN eq. 19, W-Net eq. 26,
                    thesis eq. 3.11)
``adversarial``     vanilla (BCE, non-saturating) / lsgan / hinge, G and D sides
``feature_matching`` discriminator feature matching (SPARNetHD eq. 10)
``wnet_key_region`` W-Net eqs. 27-28: masked MSE + masked perceptual on 4 regions
``parsing_map``     parsing-map loss; presets ``wnet_parsing`` (W-Net eq. 25, MSE of
                    ``parsing`` vs ``skin``) and ``parsingnet_l1`` (FishFSRNet eq. 2, L1 of
                    ``parsing`` vs ``skin_lr``)
``pgnet_content``   the thesis' L_content = L_c + L_p + L_f (eqs. 3.5-3.8)
==================  ========================================================================
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import LOSSES, ConfigError

__all__ = [
    "Loss", "PixelLoss", "PerceptualLoss", "AdversarialLoss", "FeatureMatchingLoss",
    "KeyRegionLoss", "ParsingMapLoss", "PGNetContentLoss", "build_loss", "build_losses",
    "split_d_output", "make_vgg19_features", "vgg19_layer_names", "vgg_override",
    "VGG19_URL", "VGG19_SHA256",
]

_EPS = 1e-8


# ====================================================================== base
class Loss(nn.Module):
    """Base class: holds ``weight``, ``pred``, ``target``, ``mask``; ``forward`` returns the
    weighted value. Subclasses implement :meth:`value`."""

    needs_discriminator = False
    supports_mask = False

    def __init__(self, weight: float = 1.0, pred: str = "sr", target: str = "hr", mask: str | None = None):
        super().__init__()
        self.weight = float(weight)
        self.pred = pred
        self.target = target
        self.mask = mask
        self.name = type(self).__name__
        self.terms: dict[str, torch.Tensor] = {}
        if mask is not None and not self.supports_mask:
            raise ConfigError(f"{type(self).__name__} does not support mask={mask!r}")

    # keys this loss reads (for up-front checks by the trainer)
    def pred_keys(self) -> list[str]:
        return [self.pred]

    def batch_keys(self) -> list[str]:
        return [self.target] + ([self.mask] if self.mask else [])

    def _pred(self, out: Mapping[str, Any], key: str | None = None) -> torch.Tensor:
        key = key or self.pred
        if key not in out:
            raise KeyError(f"loss {self.name!r}: the model output has no {key!r} "
                           f"(it has {sorted(out)}); set pred: to one of them")
        return out[key]

    def _batch(self, batch: Mapping[str, Any], key: str) -> torch.Tensor:
        if key not in batch:
            raise KeyError(f"loss {self.name!r}: the batch has no {key!r} (it has {sorted(batch)})")
        return batch[key]

    def value(self, out, batch, gan=None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, out, batch, gan=None) -> torch.Tensor:
        self.terms = {}
        return self.weight * self.value(out, batch, gan)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, pred={self.pred!r}, target={self.target!r}, mask={self.mask!r}"


def _elementwise(criterion: str, x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    d = x - y
    if criterion == "l1":
        return d.abs()
    if criterion in ("l2", "mse"):
        return d * d
    if criterion == "charbonnier":
        return torch.sqrt(d * d + eps * eps)
    raise ConfigError(f"unknown criterion {criterion!r}; use l1, l2 (mse) or charbonnier")


def _union_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Mask as (B, 1 or C, H, W) float broadcastable to ``like``."""
    mask = mask.to(like.dtype)
    if mask.dim() == 3:
        mask = mask[:, None]
    if mask.shape[1] not in (1, like.shape[1]):
        mask = mask.amax(1, keepdim=True)
    return mask


def _masked_mean(err: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return err.mean()
    m = _union_mask(mask, err).expand_as(err)
    return (err * m).sum() / m.sum().clamp_min(_EPS)


def _check_shapes(name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"loss {name!r}: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")


# ====================================================================== pixel
@LOSSES.register("pixel")
class PixelLoss(Loss):
    """Pixel loss, mean over all elements (the 1/N and 1/CHW of the papers' equations).

    ``criterion``: ``l1`` (SPARNet code, SPARNetHD eq. 6, FishFSRNet eq. 21, AMINet eq. 17),
    ``l2``/``mse`` (SPARNet paper eq. 1, W-Net eq. 24, thesis eqs. 3.5/3.7),
    ``charbonnier`` (``sqrt(d^2 + eps^2)``). With ``mask`` the mean runs over the masked
    elements only (area-normalised)."""

    supports_mask = True

    def __init__(self, criterion: str, weight: float = 1.0, pred: str = "sr", target: str = "hr",
                 mask: str | None = None, eps: float = 1e-3):
        super().__init__(weight, pred, target, mask)
        _elementwise(criterion, torch.zeros(1), torch.zeros(1))  # validate early
        self.criterion, self.eps = criterion, float(eps)

    def value(self, out, batch, gan=None):
        p, t = self._pred(out), self._batch(batch, self.target)
        _check_shapes(self.name, p, t)
        err = _elementwise(self.criterion, p.float(), t.float(), self.eps)
        return _masked_mean(err, self._batch(batch, self.mask) if self.mask else None)

    def extra_repr(self):
        return f"criterion={self.criterion!r}, " + super().extra_repr()


LOSSES.register_preset("l1", "pixel", criterion="l1")
LOSSES.register_preset("mse", "pixel", criterion="l2")
LOSSES.register_preset("charbonnier", "pixel", criterion="charbonnier")
# SPARNet eq. (1): L2 in the paper (default); the released code uses L1 (criterion: l1).
LOSSES.register_preset("sparnet_pix", "pixel", criterion="l2")


# ====================================================================== VGG19 features
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
    from .io import cache_dir, fetch, verify

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
            total = total + w * _elementwise(self.criterion, a.float(), b.float()).flatten(1).mean(1)
        return total

    def value(self, out, batch, gan=None):
        if self.vgg is None:
            return self._pred(out).new_zeros(())
        p, t = self._pred(out), self._batch(batch, self.target)
        _check_shapes(self.name, p, t)
        if self.mask:
            m = _union_mask(self._batch(batch, self.mask), p)
            p, t = p * m, t * m
        return self.per_image(p, t).mean()


# ====================================================================== GAN
def split_d_output(o) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
    """Normalise a discriminator output to ``[(features, score), ...]`` per scale.

    tensor -> one scale, no features; list of tensors -> one scale, features = all but the
    last; list of lists -> one entry per scale (``patchgan_ms``)."""
    if isinstance(o, torch.Tensor):
        return [([], o)]
    if isinstance(o, (list, tuple)) and o:
        if all(isinstance(s, torch.Tensor) for s in o):
            return [(list(o[:-1]), o[-1])]
        if all(isinstance(s, (list, tuple)) and s for s in o):
            return [(list(s[:-1]), s[-1]) for s in o]
    raise TypeError(f"unsupported discriminator output: {type(o).__name__}")


def _reduce_scales(vals: list[torch.Tensor], how: str) -> torch.Tensor:
    s = torch.stack(vals).sum()
    return s / len(vals) if how == "mean" else s


_GAN_TYPES = ("vanilla", "lsgan", "hinge")


@LOSSES.register("adversarial")
class AdversarialLoss(Loss):
    """Adversarial loss on ``pred`` (generator side) and the matching discriminator loss.

    ``gan_type``:
      - ``vanilla``: G ``BCE(D(G(x)), 1)`` (non-saturating ``-log D``; AMIGAN eq. 20, thesis
        eq. 3.12), D ``BCE(D(HR), 1) + BCE(D(SR), 0)`` (AMIGAN eq. 21, thesis eq. 2.1). D
        outputs are logits (the sigmoid is inside ``BCEWithLogits``).
      - ``lsgan``: G ``mean((D(SR) - 1)^2)``, D ``mean((D(HR) - 1)^2) + mean(D(SR)^2)``.
      - ``hinge``: G ``-mean(D(SR))`` (SPARNetHD eq. 8), D
        ``mean(relu(1 - D(HR))) + mean(relu(1 + D(SR)))`` (eq. 9).
    Score maps are averaged over their elements (the SPARNetHD code's patch averaging).

    ``scale_reduction`` over the discriminator scales: ``mean`` (SPARNetHD code: sum /
    num_D) or ``sum`` (eqs. 8-9 as written). ``d_half``: multiply the D loss by 0.5
    (SPARNetHD code, ``0.5 * (real + fake)``); default ``False`` (eq. 9 / eq. 21).
    The generator side goes in ``losses:``; the discriminator side (:meth:`d_value`) is the
    entry of the same type in ``d_losses:`` (the trainer derives it when omitted)."""

    needs_discriminator = True

    def __init__(self, weight: float = 1.0, pred: str = "sr", target: str = "hr", mask: str | None = None,
                 gan_type: str = "vanilla", scale_reduction: str = "mean", d_half: bool = False):
        super().__init__(weight, pred, target, mask)
        if gan_type not in _GAN_TYPES:
            raise ConfigError(f"gan_type must be one of {_GAN_TYPES}, got {gan_type!r}")
        if scale_reduction not in ("mean", "sum"):
            raise ConfigError(f"scale_reduction must be mean or sum, got {scale_reduction!r}")
        self.gan_type, self.scale_reduction, self.d_half = gan_type, scale_reduction, bool(d_half)

    def g_term(self, score: torch.Tensor) -> torch.Tensor:
        s = score.float()
        if self.gan_type == "vanilla":
            return F.binary_cross_entropy_with_logits(s, torch.ones_like(s))
        if self.gan_type == "lsgan":
            return ((s - 1) ** 2).mean()
        return -s.mean()

    def d_term(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        r, f = real.float(), fake.float()
        if self.gan_type == "vanilla":
            v = (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
                 + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))
        elif self.gan_type == "lsgan":
            v = ((r - 1) ** 2).mean() + (f ** 2).mean()
        else:
            v = F.relu(1 - r).mean() + F.relu(1 + f).mean()
        return 0.5 * v if self.d_half else v

    def value(self, out, batch, gan=None):
        if gan is None:
            raise RuntimeError(f"loss {self.name!r} needs a discriminator (recipe: gan)")
        fake = gan.fake(self.pred)
        return _reduce_scales([self.g_term(s) for _, s in fake], self.scale_reduction)

    def d_value(self, real, fake) -> torch.Tensor:
        """Unweighted discriminator loss from raw D outputs on HR (``real``) and on the
        detached SR (``fake``)."""
        real, fake = split_d_output(real), split_d_output(fake)
        if len(real) != len(fake):
            raise ValueError("real and fake discriminator outputs have different numbers of scales")
        return _reduce_scales([self.d_term(r, f) for (_, r), (_, f) in zip(real, fake)], self.scale_reduction)

    def extra_repr(self):
        return f"gan_type={self.gan_type!r}, scale_reduction={self.scale_reduction!r}, " + super().extra_repr()


@LOSSES.register("feature_matching")
class FeatureMatchingLoss(Loss):
    """Discriminator feature matching, SPARNetHD eq. 10:
    ``reduce_k sum_l w_l * mean|f^l_{D_k}(SR) - f^l_{D_k}(HR)|`` with the HR features
    detached and the score map excluded (the features are all D layers but the last).

    ``scale_reduction``: ``mean`` over the D scales (SPARNetHD code, default) or ``sum``
    (eq. 10 as written). ``criterion``: ``l1`` (eq. 10) or ``l2``. ``layer_weights``: one
    weight per feature layer (default 1; pix2pixHD uses 4 / (n_layers + 1))."""

    needs_discriminator = True

    def __init__(self, weight: float = 1.0, pred: str = "sr", target: str = "hr", mask: str | None = None,
                 criterion: str = "l1", scale_reduction: str = "mean",
                 layer_weights: Sequence[float] | None = None):
        super().__init__(weight, pred, target, mask)
        if scale_reduction not in ("mean", "sum"):
            raise ConfigError(f"scale_reduction must be mean or sum, got {scale_reduction!r}")
        self.criterion, self.scale_reduction = criterion, scale_reduction
        self.layer_weights = None if layer_weights is None else [float(w) for w in layer_weights]

    def value(self, out, batch, gan=None):
        if gan is None:
            raise RuntimeError(f"loss {self.name!r} needs a discriminator (recipe: gan)")
        fake, real = gan.fake(self.pred), gan.real(self.target)
        per_scale = []
        for (ff, _), (fr, _) in zip(fake, real):
            if not ff:
                raise ValueError("feature_matching needs a discriminator that returns features "
                                 "(a list whose last item is the score), e.g. patchgan_ms")
            w = self.layer_weights or [1.0] * len(ff)
            if len(w) != len(ff):
                raise ValueError(f"layer_weights has {len(w)} entries, the discriminator gives {len(ff)} features")
            per_scale.append(sum(wl * _elementwise(self.criterion, a.float(), b.detach().float()).mean()
                                 for wl, a, b in zip(w, ff, fr)))
        return _reduce_scales(per_scale, self.scale_reduction)


# ====================================================================== W-Net
@LOSSES.register("wnet_key_region")
class KeyRegionLoss(Loss):
    """W-Net key-region loss, eqs. 27-28: ``L_key = sum_r w_r (mse_weight * L^r_mse +
    per_weight * L^r_per)`` over the channels of ``mask`` (batch key ``regions``: eyes,
    brows, nose, mouth). Paper: ``weight`` (lambda_key) 0.5, all region weights 1.

    - ``L^r_mse`` per image: ``sum(M_r (SR - HR)^2) / (C sum(M_r))`` (``mse_norm: area``,
      spec default: every region counts equally whatever its size) or ``/ (C H W)``
      (``mse_norm: full``, eq. 24's normalisation).
    - ``L^r_per`` per image: eq. 26 on ``M_r * SR`` vs ``M_r * HR`` (VGG19 ``layers``,
      default relu2_2; ``criterion`` l2 = ||.||^2 / (C_k H_k W_k)).
    - A region that is empty in an image contributes 0 for that image; the batch value is
      the mean over images. ``per_weight: 0`` builds no VGG (no weights needed).
    """

    supports_mask = True

    def __init__(self, weight: float = 1.0, pred: str = "sr", target: str = "hr", mask: str = "regions",
                 mse_weight: float = 1.0, per_weight: float = 1.0, mse_norm: str = "area",
                 region_weights: Sequence[float] | None = None, layers: Sequence[str] = ("relu2_2",),
                 criterion: str = "l2", input_range: Sequence[float] = (0.0, 1.0),
                 weights_path: str | None = None, weights_sha256: str | None = VGG19_SHA256):
        super().__init__(weight, pred, target, mask)
        if mse_norm not in ("area", "full"):
            raise ConfigError(f"mse_norm must be area or full, got {mse_norm!r}")
        if not mask:
            raise ConfigError("wnet_key_region needs mask: (the regions batch key)")
        self.mse_weight, self.per_weight, self.mse_norm = float(mse_weight), float(per_weight), mse_norm
        self.region_weights = None if region_weights is None else [float(w) for w in region_weights]
        self.per = None
        if self.weight != 0 and self.per_weight != 0:
            self.per = PerceptualLoss(1.0, pred, target, None, layers=layers, criterion=criterion,
                                      input_range=input_range, weights_path=weights_path,
                                      weights_sha256=weights_sha256)

    def value(self, out, batch, gan=None):
        sr, hr = self._pred(out).float(), self._batch(batch, self.target).float()
        _check_shapes(self.name, sr, hr)
        masks = self._batch(batch, self.mask).to(sr.dtype)  # B x R x H x W
        b, r = masks.shape[:2]
        c = sr.shape[1]
        w = torch.tensor(self.region_weights or [1.0] * r, dtype=sr.dtype, device=sr.device)
        if w.numel() != r:
            raise ValueError(f"region_weights has {w.numel()} entries for {r} regions")
        area = masks.flatten(2).sum(-1)  # B x R
        present = area > 0
        err = (sr - hr) ** 2  # B x C x H x W
        num = torch.einsum("brhw,bchw->br", masks, err)
        den = c * area if self.mse_norm == "area" else torch.full_like(area, float(c * sr.shape[-2] * sr.shape[-1]))
        mse = torch.where(present, num / den.clamp_min(_EPS), torch.zeros_like(num))  # B x R
        mse_term = (mse * w).sum(1).mean()
        total = self.mse_weight * mse_term
        self.terms = {"mse": mse_term.detach()}
        if self.per is not None:
            per = torch.zeros_like(mse)
            bi, ri = present.nonzero(as_tuple=True)
            if bi.numel():
                m = masks[bi, ri][:, None]  # N x 1 x H x W
                per[bi, ri] = self.per.per_image(sr[bi] * m, hr[bi] * m)
            per_term = (per * w).sum(1).mean()
            total = total + self.per_weight * per_term
            self.terms["per"] = per_term.detach()
        return total


# ====================================================================== parsing maps
@LOSSES.register("parsing_map")
class ParsingMapLoss(Loss):
    """Loss between a predicted parsing map and a batch map.

    - ``resize``: when sizes differ, resize the *target* to the prediction's size with this
      mode (``bicubic``, ``bilinear``, ``nearest``, ``area``; result clamped to [0, 1]);
      ``null`` makes a size mismatch an error.
    - A 1-channel prediction against the 3-channel replicated skin map compares with the
      target's channel mean.
    Presets: ``wnet_parsing`` (W-Net eq. 25: MSE of the Parsing Block output ``parsing`` vs
    the HR binary map ``skin``; spec option: ``target: skin_lr, resize: bicubic``) and
    ``parsingnet_l1`` (FishFSRNet eq. 2: L1 of ``parsing`` vs ``skin_lr``)."""

    def __init__(self, criterion: str = "l2", weight: float = 1.0, pred: str = "parsing",
                 target: str = "skin", mask: str | None = None, resize: str | None = None):
        super().__init__(weight, pred, target, mask)
        _elementwise(criterion, torch.zeros(1), torch.zeros(1))
        self.criterion, self.resize = criterion, resize

    def value(self, out, batch, gan=None):
        p, t = self._pred(out).float(), self._batch(batch, self.target).float()
        if t.dim() == 3:
            t = t[:, None]
        if p.shape[1] == 1 and t.shape[1] != 1:
            t = t.mean(1, keepdim=True)
        if p.shape[-2:] != t.shape[-2:]:
            if self.resize is None:
                raise ValueError(f"loss {self.name!r}: pred {tuple(p.shape)} vs target {tuple(t.shape)}; "
                                 "set resize: to compare at the prediction's size")
            kw = {} if self.resize in ("nearest", "area") else {"align_corners": False}
            t = F.interpolate(t, size=p.shape[-2:], mode=self.resize, **kw).clamp(0, 1)
        _check_shapes(self.name, p, t)
        return _elementwise(self.criterion, p, t).mean()


LOSSES.register_preset("wnet_parsing", "parsing_map", criterion="l2", pred="parsing", target="skin")
LOSSES.register_preset("parsingnet_l1", "parsing_map", criterion="l1", pred="parsing", target="skin_lr")


# ====================================================================== thesis
@LOSSES.register("pgnet_content")
class PGNetContentLoss(Loss):
    """The thesis' content loss (eqs. 3.5-3.8): ``L_content = coarse_weight * MSE(coarse,
    HR) + parsing_weight * MSE(parsing, parts11) + final_weight * MSE(SR, HR)`` (all 1 in
    the thesis), each a mean over B, C, H, W (the thesis' 1/(r^2 WH) up to a constant).
    ``criterion`` (default ``l2``) applies to all three terms."""

    def __init__(self, weight: float = 1.0, pred: str = "sr", target: str = "hr", mask: str | None = None,
                 coarse: str = "coarse", parsing: str = "parsing", parsing_target: str = "parts11",
                 coarse_weight: float = 1.0, parsing_weight: float = 1.0, final_weight: float = 1.0,
                 criterion: str = "l2"):
        super().__init__(weight, pred, target, mask)
        _elementwise(criterion, torch.zeros(1), torch.zeros(1))
        self.coarse, self.parsing, self.parsing_target = coarse, parsing, parsing_target
        self.w = {"coarse": float(coarse_weight), "parsing": float(parsing_weight), "final": float(final_weight)}
        self.criterion = criterion

    def pred_keys(self):
        return [k for k, w in ((self.coarse, self.w["coarse"]), (self.parsing, self.w["parsing"]),
                               (self.pred, self.w["final"])) if w]

    def batch_keys(self):
        return [self.target] + ([self.parsing_target] if self.w["parsing"] else [])

    def _term(self, p, t):
        _check_shapes(self.name, p, t)
        return _elementwise(self.criterion, p.float(), t.float()).mean()

    def value(self, out, batch, gan=None):
        hr = self._batch(batch, self.target)
        total = 0.0
        for name, pk, tgt in (("coarse", self.coarse, hr), ("parsing", self.parsing, None), ("final", self.pred, hr)):
            if not self.w[name]:
                continue
            t = self._batch(batch, self.parsing_target) if tgt is None else tgt
            v = self._term(self._pred(out, pk), t)
            self.terms[name] = v.detach()
            total = total + self.w[name] * v
        return total


# ====================================================================== building
def build_loss(cfg: Mapping[str, Any] | str) -> Loss | None:
    """Build one loss; ``None`` when its weight is 0 (nothing is built or loaded)."""
    cfg = {"type": cfg} if isinstance(cfg, str) else dict(cfg)
    name = cfg.pop("name", None) or cfg.get("type")
    if float(cfg.get("weight", 1.0)) == 0.0:
        return None
    loss = LOSSES.build(cfg)
    loss.name = name
    return loss


def build_losses(cfgs: Iterable[Mapping[str, Any] | str] | None) -> nn.ModuleList:
    """Build a list of losses, skipping weight-0 entries; duplicate names get ``_2, _3``."""
    out, seen = nn.ModuleList(), {}
    for cfg in cfgs or []:
        loss = build_loss(cfg)
        if loss is None:
            continue
        n = seen.get(loss.name, 0) + 1
        seen[loss.name] = n
        if n > 1:
            loss.name = f"{loss.name}_{n}"
        out.append(loss)
    return out


def validate_loss_config(cfg: Mapping[str, Any] | str) -> None:
    """Check type and keywords without building (no weights are touched)."""
    cfg = {"type": cfg} if isinstance(cfg, str) else dict(cfg)
    cfg.pop("name", None)
    LOSSES.validate(cfg)
