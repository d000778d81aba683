"""Scoring a set of SR images: :func:`evaluate_images` (what the evaluate stage calls),
:func:`build_metric` and :func:`describe_metrics` (the protocol record), over every metric
of :data:`fsrlib.registry.METRICS` (:mod:`fsrlib.metrics.image`, :mod:`fsrlib.metrics.learned`).

>>> import torch
>>> hr = torch.rand(2, 3, 32, 32)
>>> df, agg, missing = evaluate_images(hr, hr, metrics=["ssim"], progress=False)
>>> round(agg["ssim"], 6)
1.0
"""
from __future__ import annotations

import inspect
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..registry import METRICS
from . import learned as _learned  # noqa: F401  (registers LPIPS and FID)
from .image import Metric, as_nchw, psnr, quantize, ssim, ssim_uniform

__all__ = ["build_metric", "describe_metrics", "evaluate_images", "CONVENTIONS", "score_conventions"]

#: the metric conventions of the FSR literature, each as PSNR / SSIM settings of
#: :func:`fsrlib.metrics.image.psnr` / ``ssim`` / ``ssim_uniform``: ``ref`` is this project's
#: protocol (Y BT.601 studio range in float, no crop, Gaussian 11x11 sigma 1.5 SSIM); every other
#: row changes one choice, except the two families, which reproduce the peers' scripts:
#: A (the SPARNet-codebase line: CTCNet, WFEN, AMINet): Y truncated to uint8, no crop, Gaussian
#: SSIM; B (the DIC line: DIC, SFMNet, FishFSRNet, SPADNet, W-Net Mode I): Y rounded (MATLAB uint8
#: rgb2ycbcr), 8 px border crop, scikit-image's default 7x7 uniform SSIM. (``crop`` "scale" = the
#: run's scale, BasicSR's habit.) ``"lr": "pil"`` marks the conventions whose SR images come from
#: an LR made by PIL bicubic (``sr_pil/``): :func:`score_conventions` scores whatever images it is
#: given; choosing them is the caller's job (:mod:`fsrlib.pipeline.protocol_sensitivity`).
CONVENTIONS: dict[str, dict[str, Any]] = {
    "ref": {"label": "project: Y studio float, crop 0, SSIM Gaussian"},
    "y_round": {"label": "Y rounded to uint8 (MATLAB rgb2ycbcr)", "y_quant": "round"},
    "y_floor": {"label": "Y truncated to uint8 (astype)", "y_quant": "floor"},
    "y_full": {"label": "BT.601 full range luma (0.299, 0.587, 0.114)", "color": "gray"},
    "rgb": {"label": "RGB (3 channels)", "color": "rgb"},
    "crop8": {"label": "border crop 8 px", "crop": 8},
    "crop_scale": {"label": "border crop = scale", "crop": "scale"},
    "ssim_uniform7": {"label": "SSIM uniform 7x7 (scikit-image default)", "ssim": "uniform"},
    "lr_pil": {"label": "LR made by PIL bicubic (the sr_pil/ outputs), metrics as ref", "lr": "pil"},
    "family_A": {"label": "A: SPARNet line (CTCNet, WFEN, AMINet): PIL-bicubic LR, Y trunc, crop 0, SSIM Gaussian, "
                          "VIF steerable pyramid on PIL 'L', LPIPS AlexNet RGB",
                 "y_quant": "floor", "lr": "pil"},
    "family_B": {"label": "B: DIC line (DIC, SFMNet, FishFSRNet, SPADNet, W-Net I): Y round, crop 8, SSIM 7x7",
                 "y_quant": "round", "crop": 8, "ssim": "uniform"},
}


def score_conventions(sr, hr, scale: int, conventions: Mapping[str, Mapping] = CONVENTIONS) -> dict[str, dict]:
    """Mean PSNR and SSIM of the same SR images under each convention: ``{name: {"psnr", "ssim"}}``
    (one metric code: :func:`fsrlib.metrics.image.psnr`, ``ssim``, ``ssim_uniform``)."""
    out = {}
    for name, c in conventions.items():
        border = int(scale) if c.get("crop") == "scale" else int(c.get("crop", 0))
        kw = {"crop_border": border, "color": c.get("color", "y"), "y_quant": c.get("y_quant", "none")}
        s = ssim_uniform(sr, hr, **kw) if c.get("ssim") == "uniform" else ssim(sr, hr, **kw)
        p = psnr(sr, hr, **kw)
        out[name] = {"psnr": float(p[torch.isfinite(p)].mean()), "ssim": float(s.mean())}
    return out


def build_metric(spec: str | Mapping[str, Any] | Metric, **defaults: Any) -> Metric:
    """A :class:`Metric` from a name (``"psnr"``), a config (``{"type": "psnr", "crop_border": 8,
    "name": "psnr_c8"}``) or an instance. ``defaults`` (``crop_border``, ``offline``, ``device``)
    fill the parameters that the metric takes and the config does not set."""
    if isinstance(spec, Metric):
        return spec
    cfg = {"type": spec} if isinstance(spec, str) else dict(spec)
    fn, _ = METRICS.split(cfg)
    params = inspect.signature(fn).parameters
    for k, v in defaults.items():
        if v is not None and k in params and k not in cfg:
            cfg[k] = v
    return METRICS.build(cfg)


def describe_metrics(metrics: Iterable[str | Mapping | Metric] = ("psnr", "ssim", "lpips", "vif"),
                     **defaults: Any) -> dict[str, dict]:
    """``{name: {higher_is_better, range, convention, per_image}}`` for the protocol record."""
    out = {}
    for spec in metrics:
        m = build_metric(spec, **defaults)
        out[m.name] = m.info().as_dict()
    return out


def evaluate_images(sr, hr, metrics: Sequence[str | Mapping | Metric] = ("psnr", "ssim", "lpips", "vif"),
                    crop_border: int = 0, names: Sequence[str] | None = None, batch_size: int = 64,
                    offline: bool = True, device: str = "cpu", lpips_weights: str | None = None,
                    fid_weights: str | None = None, progress: bool = True,
                    ) -> tuple["pd.DataFrame", dict[str, float | None], dict[str, str]]:  # noqa: F821
    """Score SR images against HR images.

    ``sr``, ``hr``: ``(N,3,H,W)`` float tensors in [0, 1] (uint8 tensors and HxWx3 uint8 arrays
    or lists of them also work). ``metrics``: names or configs of :data:`METRICS`;
    ``crop_border``, ``offline`` and ``device`` apply to every metric that takes them unless its
    config says otherwise; ``lpips_weights`` is the trunk checkpoint of the ``lpips`` (AlexNet)
    metric and ``fid_weights`` the FID Inception checkpoint (default: the torch hub cache).

    Returns ``(per_image, aggregate, missing)``:

    * ``per_image``: DataFrame with ``index`` (and ``name`` when given) and one column per
      available per-image metric;
    * ``aggregate``: ``{metric: mean over images}`` for every requested metric, ``None`` for a
      missing one (JSON ``null``); set metrics (FID) give their one value;
    * ``missing``: ``{metric: reason}``; a metric is missing when its weights are absent, or
      (PSNR) when some SR image equals its HR so that the mean is infinite.
    """
    sr_t, hr_t = as_nchw(sr), as_nchw(hr)
    if sr_t.shape != hr_t.shape:
        raise ValueError(f"SR and HR shapes differ: {tuple(sr_t.shape)} vs {tuple(hr_t.shape)}")
    n = sr_t.shape[0]
    if names is not None and len(names) != n:
        raise ValueError(f"{len(names)} names for {n} images")

    built = []
    for spec in metrics:
        extra = {}
        cfg = {"type": spec} if isinstance(spec, str) else spec
        if isinstance(cfg, Mapping) and cfg.get("type") == "lpips" and "net" not in cfg:
            extra["backbone_weights"] = lpips_weights  # AlexNet's file; lpips_vgg needs its own
        if isinstance(cfg, Mapping) and cfg.get("type") == "fid":
            extra["weights"] = fid_weights
        built.append(build_metric(spec, crop_border=crop_border, offline=offline, device=device, **extra))
    seen = set()
    for m in built:
        if m.name in seen:
            raise ValueError(f"metric name {m.name!r} requested twice; give one of them a 'name'")
        seen.add(m.name)

    missing: dict[str, str] = {}
    active = []
    for m in built:
        ok, reason = m.available()
        if ok:
            active.append(m)
        else:
            missing[m.name] = reason
    for m in active:
        if not m.per_image:
            m.reset()

    values: dict[str, list[torch.Tensor]] = {m.name: [] for m in active if m.per_image}
    with tqdm(total=n, desc="metrics", unit="img", disable=not progress, leave=False) as bar:
        for i in range(0, n, batch_size):
            a, b = quantize(sr_t[i:i + batch_size]), quantize(hr_t[i:i + batch_size])
            a8, b8 = a.to(torch.uint8), b.to(torch.uint8)  # exact: already 0..255 integers
            for m in active:
                if m.per_image:
                    values[m.name].append(m(a8, b8).double().cpu())
                else:
                    m.update(a8, b8)
            bar.update(a.shape[0])

    df = pd.DataFrame({"index": np.arange(n)})
    if names is not None:
        df["name"] = list(names)
    aggregate: dict[str, float | None] = {}
    for m in built:
        if m.name in missing:
            aggregate[m.name] = None
        elif m.per_image:
            v = torch.cat(values[m.name]).numpy()
            df[m.name] = v
            if np.isfinite(v).all():
                aggregate[m.name] = float(v.mean())
            else:
                k = int((~np.isfinite(v)).sum())
                aggregate[m.name] = None
                missing[m.name] = (f"{k} of {n} images give a non-finite {m.name} (SR identical to HR: "
                                   f"PSNR = inf); the mean is undefined (set max_db to cap)")
        else:
            try:
                aggregate[m.name] = m.compute()
            except ValueError as e:
                aggregate[m.name] = None
                missing[m.name] = str(e)
    return df, aggregate, missing
