"""One small registry: register callables by name, build them from ``{type: name, **kwargs}``.

Used for models, losses and metrics (like BasicSR's ``ARCH_REGISTRY``). Building and
validating are separate so that :mod:`fsrlib.config` can reject an unknown ``type`` or an
unknown keyword *before* any work starts.

>>> from fsrlib.registry import Registry
>>> R = Registry("thing")
>>> @R.register("double")
... def double(x=1):
...     return 2 * x
>>> R.build({"type": "double", "x": 3})
6
"""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Mapping


class ConfigError(ValueError):
    """A params entry that cannot be built: unknown type, unknown or missing argument."""


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}
        self._presets: dict[str, tuple[str, dict]] = {}

    # ------------------------------------------------------------------ registration
    def register(self, name: str | None = None, **preset: Any):
        """Decorator. ``@R.register("sparnet")``; a preset is registered with
        :meth:`register_preset` so that its defaults stay visible in one place."""

        def deco(obj):
            key = name or obj.__name__.lower()
            if key in self._items or key in self._presets:
                raise KeyError(f"{self.kind} {key!r} registered twice")
            self._items[key] = obj
            return obj

        return deco

    def register_preset(self, name: str, base: str, **defaults: Any) -> None:
        """A named variant: ``sparnet_light`` = ``sparnet`` with other defaults.

        Presets resolve at build time, so ``{type: sparnet_light, act: prelu}`` overrides
        one default of the preset and keeps the rest."""
        if name in self._items or name in self._presets:
            raise KeyError(f"{self.kind} {name!r} registered twice")
        self._presets[name] = (base, dict(defaults))

    def unregister(self, name: str) -> None:
        """Remove a registered name (tests that add a toy model clean up with it)."""
        self._items.pop(name, None)
        self._presets.pop(name, None)

    # ------------------------------------------------------------------ lookup
    def names(self) -> list[str]:
        return sorted([*self._items, *self._presets])

    def presets(self) -> dict[str, tuple[str, dict]]:
        """``{preset: (base type, its defaults)}`` (copies)."""
        return {k: (b, dict(d)) for k, (b, d) in self._presets.items()}

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self._presets

    def get(self, name: str) -> Callable[..., Any]:
        base, _ = self._resolve(name)
        return self._items[base]

    def _resolve(self, name: str) -> tuple[str, dict]:
        kwargs: dict = {}
        seen = []
        while name in self._presets:
            if name in seen:
                raise ConfigError(f"preset cycle {seen}")
            seen.append(name)
            base, defaults = self._presets[name]
            kwargs = {**defaults, **kwargs}
            name = base
        if name not in self._items:
            close = difflib.get_close_matches(name, self.names(), n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ConfigError(f"unknown {self.kind} type {name!r}.{hint} Known: {self.names()}")
        return name, kwargs

    # ------------------------------------------------------------------ build
    def split(self, cfg: Mapping[str, Any] | str) -> tuple[Callable[..., Any], dict]:
        """Return (callable, kwargs) for a config, checking the keywords against the signature."""
        if isinstance(cfg, str):
            cfg = {"type": cfg}
        if "type" not in cfg:
            raise ConfigError(f"{self.kind} config needs a 'type:' key, got {dict(cfg)}")
        cfg = dict(cfg)
        name = cfg.pop("type")
        base, preset = self._resolve(name)
        fn = self._items[base]
        kwargs = {**preset, **cfg}
        sig = inspect.signature(fn)
        params = sig.parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = [k for k in kwargs if k not in params]
            if unknown:
                allowed = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
                raise ConfigError(
                    f"{self.kind} {name!r} got unknown parameter(s) {unknown}; allowed: {allowed}"
                )
        missing = [
            k
            for k, p in params.items()
            if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and k not in kwargs
        ]
        if missing:
            raise ConfigError(f"{self.kind} {name!r} is missing required parameter(s) {missing}")
        return fn, kwargs

    def validate(self, cfg: Mapping[str, Any] | str) -> None:
        self.split(cfg)

    def build(self, cfg: Mapping[str, Any] | str, **extra: Any) -> Any:
        """Build from a config; ``extra`` keywords (e.g. ``scale``) override the config."""
        cfg = {"type": cfg} if isinstance(cfg, str) else dict(cfg)
        cfg.update(extra)
        fn, kwargs = self.split(cfg)
        return fn(**kwargs)


MODELS = Registry("model")
LOSSES = Registry("loss")
METRICS = Registry("metric")
