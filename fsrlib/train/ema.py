"""Exponential moving average of a model's parameters, *and* of its BatchNorm statistics.

``ema = decay * ema + (1 - decay) * live`` after every optimiser step (SPARNet's released
code: decay 0.999, the EMA generator is the final model). The released code averages
``named_parameters`` only, so the EMA copy keeps its *initial* BatchNorm running
statistics; that is a known defect (``reference/facts.md``). Here the buffers follow the
live model too:

- ``buffers="average"`` (default): BatchNorm / InstanceNorm running means and variances
  are averaged with the same decay as the parameters; every other buffer (BN's
  ``num_batches_tracked``, spectral-norm ``u``/``v`` vectors, ...) is copied.
- ``buffers="copy"``: all buffers are copied from the live model.

``warmup=True`` uses ``min(decay, (1 + n) / (10 + n))`` for the n-th update (timm /
TensorFlow style) so that an early EMA is not dominated by the random initialisation.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _NormBase


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float = 0.999, buffers: str = "average", warmup: bool = False):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        if buffers not in ("average", "copy"):
            raise ValueError(f"ema buffers must be 'average' or 'copy', got {buffers!r}")
        self.decay, self.buffers, self.warmup = float(decay), buffers, bool(warmup)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0
        self._avg_buffers = self._averaged_buffer_names(self.module) if buffers == "average" else set()

    @staticmethod
    def _averaged_buffer_names(model: nn.Module) -> set[str]:
        names = set()
        for mname, m in model.named_modules():
            if isinstance(m, _NormBase) and m.track_running_stats:
                for b in ("running_mean", "running_var"):
                    names.add(f"{mname}.{b}" if mname else b)
        return names

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        return self.decay

    def _pairs(self, model: nn.Module):
        """(ema, live) tensor lists, cached per live model: params, averaged buffers, copied buffers."""
        if getattr(self, "_cache_for", None) is not model:
            ema_p, live_p = list(self.module.parameters()), list(model.parameters())
            if len(ema_p) != len(live_p):
                raise RuntimeError("EMA and live model have different parameter lists")
            live_b = dict(model.named_buffers())
            avg, cpy = [], []
            for name, eb in self.module.named_buffers():
                (avg if name in self._avg_buffers and eb.is_floating_point() else cpy).append((eb, live_b[name]))
            floats = [(e, p) for e, p in zip(ema_p, live_p) if e.is_floating_point()]
            cpy += [(e, p) for e, p in zip(ema_p, live_p) if not e.is_floating_point()]
            self._cache = [tuple(map(list, zip(*x))) if x else ([], []) for x in (floats + avg, cpy)]
            self._cache_for = model
        return self._cache

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        (ema_avg, live_avg), (ema_cpy, live_cpy) = self._pairs(model)
        if ema_avg:
            torch._foreach_lerp_(ema_avg, [t.detach() for t in live_avg], 1.0 - d)  # e += (1 - d)(p - e)
        if ema_cpy:
            torch._foreach_copy_(ema_cpy, live_cpy)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "num_updates": self.num_updates, "decay": self.decay,
                "buffers": self.buffers, "warmup": self.warmup}

    def load_state_dict(self, sd: dict) -> None:
        self.module.load_state_dict(sd["module"])
        self.num_updates = int(sd["num_updates"])
        self._cache_for = None

    def to(self, device) -> "ModelEMA":
        self.module.to(device)
        self._cache_for = None  # .to() may replace buffer tensors
        return self
