"""The data stages' settings and two dict helpers every layer may use (a leaf: it imports
nothing of fsrlib).

- :data:`STAGE_DEFAULTS`: the keys and defaults of the ``prepare``, ``degrade`` and ``parse``
  sections of params.yaml (their code reads them as ``fsrlib.data.align.DEFAULTS``,
  ``fsrlib.data.degrade.DEFAULTS`` and ``fsrlib.parsing.DEFAULTS``; :mod:`fsrlib.config`
  accepts exactly these keys, without importing the data code).
- :func:`stage_settings` / :func:`stage_section`: a stage's settings, its section of
  ``params.yaml`` over its defaults (data, parsing and pipeline code read their sections
  through them, so they never import :mod:`fsrlib.config`).
- :func:`deep_merge`: the one recursive merge of the project (a run's ``overrides`` over its
  method, a method's dataset options, profiles).
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

__all__ = ["STAGE_DEFAULTS", "stage_settings", "stage_section", "deep_merge"]

STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "prepare": {                      # dlib detection -> similarity alignment -> 128x128 crop (fsrlib.data.align)
        "hr_size": 128,
        "margin": 1.2,
        "min_face_size": 80,          # px, landmark extent in the original photo (~77 px in the crop at margin 1.2)
        "reject_grayscale": True,
        "max_black_frac": 0.25,
        "detect_max_side": 640,
        "detect_upsample": 1,         # extra pyramid up-sampling tried when nothing is found
        "helen_gt_fallback": True,    # align a Helen face on its ground-truth points if dlib misses it
        "split_seed": 0,
        "split_fractions": [0.8, 0.1, 0.1],
        "helen50_n": 50,
        "workers": 2,
    },
    "degrade": {                      # MATLAB imresize bicubic LR (fsrlib.data.degrade)
        "scales": [4, 8],             # 16 on request
        "hr_size": 128,
        "boundary": "symmetric",      # MATLAB >= R2013b; "replicate" for older releases
        "round_between_passes": True,  # MATLAB uint8 semantics; False = BasicSR / mmagic ports
        "workers": 2,
    },
    "parse": {                        # the parser of the label maps (fsrlib.parsing)
        "parser": "landmark",
        "scales": [4, 8],
        "batch_size": 16,
        "parser_kw": {},
        "bisenet_weights": None,      # official 79999_iter.pth path; None = the train_parser stage's weights
        "trained_weights": "data/parser/bisenet.pt",  # what the train_parser stage writes
    },
    "train_parser": {                 # fsrlib's BiSeNet on the CelebAMask-HQ train faces (fsrlib.parsing.training)
        "width": 0.25,                # channel multiplier (1 = the official network; needed for a backbone)
        "batch_size": 8,
        "lr": 3.0e-3,                 # Adam, cosine to 0 over iters or max_minutes
        "iters": 400,
        "max_minutes": 3.5,           # stop early at this wall time (the demo budget)
        "hflip": True,                # with the l/r classes swapped
        "scale": [1.0, 1.25],         # random zoom range
        "color": 0.2,                 # brightness / contrast / saturation jitter
        "backbone": None,             # a local torchvision resnet18 state dict (ImageNet); None = from scratch
        "seed": 0,
        "threads": 2,
    },
}


def stage_section(params: Mapping | None, section: str, defaults: Mapping) -> dict:
    """A stage's settings: its section of params (or the section itself) over the stage's
    ``DEFAULTS``; ``None`` values keep the default."""
    params = dict(params or {})
    if isinstance(params.get(section), Mapping):
        params = dict(params[section])
    return {**defaults, **{k: v for k, v in params.items() if v is not None}}


def deep_merge(base: Mapping, over: Mapping | None) -> dict:
    """Recursive dict merge; ``over`` wins; lists and scalars are replaced, not merged."""
    out = copy.deepcopy(dict(base))
    for k, v in (over or {}).items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def stage_settings(params: Mapping | None, section: str) -> dict:
    """``prepare``, ``degrade`` or ``parse`` settings: that section of params (or the section
    itself) over :data:`STAGE_DEFAULTS`; ``None`` values keep the default."""
    return stage_section(params, section, STAGE_DEFAULTS[section])
