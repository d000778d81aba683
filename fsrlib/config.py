"""Load and validate ``params.yaml``: unknown sections, keys, methods, scales and model or
loss arguments fail here, before any work starts.

Layout of params.yaml (see the file itself for every value)::

    data:        where the raw data comes from (mirror / public sources)
    prepare:     detection, alignment, filtering, splits
    degrade:     scales, resampler
    parse:       which parser makes the label maps
    train:       defaults shared by every run (device, threads, data subsets, ...)
    methods:     named recipes: model + losses + optimiser + schedule (the paper's choices)
    runs:        what the ``train`` stage trains: ``{name: {method, scale, overrides}}``
    chained:     runs that start from another run (``from: run``): FishFSRNet (prior from
                 ParsingNet), GAN fine-tuning (init from the PSNR model)
    evaluate:    test sets, metrics, border crop
    downstream:  identity and landmark measures
    report:      which figures and tables

A run's trainer config = ``methods[method]`` deep-merged with ``runs[name].overrides``,
plus ``method``, ``scale`` and ``run``. An ablation is a run that names its base method and
selects a model preset (``sparnet_v1-x8: {method: sparnet, scale: 8, overrides: {model: {type:
sparnet_v1}}}``), so DVC tracks exactly ``methods.<base>`` and ``runs.<name>``; a GAN method's
generator is a YAML alias of its PSNR method's (``model: *aminet``). ``fsr check`` refuses the
other spellings (:func:`fsrlib.train.schema.lint_params`). Run names follow :data:`RUN_NAME`
(``<key>-x<scale>[-<tag>]``); ``<key>`` is what the report joins paper tables on.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import yaml

from .registry import ConfigError
from .settings import STAGE_DEFAULTS, deep_merge

SECTIONS = {
    "data": {"source", "mirror", "datasets", "ffhq", "celeba_test_per_identity"},
    "prepare": None,  # keys of fsrlib.settings.STAGE_DEFAULTS["prepare"]
    "degrade": None,  # keys of fsrlib.settings.STAGE_DEFAULTS["degrade"]
    "parse": None,    # keys of fsrlib.settings.STAGE_DEFAULTS["parse"]
    "train_parser": None,  # keys of fsrlib.settings.STAGE_DEFAULTS["train_parser"]
    "train": {"device", "threads", "train_set", "val_set", "max_train_images", "max_val_images",
              "runs_root", "progress", "dataset_workers", "budget", "cache", "select"},
    "methods": None,
    "runs": None,
    "chained": None,
    "evaluate": {"testsets", "metrics", "crop_border", "offline", "lpips_weights", "fid",
                 "max_images", "batch_size", "save_images", "device", "pil_lr_testsets", "test_pick",
                 "testsets_seed_copies", "testsets_by_run"},
    "downstream": {"exclude", "testsets", "identity", "landmarks", "verification_pairs", "arcface_weights",
                   "max_images", "seed", "dlib_max_images", "mobilefacenet_weights", "mobilefacenet_flip",
                   "pfld_weights", "seed_copies", "pfld_testsets"},
    "report": {"figure_faces", "figure_scales", "testset_for_figures", "protocol_testsets"},
}
RUN_KEYS = {"method", "scale", "overrides", "from"}
#: the one run-name grammar, ``<key>-x<scale>[-<tag>]``: ``key`` is what the paper tables join
#: on (``sparnet``, ``wnet_expA``), ``tag`` an optional variant of the same run (``sparnet-x8-seed2``;
#: tables prefer the untagged run). ``hr-x8`` names the HR reference rows of the downstream stage.
RUN_NAME = re.compile(r"^(?P<key>[A-Za-z0-9_]+)-x(?P<scale>4|8|16)(?:-(?P<tag>[A-Za-z0-9_]+))?$")
TESTSETS = ("celeba_test", "helen_test", "helen50", "celebamask_test")


def load_params(path: str | os.PathLike = "params.yaml") -> dict:
    with open(path) as f:
        params = yaml.safe_load(f) or {}
    return params


def all_runs(params: Mapping) -> dict[str, dict]:
    """Every run (independent and chained) by name, in params order."""
    runs = dict(params.get("runs") or {})
    for name, r in (params.get("chained") or {}).items():
        if name in runs:
            raise ConfigError(f"run {name!r} is both in runs and chained")
        runs[name] = r
    return runs


def parse_run_name(run_name: str) -> tuple[str, int | None, str]:
    """``"wnet_expA-x4"`` -> ``("wnet_expA", 4, "")``; ``"sparnet-x8-seed2"`` -> tag ``"seed2"``;
    a name outside :data:`RUN_NAME` -> ``(run_name, None, "")``."""
    m = RUN_NAME.match(run_name)
    if not m:
        return run_name, None, ""
    return m["key"], int(m["scale"]), m["tag"] or ""


def run_key(run_name: str) -> str:
    """``sparnet_v1-x8`` -> ``sparnet_v1`` (what tables join on); a :class:`ConfigError` for a name
    outside :data:`RUN_NAME`."""
    key, scale, _ = parse_run_name(run_name)
    if scale is None:
        raise ConfigError(f"run name {run_name!r} must look like <key>-x<scale>[-<tag>] (letters, digits and _; "
                          "scale 4/8/16)")
    return key


def run_config(params: Mapping, run_name: str) -> dict:
    """The trainer config of one run (its keys: :mod:`fsrlib.train.schema`)."""
    runs = all_runs(params)
    if run_name not in runs:
        raise ConfigError(f"unknown run {run_name!r}; runs in params.yaml: {sorted(runs)}")
    r = runs[run_name]
    methods = params.get("methods") or {}
    if r.get("method") not in methods:
        raise ConfigError(f"run {run_name!r}: unknown method {r.get('method')!r}; methods: {sorted(methods)}")
    cfg = deep_merge(methods[r["method"]], r.get("overrides"))
    cfg.pop("dataset", None)  # dataset options: see dataset_config
    cfg["method"] = run_key(run_name)
    cfg["scale"] = int(r["scale"])
    cfg["run"] = run_name
    sel = (params.get("train") or {}).get("select")   # one checkpoint-selection rule for every run
    if sel:
        bad = set(sel) - {"rule", "val_every"}
        if bad:
            raise ConfigError(f"train.select: unknown key(s) {sorted(bad)}; allowed: rule, val_every")
        cfg.setdefault("select", sel.get("rule", "last"))
        if sel.get("val_every"):
            cfg.setdefault("val_every", int(sel["val_every"]))
    if r.get("from"):
        cfg.setdefault("init_from", None)
        if cfg.get("recipe") == "two_stage":
            cfg["prior_from"] = r["from"]
        else:
            cfg["init_from"] = r["from"]
    return cfg


DATASET_KEYS = {"augment", "degradation", "hr_size", "hr_source"}


def dataset_config(params: Mapping, run_name: str) -> dict:
    """The dataset options of a run: ``methods[m].dataset`` merged with the run's overrides.

    ``augment``: ``{hflip, rot90, rescale: [lo, hi]}`` (applied per item, seeded; LR
    regenerated after rescaling); ``degradation``: ``bicubic`` | ``blind-paper`` |
    ``blind-released`` (SPARNetHD); ``hr_size`` (default 128): 512 trains on the 512-px faces of
    ``hr_source`` (``ffhq`` when ``data.ffhq`` is true, else ``celebamask_hq``:
    :mod:`fsrlib.data.hr_faces`)."""
    r = all_runs(params)[run_name]
    m = (params.get("methods") or {})[r["method"]]
    d = deep_merge(m.get("dataset") or {}, (r.get("overrides") or {}).get("dataset"))
    extra = set(d) - DATASET_KEYS
    if extra:
        raise ConfigError(f"run {run_name!r}: unknown dataset option(s) {sorted(extra)}; "
                          f"allowed: {sorted(DATASET_KEYS)}")
    if int(d.get("hr_size", 128)) not in (128, 512):
        raise ConfigError(f"run {run_name!r}: dataset.hr_size must be 128 or 512, got {d['hr_size']}")
    if d.get("hr_source") not in (None, "celebamask_hq", "ffhq"):
        raise ConfigError(f"run {run_name!r}: dataset.hr_source must be celebamask_hq or ffhq, got {d['hr_source']!r}")
    return d


def validate_params(params: Mapping) -> list[str]:
    """Raise :class:`ConfigError` on the first problem; return a list of warnings.

    Checks sections, keys, scales, test sets and runs. The run configs themselves (model and
    loss types and arguments) are checked by :func:`fsrlib.train.schema.validate_runs`, which
    ``fsr check`` and the train stage call: this module never imports the model zoo, so the
    stages that only read params (evaluate, downstream, report) do not depend on it."""
    warnings: list[str] = []
    unknown = set(params) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"params.yaml: unknown section(s) {sorted(unknown)}; known: {sorted(SECTIONS)}")
    for sec, keys in SECTIONS.items():
        if keys is None or sec not in params:
            continue
        extra = set(params[sec] or {}) - keys
        if extra:
            raise ConfigError(f"params.yaml [{sec}]: unknown key(s) {sorted(extra)}; allowed: {sorted(keys)}")

    for sec, defaults in STAGE_DEFAULTS.items():
        allowed = set(defaults)
        extra = set(params.get(sec) or {}) - allowed
        if extra:
            raise ConfigError(f"params.yaml [{sec}]: unknown key(s) {sorted(extra)}; allowed: {sorted(allowed)}")
    scales = set((params.get("degrade") or {}).get("scales") or [])
    for s in scales:
        if int(s) not in (4, 8, 16):
            raise ConfigError(f"params.yaml [degrade]: scale {s} not in (4, 8, 16)")
    parse_scales = set((params.get("parse") or {}).get("scales") or [])
    if parse_scales - scales:
        raise ConfigError(f"params.yaml [parse]: scales {sorted(parse_scales - scales)} are not made by degrade")
    for sec in ("evaluate", "downstream"):
        for t in (params.get(sec) or {}).get("testsets") or []:
            if t not in TESTSETS:
                raise ConfigError(f"params.yaml [{sec}]: unknown test set {t!r}; known: {list(TESTSETS)}")

    runs = all_runs(params)
    for name, r in runs.items():
        run_key(name)
        extra = set(r) - RUN_KEYS
        if extra:
            raise ConfigError(f"run {name!r}: unknown key(s) {sorted(extra)}; allowed: {sorted(RUN_KEYS)}")
        if int(r.get("scale", 0)) != parse_run_name(name)[1]:
            raise ConfigError(f"run {name!r}: scale {r.get('scale')} does not match its name")
        if scales and int(r["scale"]) not in scales:
            raise ConfigError(f"run {name!r}: scale x{r['scale']} is not made by the degrade stage "
                              f"(degrade.scales = {sorted(scales)})")
        in_chained = name in (params.get("chained") or {})
        if in_chained and not r.get("from"):
            raise ConfigError(f"chained run {name!r} needs `from: <run>`")
        if r.get("from") and not in_chained:
            raise ConfigError(f"run {name!r} has `from:`; put it under `chained:` so DVC orders it")
        if r.get("from") and r["from"] not in runs:
            raise ConfigError(f"run {name!r}: `from: {r['from']}` is not a run")
        dataset_config(params, name)
        if r.get("from"):
            cfg, src = run_config(params, name), run_config(params, r["from"])
            if cfg.get("recipe") != "two_stage" and cfg["model"] != src["model"]:
                raise ConfigError(f"chained run {name!r} starts from {r['from']!r} but their models differ: "
                                  f"{cfg['model']} vs {src['model']}")
    exclude = (params.get("downstream") or {}).get("exclude") or []
    keys = {run_key(n) for n in runs}
    unknown = [k for k in exclude if k not in keys]
    if unknown:
        raise ConfigError(f"params.yaml [downstream] exclude: {unknown} are not trained by any run; "
                          f"run keys: {sorted(keys)}")
    return warnings


def stage_params(path: str | os.PathLike, section: str) -> dict:
    """Validate the whole params file and return one section (what a stage notebook uses)."""
    params = load_and_validate(path)
    if section not in params:
        raise ConfigError(f"params file {path} has no [{section}] section")
    return params[section]


def load_and_validate(path: str | os.PathLike = "params.yaml") -> dict:
    """:func:`load_params` + :func:`validate_params`."""
    params = load_params(path)
    validate_params(params)
    return params


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding params.yaml (notebooks run from notebooks/ or the repo root)."""
    p = Path(start or os.getcwd()).resolve()
    for q in (p, *p.parents):
        if (q / "params.yaml").exists() and (q / "fsrlib").is_dir():
            return q
    raise FileNotFoundError(f"no params.yaml above {p}")
