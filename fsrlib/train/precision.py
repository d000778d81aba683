"""Training precision: ``amp: auto`` and ``channels_last: auto`` resolved for a device.

``amp: auto`` (the default) = bf16 autocast on a CPU whose flags (``/proc/cpuinfo``) include
AVX512-BF16 or AMX-BF16 (native bf16 dot products in oneDNN), fp32 everywhere else, CUDA
included (as before: fp16/bf16 on a GPU is an explicit choice). ``channels_last: auto`` =
NHWC weights and inputs exactly when bf16 autocast runs on the CPU (oneDNN's fast bf16
convolutions are NHWC; in fp32 NHWC is not reliably faster). Measured side by side:
``benchmarks/train_precision.py`` -> ``reports/benchmarks/train_precision.md``.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

__all__ = ["BF16_FLAGS", "cpu_flags", "cpu_has_bf16", "resolve_precision"]

#: CPU flags with native bf16 arithmetic (any one is enough)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=4)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The ``flags`` of the first CPU in ``cpuinfo`` (empty where there is no such file)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_bf16(flags=None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def resolve_precision(amp, channels_last, device_type: str, flags=None) -> tuple[str | bool, bool]:
    """``(amp, channels_last)`` as the trainer applies them: amp ``False`` | ``"bf16"`` | ``"fp16"``.

    ``amp``: ``"auto"`` | ``False`` | ``"bf16"`` | ``"fp16"``; ``channels_last``: ``"auto"`` | bool.
    ``fp16`` off CUDA becomes bf16 (the trainer warns)."""
    if amp == "auto":
        amp = "bf16" if device_type == "cpu" and cpu_has_bf16(flags) else False
    amp = amp or False
    if amp == "fp16" and device_type != "cuda":
        amp = "bf16"
    if channels_last == "auto":
        channels_last = bool(amp == "bf16" and device_type == "cpu")
    return amp, bool(channels_last)
