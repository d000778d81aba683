"""GAN losses: adversarial (vanilla / LSGAN / hinge, G and D sides) and discriminator feature matching.

Discriminator outputs (the contract with ``fsrlib.models.discriminators``) are normalised by
:func:`split_d_output`; the generator side reads the discriminator through the trainer's
``gan`` context (:class:`fsrlib.train.recipes.GanContext`).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..registry import LOSSES, ConfigError
from .base import Loss, elementwise

__all__ = ["split_d_output", "reduce_scales", "AdversarialLoss", "FeatureMatchingLoss"]


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


def reduce_scales(vals: list[torch.Tensor], how: str) -> torch.Tensor:
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
        return reduce_scales([self.g_term(s) for _, s in fake], self.scale_reduction)

    def d_value(self, real, fake) -> torch.Tensor:
        """Unweighted discriminator loss from raw D outputs on HR (``real``) and on the
        detached SR (``fake``)."""
        real, fake = split_d_output(real), split_d_output(fake)
        if len(real) != len(fake):
            raise ValueError("real and fake discriminator outputs have different numbers of scales")
        return reduce_scales([self.d_term(r, f) for (_, r), (_, f) in zip(real, fake)], self.scale_reduction)

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
            per_scale.append(sum(wl * elementwise(self.criterion, a.float(), b.detach().float()).mean()
                                 for wl, a, b in zip(w, ff, fr)))
        return reduce_scales(per_scale, self.scale_reduction)
