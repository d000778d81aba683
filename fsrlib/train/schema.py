"""The run config: every key a run may set, its default, and :func:`validate_config`.

A run's config is ``methods[method]`` deep-merged with the run's ``overrides``, plus
``method``, ``scale`` and ``run`` (:func:`fsrlib.config.run_config`). The trainer
(:class:`fsrlib.train.trainer.Trainer`) takes it through :func:`validate_config`; ``fsr check``
and the train stage validate every run of params.yaml with :func:`validate_runs` before any
work. Nothing here builds a model or touches a file: the checks use the registries' signatures.

Run config (unknown keys anywhere fail in :func:`validate_config`, before any work)
-------------------------------------------------------------------------------------
=================  ===========  ============================================================
key                default      meaning
=================  ===========  ============================================================
method             (required)   method name (for records), e.g. ``sparnet``
scale              (required)   4 | 8 | 16; passed to the model constructor
iters              (required)   number of optimisation steps (G steps for GANs)
model              (required)   ``{type, ...}`` for ``MODELS`` (``scale`` is added)
losses             (required)   list of loss configs (``fsrlib.losses``); weight-0 entries
                                are skipped (never built)
run                method-xS    run name = directory under ``runs_root``
recipe             pixel        ``pixel`` | ``gan`` | ``two_stage``
d_model            null         discriminator ``{type, ...}`` (MODELS), required for gan
d_losses           null         discriminator losses; null = the D side of the G
                                ``adversarial`` entry (same gan_type/reduction, weight 1)
optim              adam 1e-4    ``{type: adam|adamw|rmsprop|sgd, lr, ...}``, see OPTIMIZERS
d_optim            null         the discriminator's optimiser; null = same as ``optim``
schedule           constant     ``{type: constant|step|cosine, warmup_iters: 0, ...}``:
                                step: ``milestones`` (ints = iterations, floats in (0, 1) =
                                fractions of ``iters``), ``gamma`` 0.5; cosine: ``min_lr``
                                0.0. The learning rate is a pure function of the iteration.
d_schedule         null         null = same as ``schedule``
batch_size         16           *global* batch (split evenly over DDP ranks)
ema                null         ``{decay: 0.999, buffers: all|average|copy, warmup: false}``;
                                the EMA model is validated and exported
augment            null         ``{hflip: false, rot90: false, swap_channels:
                                {parts11: [[1,2],[3,4],[9,10]]}}``, applied jointly to
                                every image-like batch key on the device; channels listed
                                in swap_channels are swapped when an image is flipped
                                (left/right parts). Rescaling belongs to the dataset
                                (``FaceSRDataset(augment=...)``, which the trainer drives
                                with ``set_epoch``); use one of the two for flips, not both.
val_every          1000         validate every N iterations (and at the end)
val                see right    ``{pred: sr, target: hr, max_images: null, grid: 4,
                                crop_border: 0, batch_size: null (= per-rank batch),
                                use_ema: true}``. ``pred: sr``: PSNR/SSIM on the Y channel
                                (``fsrlib.metrics.image``); another pred (e.g. ``parsing``
                                vs ``skin_lr``): PSNR and L1 on the raw maps.
ckpt_every         1000         checkpoint every N iterations (and at the end)
keep_ckpts         2            numbered checkpoints kept (``last.pt`` always); 0 = only last
select             last         which weights ``model.pt`` holds: ``last`` (the end of the
                                schedule) or ``val`` (the validation with the best
                                ``val/psnr``; every validation then saves
                                ``snapshots/iter_NNNNNNN.pt``, a model file, so the evaluate
                                stage can measure what a test-set pick would have added).
                                Test sets are never read in training.
log_every          50           average and log the training losses every N iterations
seed               0            model init, data order, augmentation, dropout
init_from          null         run name / dir / file whose ``model.pt`` initialises G
                                (thesis method 2 from method 1, AMIGAN from AMINet, x16
                                from x8)
init_strict        true         ``load_state_dict(strict=...)`` for ``init_from``
prior_from         null         run whose model (ParsingNet) gives the prior (two_stage)
prior_key          parsing      output key of the prior network
prior_gt           null         batch key used as the prior instead (oracle ablation)
amp                auto         ``auto`` | false | ``bf16`` | ``fp16`` (autocast; GradScaler for fp16);
                                auto = bf16 on a CPU with AVX512-BF16/AMX, fp32 elsewhere
                                (CUDA included): :mod:`fsrlib.train.precision`
channels_last      auto         ``auto`` | true | false: NHWC model and inputs; auto = when
                                bf16 autocast runs on the CPU
compile            false        ``torch.compile`` the model (and D)
deterministic      false        ``torch.use_deterministic_algorithms`` (+ cuDNN settings)
grad_clip          null         max gradient norm (G and D), null = none
num_workers        0            DataLoader workers
ddp_find_unused    auto         DDP ``find_unused_parameters``; auto = probe once at start
notes              null         free text, recorded only
=================  ===========  ============================================================

Optimisers (:data:`OPTIMIZER_KEYS`): ``adam`` / ``adamw`` ``{lr, betas, eps, weight_decay, amsgrad}``, ``rmsprop``
``{lr, alpha, eps, weight_decay, momentum, centered}``, ``sgd`` ``{lr, momentum,
weight_decay, nesterov}`` (torch defaults where absent; ``lr`` required).

"""
from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

from .. import losses as _losses  # noqa: F401  (registers the losses)
from .. import models as _models  # noqa: F401  (registers the model zoo, discriminators included)
from ..config import all_runs, run_config
from ..losses import validate_loss_config
from ..registry import LOSSES, MODELS, ConfigError
from ..settings import deep_merge

__all__ = ["DEFAULTS", "REQUIRED", "RECIPE_NAMES", "OPTIMIZER_KEYS", "SCHEDULES", "EMA_KEYS", "AUGMENT_KEYS",
           "VAL_KEYS", "SELECT_RULES", "RESUME_FREE", "BUDGET_KEYS", "validate_config", "validate_runs", "lint_params",
           "check_budget"]

DEFAULTS: dict[str, Any] = {
    "method": None, "scale": None, "iters": None, "model": None, "losses": None,
    "run": None, "recipe": "pixel", "d_model": None, "d_losses": None,
    "optim": {"type": "adam", "lr": 1e-4}, "d_optim": None,
    "schedule": {"type": "constant"}, "d_schedule": None,
    "batch_size": 16, "ema": None, "augment": None,
    "val_every": 1000, "val": None, "ckpt_every": 1000, "keep_ckpts": 2, "select": "last", "log_every": 50,
    "seed": 0, "init_from": None, "init_strict": True,
    "prior_from": None, "prior_key": "parsing", "prior_gt": None,
    "amp": "auto", "channels_last": "auto", "compile": False, "deterministic": False, "grad_clip": None,
    "num_workers": 0, "ddp_find_unused": "auto", "notes": None,
}
REQUIRED = ("method", "scale", "iters", "model", "losses")
RECIPE_NAMES = ("pixel", "gan", "two_stage")

#: optimiser type -> the keys its config may have (:mod:`fsrlib.train.optim` builds them)
OPTIMIZER_KEYS: dict[str, set[str]] = {
    "adam": {"lr", "betas", "eps", "weight_decay", "amsgrad"},
    "adamw": {"lr", "betas", "eps", "weight_decay", "amsgrad"},
    "rmsprop": {"lr", "alpha", "eps", "weight_decay", "momentum", "centered"},
    "sgd": {"lr", "momentum", "weight_decay", "nesterov", "dampening"},
}
SCHEDULES = {"constant": {"warmup_iters"}, "step": {"warmup_iters", "milestones", "gamma"},
             "cosine": {"warmup_iters", "min_lr"}}
EMA_KEYS = {"decay": 0.999, "buffers": "all", "warmup": False}
AUGMENT_KEYS = {"hflip": False, "rot90": False, "swap_channels": {"parts11": [[1, 2], [3, 4], [9, 10]]}}
VAL_KEYS = {"pred": "sr", "target": "hr", "max_images": None, "grid": 4, "crop_border": 0,
            "batch_size": None, "use_ema": True}
SELECT_RULES = ("last", "val")
# keys that may change between a checkpoint and its resume (``iters`` too, with a warning)
RESUME_FREE = {"val_every", "val", "ckpt_every", "keep_ckpts", "log_every", "num_workers", "notes",
               "compile", "ddp_find_unused"}


def _check_keys(where: str, d: Mapping, allowed: Iterable[str]) -> None:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(d).__name__}")
    bad = sorted(set(d) - set(allowed))
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {bad}; allowed: {sorted(allowed)}")


def _pos_int(cfg, key, allow_zero=False):
    v = cfg[key]
    if not isinstance(v, int) or isinstance(v, bool) or v < (0 if allow_zero else 1):
        raise ConfigError(f"{key} must be a {'non-negative' if allow_zero else 'positive'} integer, got {v!r}")


def _validate_optim(where, o):
    if not isinstance(o, Mapping) or "type" not in o:
        raise ConfigError(f"{where} needs a type: ({sorted(OPTIMIZER_KEYS)})")
    if o["type"] not in OPTIMIZER_KEYS:
        raise ConfigError(f"{where}: unknown optimiser {o['type']!r}; known {sorted(OPTIMIZER_KEYS)}")
    _check_keys(where, o, {"type"} | OPTIMIZER_KEYS[o["type"]])
    if "lr" not in o or not float(o["lr"]) > 0:
        raise ConfigError(f"{where}: lr must be given and positive")


def _validate_schedule(where, s):
    if not isinstance(s, Mapping) or s.get("type") not in SCHEDULES:
        raise ConfigError(f"{where} needs type: one of {sorted(SCHEDULES)}")
    _check_keys(where, s, {"type"} | SCHEDULES[s["type"]])
    if s["type"] == "step" and not s.get("milestones"):
        raise ConfigError(f"{where}: step schedule needs milestones")


def _loss_type(cfg) -> str:
    return cfg.get("type")


def _loss_class(cfg):
    return LOSSES.get(_loss_type(cfg))


def validate_config(cfg: Mapping[str, Any]) -> dict:
    """Check a run config and return a normalised deep copy with every default filled in.

    Raises :class:`fsrlib.registry.ConfigError` on unknown keys, unknown model / loss /
    optimiser types, bad values or inconsistent recipes. Touches no file and no weights."""
    _check_keys("run config", cfg, DEFAULTS)
    c = copy.deepcopy(DEFAULTS)
    c.update(copy.deepcopy(dict(cfg)))
    missing = [k for k in REQUIRED if c.get(k) is None]
    if missing:
        raise ConfigError(f"run config is missing {missing}")
    for k in ("scale", "iters", "batch_size", "val_every", "ckpt_every", "log_every"):
        _pos_int(c, k)
    _pos_int(c, "keep_ckpts", allow_zero=True)
    if c["select"] not in SELECT_RULES:
        raise ConfigError(f"select must be one of {SELECT_RULES}, got {c['select']!r}")
    _pos_int(c, "num_workers", allow_zero=True)
    if not isinstance(c["seed"], int):
        raise ConfigError(f"seed must be an integer, got {c['seed']!r}")
    c["run"] = c["run"] or f"{c['method']}-x{c['scale']}"
    if c["recipe"] not in RECIPE_NAMES:
        raise ConfigError(f"recipe must be one of {RECIPE_NAMES}, got {c['recipe']!r}")

    # model
    if not isinstance(c["model"], Mapping) or "type" not in c["model"]:
        raise ConfigError("model needs a type:")
    m = dict(c["model"])
    if "scale" in m and int(m["scale"]) != c["scale"]:
        raise ConfigError(f"model.scale {m['scale']} != scale {c['scale']}")
    m["scale"] = c["scale"]
    MODELS.validate(m)
    c["model"] = m

    # losses
    if not isinstance(c["losses"], list) or not c["losses"]:
        raise ConfigError("losses must be a non-empty list")
    c["losses"] = [{"type": lc} if isinstance(lc, str) else dict(lc) for lc in c["losses"]]
    for i, lc in enumerate(c["losses"]):
        try:
            validate_loss_config(lc)
        except ConfigError as e:
            raise ConfigError(f"losses[{i}]: {e}") from None
    if all(float(lc.get("weight", 1.0)) == 0 for lc in c["losses"]):
        raise ConfigError("every loss has weight 0")
    g_adv = [lc for lc in c["losses"] if getattr(_loss_class(lc), "needs_discriminator", False)
             and float(lc.get("weight", 1.0)) != 0]

    # GAN
    if c["recipe"] == "gan":
        if not c["d_model"]:
            raise ConfigError("recipe gan needs d_model: {type: ...}")
        if not isinstance(c["d_model"], Mapping) or "type" not in c["d_model"]:
            raise ConfigError("d_model needs a type:")
        MODELS.validate(c["d_model"])
        if c["d_losses"] is None:
            advs = [lc for lc in g_adv if _loss_type(lc) == "adversarial"]
            a = dict(advs[0]) if advs else {"type": "adversarial"}
            a.pop("name", None)
            c["d_losses"] = [{**a, "weight": 1.0}]
        if not isinstance(c["d_losses"], list) or not c["d_losses"]:
            raise ConfigError("d_losses must be a non-empty list")
        c["d_losses"] = [{"type": lc} if isinstance(lc, str) else dict(lc) for lc in c["d_losses"]]
        for i, lc in enumerate(c["d_losses"]):
            validate_loss_config(lc)
            if not hasattr(_loss_class(lc), "d_value"):
                raise ConfigError(f"d_losses[{i}]: {_loss_type(lc)!r} has no discriminator side")
        if not g_adv:
            raise ConfigError("recipe gan without an adversarial / feature_matching loss of non-zero weight: "
                              "use recipe pixel")
        c["d_optim"] = c["d_optim"] or copy.deepcopy(c["optim"])
        _validate_optim("d_optim", c["d_optim"])
        c["d_schedule"] = c["d_schedule"] or copy.deepcopy(c["schedule"])
        _validate_schedule("d_schedule", c["d_schedule"])
    else:
        for k in ("d_model", "d_losses", "d_optim", "d_schedule"):
            if c[k]:
                raise ConfigError(f"{k} is only for recipe gan (recipe is {c['recipe']!r})")
        if g_adv:
            raise ConfigError(f"losses {[_loss_type(x) for x in g_adv]} need a discriminator: use recipe gan")

    _validate_optim("optim", c["optim"])
    _validate_schedule("schedule", c["schedule"])

    # prior
    if c["prior_from"] and c["prior_gt"]:
        raise ConfigError("give prior_from (a trained prior network) or prior_gt (a batch key), not both")
    if c["recipe"] == "two_stage" and not c["prior_from"]:
        raise ConfigError("recipe two_stage needs prior_from: the run of the trained prior network")

    # sub-dicts
    if c["ema"] is not None:
        _check_keys("ema", c["ema"], EMA_KEYS)
        c["ema"] = {**EMA_KEYS, **c["ema"]}
        c["ema"]["decay"] = float(c["ema"]["decay"])
        if not 0 <= float(c["ema"]["decay"]) < 1:
            raise ConfigError("ema.decay must be in [0, 1)")
        if c["ema"]["buffers"] not in ("all", "average", "copy"):
            raise ConfigError("ema.buffers must be all (the released code: the whole state dict), average or copy")
    if c["augment"] is not None:
        _check_keys("augment", c["augment"], AUGMENT_KEYS)
        c["augment"] = {**copy.deepcopy(AUGMENT_KEYS), **c["augment"]}
    _check_keys("val", c["val"] or {}, VAL_KEYS)
    c["val"] = {**VAL_KEYS, **(c["val"] or {})}
    if c["amp"] is True:
        c["amp"] = "bf16"
    if c["amp"] not in ("auto", False, None, "bf16", "fp16"):
        raise ConfigError(f"amp must be auto, false, bf16 or fp16, got {c['amp']!r}")
    c["amp"] = c["amp"] or False
    if c["channels_last"] not in ("auto", True, False):
        raise ConfigError(f"channels_last must be auto, true or false, got {c['channels_last']!r}")
    if c["ddp_find_unused"] not in ("auto", True, False):
        raise ConfigError("ddp_find_unused must be auto, true or false")
    if c["grad_clip"] is not None:
        c["grad_clip"] = float(c["grad_clip"])
        if not c["grad_clip"] > 0:
            raise ConfigError("grad_clip must be positive or null")
    return c


def validate_runs(params: Mapping) -> Mapping:
    """:func:`validate_config` of every run of params (after :func:`fsrlib.config.validate_params`):
    unknown model / loss types or arguments fail here, before any work. Returns ``params``."""
    for name in all_runs(params):
        validate_config(run_config(params, name))
    return params


def lint_params(params: Mapping) -> list[str]:
    """What ``fsr check`` refuses besides invalid configs: one thing said two ways.

    - A chained GAN run's generator must be its parent's *by construction*: the method's
      ``model:`` is a YAML alias of the parent method's (``model: *aminet``), not a copy that
      can drift (PyYAML loads an alias as the same object, which is what is checked).
    - An ablation is a model preset (registered next to its model, e.g. ``sparnet_baseline``)
      that a run selects with ``overrides: {model: {type: <preset>}}``; model overrides that
      spell out a registered preset's arguments are refused.
    Returns one message per problem (empty: nothing to fix)."""
    problems: list[str] = []
    methods = params.get("methods") or {}
    runs = all_runs(params)
    presets = MODELS.presets()
    for name, r in runs.items():
        m = methods.get(r.get("method")) or {}
        over = ((r.get("overrides") or {}).get("model")) or {}
        parent = runs.get(r.get("from") or "")
        if parent is not None and m.get("recipe") != "two_stage" and not over \
                and not ((parent.get("overrides") or {}).get("model")):
            pm = methods.get(parent.get("method")) or {}
            if m.get("model") is not pm.get("model"):
                problems.append(f"methods.{r['method']}.model repeats methods.{parent['method']}.model (run {name} "
                                f"starts from {r['from']}): write `model: *<anchor>` with an anchor on "
                                f"methods.{parent['method']}.model, so the generator cannot drift")
        if over and "type" not in over and isinstance(m.get("model"), Mapping):
            merged = deep_merge(m["model"], over)
            for preset, (base, defaults) in sorted(presets.items()):
                if base == merged.get("type") and defaults and all(merged.get(k) == v for k, v in defaults.items()) \
                        and not all(m["model"].get(k) == v for k, v in defaults.items()):
                    problems.append(f"run {name}: overrides {dict(over)} spell out the model preset {preset!r}; "
                                    f"write `overrides: {{model: {{type: {preset}}}}}` "
                                    "(one way to express an ablation)")
    return problems


#: the keys of ``train.budget`` (params.yaml): one budget rule for every trained stage
BUDGET_KEYS = {"images", "batch_size", "schedule", "lr_factor", "macs_target_g", "macs_band", "macs_exempt"}


def check_budget(params: Mapping, paper_methods: Mapping | None = None) -> list[str]:
    """Where the runs of ``params`` break ``train.budget`` (empty: every run obeys it).

    Every run with trainable weights (``iters > 1``): ``iters x batch_size == images`` and
    ``batch_size`` the budget's, ``schedule`` (and ``d_schedule``, when set) equal to the
    budget's; with ``paper_methods`` (``methods:`` of params/paper.yaml), ``optim.lr`` (and
    ``d_optim.lr``) == the paper's x ``lr_factor`` (1e-9 relative). MACs are checked where a
    model can be built (tests/test_budget.py: :func:`fsrlib.models.common.count_macs`)."""
    b = (params.get("train") or {}).get("budget")
    if not b:
        return []
    bad = set(b) - BUDGET_KEYS
    if bad:
        return [f"train.budget: unknown key(s) {sorted(bad)}; allowed: {sorted(BUDGET_KEYS)}"]
    out: list[str] = []
    for name, r in all_runs(params).items():
        c = run_config(params, name)
        method = r["method"]
        if (c.get("model") or {}).get("type") == "bicubic" or int(c.get("iters") or 0) <= 1:
            continue
        bs, it = int(c.get("batch_size", DEFAULTS["batch_size"])), int(c["iters"])
        if bs != int(b["batch_size"]) or bs * it != int(b["images"]):
            out.append(f"run {name}: {it} iters x batch {bs} = {it * bs} images, budget {b['images']} "
                       f"(batch {b['batch_size']})")
        for k in ("schedule", "d_schedule"):
            if (k == "schedule" or c.get(k)) and dict(c.get(k) or {}) != dict(b["schedule"]):
                out.append(f"run {name}: {k} {c.get(k)} is not the budget's {b['schedule']}")
        pm = (paper_methods or {}).get(method)
        if paper_methods is not None and pm is None:
            out.append(f"run {name}: method {method!r} has no paper entry (its paper lr)")
            continue
        for k in ("optim", "d_optim") if pm else ():
            if not c.get(k):
                continue
            paper_lr = float(((pm.get(k) or pm.get("optim")) or {}).get("lr"))
            want = paper_lr * float(b["lr_factor"])
            if abs(float(c[k]["lr"]) - want) > 1e-9 * want:
                out.append(f"run {name}: {k}.lr {c[k]['lr']} != paper {paper_lr:g} x {b['lr_factor']} = {want:g}")
    return out
