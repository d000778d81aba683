"""Learning-rate schedules: the rate at an iteration is a pure function of it (nothing to checkpoint).

``{type: constant|step|cosine, warmup_iters: 0, ...}``: step: ``milestones`` (ints =
iterations, floats in (0, 1) = fractions of ``iters``), ``gamma`` 0.5; cosine: ``min_lr`` 0.0.
The allowed keys per type: :data:`fsrlib.train.schema.SCHEDULES`.
"""
from __future__ import annotations

import math
from typing import Mapping

__all__ = ["lr_factor"]


def lr_factor(sched: Mapping, it: int, iters: int, base_lr: float) -> float:
    """Learning rate at (0-based) iteration ``it``: a pure function, nothing to checkpoint."""
    warm = int(sched.get("warmup_iters", 0) or 0)
    if warm and it < warm:
        w = (it + 1) / warm
    else:
        w = 1.0
    t = sched["type"]
    if t == "constant":
        return base_lr * w
    if t == "step":
        ms = [int(round(m * iters)) if isinstance(m, float) and 0 < m < 1 else int(m) for m in sched["milestones"]]
        return base_lr * w * float(sched.get("gamma", 0.5)) ** sum(it >= m for m in ms)
    if t == "cosine":
        lo = float(sched.get("min_lr", 0.0))
        span = max(iters - warm, 1)
        p = min(max(it - warm, 0) / span, 1.0)
        return w * (lo + (base_lr - lo) * 0.5 * (1 + math.cos(math.pi * p)))
    raise ValueError(t)
