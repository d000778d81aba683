"""Exponential moving average of a model (SPARNetHD's released ``accumulate``).

``ema = decay * ema + (1 - decay) * live`` after every optimiser step (SPARNetHD's released
trainer: decay 0.999, the EMA generator ``netH`` is the model it tests; the released SPARNet
trainer has no EMA). The released ``BaseModel.accumulate`` averages the **whole state dict**:
parameters *and* buffers (BatchNorm / InstanceNorm running statistics, spectral-norm ``u`` /
``v`` vectors), then loads it back. What the buffers do is ``buffers``:

- ``buffers="all"`` (default, the released code): every floating-point tensor of the state
  dict is averaged with the same decay; integer buffers (BN's ``num_batches_tracked``) are
  copied (the released code averages them too and truncates on load; BN with a momentum
  never reads them);
- ``buffers="average"``: only BatchNorm / InstanceNorm running means and variances are
  averaged; every other buffer (spectral-norm ``u``/``v``, ...) is copied;
- ``buffers="copy"``: all buffers are copied from the live model.

``warmup=True`` uses ``min(decay, (1 + n) / (10 + n))`` for the n-th update (timm /
TensorFlow style) so that an early EMA is not dominated by the random initialisation (not in
the released code).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _NormBase

BUFFER_MODES = ("all", "average", "copy")


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float = 0.999, buffers: str = "all", warmup: bool = False):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        if buffers not in BUFFER_MODES:
            raise ValueError(f"ema buffers must be one of {BUFFER_MODES}, got {buffers!r}")
        self.decay, self.buffers, self.warmup = float(decay), buffers, bool(warmup)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0
        self._avg_buffers = (set(dict(self.module.named_buffers())) if buffers == "all" else
                             self._averaged_buffer_names(self.module) if buffers == "average" else set())

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
