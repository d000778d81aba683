"""
``Trainer(cfg, train_set, val_set).fit()`` (or :func:`train`) trains the run described by
``cfg`` (the run config: :mod:`fsrlib.train.schema`) on a torch ``Dataset`` of the dicts in
``docs/conventions.md`` and writes ``runs/{run}/``:

- ``checkpoints/iter_NNNNNNN.pt`` every ``ckpt_every`` iterations (atomic) and ``checkpoints/last.pt``
  (a hard link to the newest): models, optimisers, AMP scalers, EMA, iteration, the RNG
  states of every rank, the data-order position, the run config, elapsed time.
- ``model.pt``: ``{"format", "model" (model config incl. scale), "state_dict" (EMA weights
  when ``ema`` is set, else the trained ones), "weights" ("ema"|"raw"), "run_config",
  "iteration", "params", "input_kind", "prior" (the frozen prior net's config + weights
  for two-stage runs, or null)}`` -- :class:`fsrlib.inference.RunPredictor` reads it.
- ``snapshots/iter_NNNNNNN.pt`` (``select: val`` only): the validated weights of every
  validation, each a model file like ``model.pt``; ``model.pt`` is then the snapshot with the
  best ``val/psnr`` (ties: the later one), and run.json records the choice (``selected_iter``,
  ``val_history``). The evaluate stage scores the snapshots on a test set to show what
  picking on the test set would have added (never used to choose).
- ``run.json``: wall time, train time, images/s, iterations, parameter counts, device,
  world size, final validation metrics, the resumes.
- ``dvclive/``: ``train/*`` losses and learning rates every ``log_every`` iterations,
  ``val/psnr`` (Y channel) every ``val_every`` and ``val/ssim`` at the last one, and an image grid
  ``val/{step}.png`` (input | prediction | target) per validation.

Resume: a run whose directory holds ``checkpoints/last.pt`` continues from it (``resume=True``,
default). The data order is a pure function of ``(seed, epoch)``
(:class:`fsrlib.train.distributed.ShardedBatchSampler`), augmentation draws from a
generator seeded by ``(seed, iteration)``, and every RNG state is restored, so a run
killed with SIGKILL and restarted reaches bit-for-bit the weights of an uninterrupted run
on CPU (GPU: same up to non-deterministic kernels unless ``deterministic: true``). This
needs a dataset whose items are a deterministic function of the index (random
augmentation belongs in ``augment:``, which the trainer seeds). On resume the stored run
config must equal the new one except for the keys in ``RESUME_FREE`` (logging, validation,
checkpoint cadence, workers, compile) and ``iters`` (a run may be extended; a warning says
that an iters-dependent schedule follows the new length); a changed dataset size or batch
size is refused. Metric rows and validation images that the killed process logged after
its last checkpoint are dropped from ``dvclive/`` before logging resumes. Under DDP every
rank reads ``last.pt``, so ``runs_root`` must be a shared directory.

dvclive writes its files only (``metrics.json``, ``params.yaml``, ``plots/``); it never
opens the git/DVC repository (the pipeline's ``dvc.yaml`` declares those outputs).

Distributed: launch with ``torchrun --nproc_per_node N``; each rank runs the same code,
sees ``batch_size / N`` items per step (its share of the same global batch a single
process would see), DDP averages the gradients, rank 0 alone logs, validates and writes.
The run config's keys and defaults: :mod:`fsrlib.train.schema`; optimisers
:mod:`fsrlib.train.optim`; learning-rate schedules :mod:`fsrlib.train.schedules`; one step of
each recipe :mod:`fsrlib.train.recipes`.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import random
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Subset, default_collate
from tqdm.auto import tqdm

from ..inference import MODEL_FILE_FORMAT, PriorNet, input_key, load_run_model, resolve_model_file
from ..io import atomic_path, torch_save, write_json
from ..losses import batch_keys, build_losses
from ..metrics import image as image_metrics
from ..models.common import count_params
from ..registry import MODELS, ConfigError
from . import distributed as D
from .ema import ModelEMA
from .live import files_only_live, truncate_dvclive
from .optim import build_optimizer
from .precision import resolve_precision
from .recipes import RECIPES, MapsForward
from .schedules import lr_factor
from .schema import RESUME_FREE, validate_config

__all__ = ["Trainer", "train", "seed_everything", "rng_state", "set_rng_state"]


# ====================================================================== helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    s = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: Mapping) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and torch.cuda.is_available():
        with contextlib.suppress(Exception):
            torch.cuda.set_rng_state_all(s["cuda"])


def _flatten(d: Mapping, prefix="") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _tensor_leaves(o) -> list[torch.Tensor]:
    if isinstance(o, torch.Tensor):
        return [o]
    if isinstance(o, Mapping):
        return [t for v in o.values() for t in _tensor_leaves(v)]
    if isinstance(o, (list, tuple)):
        return [t for v in o for t in _tensor_leaves(v)]
    return []


def _to_device(batch: Mapping, device, channels_last: bool = False) -> dict:
    def move(v):
        v = v.to(device, non_blocking=True)
        return v.contiguous(memory_format=torch.channels_last) if channels_last and v.dim() == 4 else v
    return {k: (move(v) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _unwrap(m: nn.Module) -> nn.Module:
    m = getattr(m, "_orig_mod", m)  # torch.compile
    m = getattr(m, "module", m)     # DDP
    m = getattr(m, "_orig_mod", m)
    return m.model if isinstance(m, MapsForward) else m


def _resolve_image_metrics() -> tuple[Callable, Callable]:
    """(psnr, ssim) on the Y channel from :mod:`fsrlib.metrics.image`, per-image values.

    Uses ``psnr_y`` / ``ssim_y`` when present, else ``psnr`` / ``ssim`` with ``color="y"``
    (or ``y=True``), passing ``crop_border`` when the function takes it."""
    im = image_metrics
    if hasattr(im, "psnr_y") and hasattr(im, "ssim_y"):
        fns = (im.psnr_y, im.ssim_y)
    elif hasattr(im, "psnr") and hasattr(im, "ssim"):
        fns = (im.psnr, im.ssim)
    else:
        raise ImportError("fsrlib.metrics.image has neither psnr_y/ssim_y nor psnr/ssim")

    def wrap(fn):
        params = inspect.signature(fn).parameters
        extra = {"color": "y"} if "color" in params else ({"y": True} if "y" in params else {})

        def call(sr, hr, crop_border=0):
            kw = dict(extra)
            if "crop_border" in params:
                kw["crop_border"] = crop_border
            return torch.as_tensor(fn(sr, hr, **kw), dtype=torch.float64).flatten()
        return call

    return wrap(fns[0]), wrap(fns[1])


# ====================================================================== trainer
class Trainer:
    """See the module docstring. ``metrics``: optional ``{"psnr": fn, "ssim": fn}`` taking
    ``(sr, hr, crop_border=0)`` [0, 1] NCHW and returning per-image values (default: Y-channel
    functions of :mod:`fsrlib.metrics.image`). ``callbacks``: ``fn(trainer, iteration)``
    called after every iteration (rank 0 and others alike)."""

    def __init__(self, cfg: Mapping[str, Any], train_set, val_set=None, *, runs_root: str | os.PathLike = "runs",
                 device: str | None = None, progress: bool = True, resume: bool = True,
                 metrics: Mapping[str, Callable] | None = None, callbacks: Iterable[Callable] = ()):
        t0 = time.perf_counter()
        self.cfg = c = validate_config(cfg)
        self.dist = D.init_distributed(device)
        self.device = self.dist.device
        self.is_main = self.dist.is_main
        self.train_set, self.val_set = train_set, val_set
        self.runs_root = Path(runs_root)
        self.run_dir = self.runs_root / c["run"]
        self.progress, self.callbacks = progress, list(callbacks)
        self.iters, self.grad_clip = c["iters"], c["grad_clip"]
        if c["batch_size"] % self.dist.world_size:
            raise ConfigError(f"batch_size {c['batch_size']} is not divisible by {self.dist.world_size} ranks")
        self.local_batch = c["batch_size"] // self.dist.world_size
        if len(train_set) < c["batch_size"]:
            raise ValueError(f"training set has {len(train_set)} items, fewer than batch_size {c['batch_size']}")
        if c["deterministic"]:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        # --- build everything (same init on every rank) -----------------------------
        seed_everything(c["seed"])
        self.model = MODELS.build(c["model"]).to(self.device)
        self.input_key = input_key(self.model)
        needs_prior = bool(getattr(self.model, "needs_prior", False))  # may depend on the model's args
        if needs_prior and not (c["prior_from"] or c["prior_gt"]):
            raise ConfigError(f"model {c['model']['type']!r} needs a prior: set prior_from (recipe two_stage) "
                              "or prior_gt")
        if not needs_prior and (c["prior_from"] or c["prior_gt"]):
            raise ConfigError(f"model {c['model']['type']!r} takes no prior, but prior_from/prior_gt is set")
        self.init_info = None
        if c["init_from"]:
            g, blob = load_run_model(c["init_from"], self.runs_root, "cpu")
            res = self.model.load_state_dict(blob["state_dict"], strict=c["init_strict"])
            self.init_info = {"from": str(resolve_model_file(c["init_from"], self.runs_root)),
                              "missing": list(getattr(res, "missing_keys", [])),
                              "unexpected": list(getattr(res, "unexpected_keys", []))}
        self.prior_net, self.prior_blob = None, None
        if c["prior_from"]:
            pm, blob = load_run_model(c["prior_from"], self.runs_root, self.device)
            self.prior_net = PriorNet(pm, c["prior_key"])
            self.prior_blob = {"model": blob["model"], "state_dict": blob["state_dict"], "key": c["prior_key"],
                               "run": blob.get("run_config", {}).get("run"), "format": MODEL_FILE_FORMAT}
        self.losses = build_losses(c["losses"]).to(self.device)
        if not len(self.losses):
            raise ConfigError("every loss has weight 0")
        self.d_model = None
        self.d_losses = nn.ModuleList()
        if c["recipe"] == "gan":
            self.d_model = MODELS.build(c["d_model"]).to(self.device)
            self.d_losses = build_losses(c["d_losses"]).to(self.device)
        self.ema = ModelEMA(self.model, **c["ema"]).to(self.device) if c["ema"] else None
        self.opt_g = build_optimizer(c["optim"], self.model.parameters())
        self.opt_d = build_optimizer(c["d_optim"], self.d_model.parameters()) if self.d_model is not None else None
        if c["amp"] == "fp16" and self.device.type != "cuda":
            warnings.warn("amp fp16 needs CUDA; using bf16 autocast on this device")
        self.amp, self.channels_last = resolve_precision(c["amp"], c["channels_last"], self.device.type)
        fp16 = self.amp == "fp16"
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp) if self.amp else None
        if self.channels_last:
            for m in (self.model, self.d_model, self.ema.module if self.ema else None):
                if m is not None:
                    m.to(memory_format=torch.channels_last)
        self.step_fn = RECIPES[c["recipe"]]

        # --- up-front checks: data keys, model outputs, metrics -----------------------
        self._check_data()
        unused = self._check_outputs()
        self.metric_fns = None
        if val_set is not None and c["val"]["pred"] == "sr":
            self.metric_fns = (metrics["psnr"], metrics["ssim"]) if metrics else _resolve_image_metrics()

        # --- resume ------------------------------------------------------------------
        torch.manual_seed(D.mix_seed(c["seed"], 1, self.dist.rank))  # training-time RNG (dropout)
        self.start_iter = 0
        self.elapsed = {"wall_s": 0.0, "train_s": 0.0, "images": 0, "sessions": 0}
        self.resumes: list[int] = []
        self.last_val: dict[str, float] = {}
        self.val_history: dict[int, float] = {}   # iteration -> val/psnr (select: val)
        last = self.run_dir / "checkpoints" / "last.pt"
        if resume and last.exists():
            self._load_checkpoint(last)

        # --- wrappers: DDP, compile ----------------------------------------------------
        self.g_forward: Callable = MapsForward(self.model)
        self.d_forward: Callable | None = self.d_model
        if self.dist.enabled:
            find = c["ddp_find_unused"]
            find = bool(unused) if find == "auto" else bool(find)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_forward = DDP(self.g_forward, device_ids=ids, find_unused_parameters=find)
            if self.d_model is not None:
                self.d_forward = DDP(self.d_model, device_ids=ids)
        if c["compile"]:
            self.g_forward = torch.compile(self.g_forward)
            if self.d_forward is not None:
                self.d_forward = torch.compile(self.d_forward)
        self.setup_s = time.perf_counter() - t0

    # ------------------------------------------------------------------ checks
    def _needed_batch_keys(self) -> set[str]:
        keys = {self.input_key} | batch_keys([*self.losses, *self.d_losses])
        if self.prior_net is not None:
            keys.add(self.prior_net.input_key)
        if self.cfg["prior_gt"]:
            keys.add(self.cfg["prior_gt"])
        return keys

    def _check_data(self) -> None:
        item = self.train_set[0]
        missing = sorted(k for k in self._needed_batch_keys() if k not in item)
        if missing:
            raise KeyError(f"training items lack {missing} (they have {sorted(item)})")
        if self.val_set is not None:
            v = self.val_set[0]
            need = {self.input_key, self.cfg["val"]["target"]}
            if self.prior_net:
                need.add(self.prior_net.input_key)
            if self.cfg["prior_gt"]:
                need.add(self.cfg["prior_gt"])
            missing = sorted(k for k in need if k not in v)
            if missing:
                raise KeyError(f"validation items lack {missing} (they have {sorted(v)})")

    def get_prior(self, batch: Mapping) -> torch.Tensor | None:
        if self.prior_net is not None:
            return self.prior_net(batch)
        if self.cfg["prior_gt"]:
            return batch[self.cfg["prior_gt"]]
        return None

    def _check_outputs(self) -> list[str]:
        """One eval-mode forward on a training item: every loss's ``pred`` (and the val
        ``pred``) must be a model output. Returns the parameters that get no gradient
        (for DDP's ``find_unused_parameters``). Consumes no RNG in eval mode."""
        batch = _to_device(default_collate([self.train_set[0]]), self.device)
        self.model.eval()
        probe = self.dist.enabled and self.cfg["ddp_find_unused"] == "auto"
        with torch.set_grad_enabled(probe):
            out = self.model.forward_maps(batch[self.input_key], self.get_prior(batch))
        keys = {k for loss in [*self.losses, *self.d_losses] for k in loss.pred_keys()}
        if self.val_set is not None:
            keys.add(self.cfg["val"]["pred"])
        missing = sorted(k for k in keys if k not in out)
        if missing:
            raise KeyError(f"model {self.cfg['model']['type']!r} outputs {sorted(out)}, "
                           f"but the losses / val ask for {missing}")
        unused: list[str] = []
        if probe:
            leaves = [t for t in _tensor_leaves(out) if t.requires_grad]
            sum(t.float().mean() for t in leaves).backward()
            unused = [n for n, p in self.model.named_parameters() if p.requires_grad and p.grad is None]
            self.model.zero_grad(set_to_none=True)
        self.model.train()
        return unused

    # ------------------------------------------------------------------ pieces
    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _set_lr(self, it: int) -> dict[str, float]:
        lrs = {}
        for name, opt, sched, o in (("lr", self.opt_g, self.cfg["schedule"], self.cfg["optim"]),
                                    ("d_lr", self.opt_d, self.cfg["d_schedule"], self.cfg["d_optim"])):
            if opt is None:
                continue
            lr = lr_factor(sched, it, self.iters, float(o["lr"]))
            for g in opt.param_groups:
                g["lr"] = lr
            lrs[name] = lr
        return lrs

    def _augment(self, batch: dict, it: int) -> dict:
        a = self.cfg["augment"]
        if not a or not (a["hflip"] or a["rot90"]):
            return batch
        gb, w, r = self.cfg["batch_size"], self.dist.world_size, self.dist.rank
        g = D.generator(self.cfg["seed"], 0xA06, it)
        flip = (torch.rand(gb, generator=g) < 0.5)[r::w]
        rot = torch.randint(0, 4, (gb,), generator=g)[r::w]
        out = dict(batch)
        for k, t in batch.items():
            if not isinstance(t, torch.Tensor) or t.dim() < 3:
                continue
            if a["hflip"] and flip.any():
                f = t.flip(-1)
                swap = a["swap_channels"].get(k) if a["swap_channels"] else None
                if swap and t.dim() == 4:
                    perm = list(range(t.shape[1]))
                    for i, j in swap:
                        perm[i], perm[j] = perm[j], perm[i]
                    f = f[:, perm]
                m = flip.to(t.device).view(-1, *[1] * (t.dim() - 1))
                t = torch.where(m, f, t)
            if a["rot90"] and rot.any():
                t = torch.stack([torch.rot90(t[i], int(rot[i]), dims=(-2, -1)) for i in range(t.shape[0])])
            out[k] = t
        return out

    def _batches(self, start_iter: int):
        """Training batches from iteration ``start_iter`` on, one DataLoader per epoch.

        A dataset with ``set_epoch`` (``FaceSRDataset``: per-item augmentation seeded by
        ``(seed, epoch, index)``) is told the epoch before its loader starts, so workers see
        it and a resumed run draws the same augmentations."""
        c = self.cfg
        self.sampler = D.ShardedBatchSampler(len(self.train_set), c["batch_size"], c["seed"], self.dist.rank,
                                             self.dist.world_size, start_iter)
        return self._batch_gen(start_iter)

    def _batch_gen(self, it: int):
        c = self.cfg
        nw = c["num_workers"]
        while it < self.iters:
            epoch = self.sampler.position(it)[0]
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(epoch)
            sampler = D.ShardedBatchSampler(len(self.train_set), c["batch_size"], c["seed"], self.dist.rank,
                                            self.dist.world_size, it, epoch_end=True)
            loader = DataLoader(self.train_set, batch_sampler=sampler, num_workers=nw,
                                pin_memory=self.device.type == "cuda",
                                generator=D.generator(c["seed"], 0x10AD, it),
                                **({"prefetch_factor": 4} if nw else {}))
            for batch in loader:
                yield batch
                it += 1
                if it >= self.iters:
                    return

    # ------------------------------------------------------------------ checkpoints
    def _state(self, it: int) -> dict:
        epoch, b = self.sampler.position(it)
        return {
            "format": "fsrlib-ckpt/1", "iteration": it, "config": self.cfg,
            "model": self.model.state_dict(), "optim": self.opt_g.state_dict(),
            "scaler": self.scaler_g.state_dict(),
            "d_model": self.d_model.state_dict() if self.d_model is not None else None,
            "d_optim": self.opt_d.state_dict() if self.opt_d is not None else None,
            "d_scaler": self.scaler_d.state_dict() if self.d_model is not None else None,
            "ema": self.ema.state_dict() if self.ema else None,
            "data": {"seed": self.cfg["seed"], "epoch": epoch, "batch_in_epoch": b, "n": len(self.train_set),
                     "batch_size": self.cfg["batch_size"], "world_size": self.dist.world_size,
                     "batches_per_epoch": self.sampler.batches_per_epoch},
            "elapsed": dict(self.elapsed), "resumes": list(self.resumes), "last_val": dict(self.last_val),
            "val_history": dict(self.val_history),
        }

    def save_checkpoint(self, it: int) -> Path | None:
        rngs = D.all_gather_object(rng_state())  # every rank takes part
        path = None
        if self.is_main:
            state = self._state(it)
            state["rng"] = rngs
            keep = self.cfg["keep_ckpts"]
            last = self.run_dir / "checkpoints" / "last.pt"
            if keep == 0:
                path = torch_save(state, last)
            else:
                path = torch_save(state, self.run_dir / "checkpoints" / f"iter_{it:07d}.pt")
                with atomic_path(last) as tmp:
                    tmp.unlink()
                    try:
                        os.link(path, tmp)
                    except OSError:
                        shutil.copyfile(path, tmp)
                old = sorted((self.run_dir / "checkpoints").glob("iter_*.pt"))[:-keep]
                for p in old:
                    p.unlink(missing_ok=True)
        D.barrier()
        return path

    def _load_checkpoint(self, path: Path) -> None:
        s = torch.load(path, map_location="cpu", weights_only=False)
        old = {k: v for k, v in _flatten(s["config"]).items() if k.split(".")[0] not in RESUME_FREE}
        new = {k: v for k, v in _flatten(self.cfg).items() if k.split(".")[0] not in RESUME_FREE}
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k != "iters")
        if diff:
            raise ValueError(f"{path} was written with a different run config ({diff}); "
                             f"delete {self.run_dir} to start again or restore the config")
        if s["config"]["iters"] != self.cfg["iters"]:
            if s["iteration"] > self.cfg["iters"]:
                raise ValueError(f"{path} is at iteration {s['iteration']}, beyond iters={self.cfg['iters']}")
            warnings.warn(f"iters changed from {s['config']['iters']} to {self.cfg['iters']}: continuing to the new "
                          "length (a schedule with milestones/cosine now follows the new length)")
        d = s["data"]
        if d["n"] != len(self.train_set) or d["batch_size"] != self.cfg["batch_size"]:
            raise ValueError(f"{path}: the checkpoint's data (n={d['n']}, batch {d['batch_size']}) differs from "
                             f"this run's (n={len(self.train_set)}, batch {self.cfg['batch_size']})")
        self.model.load_state_dict(s["model"])
        self.opt_g.load_state_dict(s["optim"])
        self.scaler_g.load_state_dict(s["scaler"])
        if self.d_model is not None:
            self.d_model.load_state_dict(s["d_model"])
            self.opt_d.load_state_dict(s["d_optim"])
            self.scaler_d.load_state_dict(s["d_scaler"])
        if self.ema:
            self.ema.load_state_dict(s["ema"])
        rngs = s["rng"]
        if len(rngs) != self.dist.world_size:
            warnings.warn(f"checkpoint from {len(rngs)} ranks resumed on {self.dist.world_size}: "
                          "the data order stays exact, dropout/augmentation RNG streams do not")
        set_rng_state(rngs[min(self.dist.rank, len(rngs) - 1)])
        self.start_iter = int(s["iteration"])
        self.elapsed = dict(s["elapsed"])
        self.resumes = list(s.get("resumes", [])) + [self.start_iter]
        self.last_val = dict(s.get("last_val", {}))
        self.val_history = {int(k): float(v) for k, v in (s.get("val_history") or {}).items()}

    # ------------------------------------------------------------------ logging
    def _open_live(self):
        if not self.is_main:
            return None
        live_dir = self.run_dir / "dvclive"
        resumed = self.start_iter > 0
        if resumed:
            truncate_dvclive(live_dir, self.start_iter)
        live = files_only_live()(str(live_dir), resume=resumed, report=None, save_dvc_exp=False, dvcyaml=False)
        if not resumed:
            live.log_params({k: (str(v) if isinstance(v, (list, tuple)) else v)
                             for k, v in _flatten({k: v for k, v in self.cfg.items() if k != "notes"}).items()})
        return live

    def _log_train(self, live, acc: dict, n: int, it: int, lrs: dict, pbar) -> dict[str, float]:
        names = sorted(acc)
        vals = D.all_reduce_mean(torch.stack([acc[k] for k in names]).float() / n).tolist()
        logs = dict(zip(names, vals))
        if not math.isfinite(logs.get("loss", 0.0)):
            raise FloatingPointError(f"training loss is {logs['loss']} at iteration {it}: stopping")
        if live is not None:
            live.step = it
            for k, v in logs.items():
                live.log_metric(f"train/{k}", v)
            for k, v in lrs.items():
                live.log_metric(f"train/{k}", v)
        if pbar is not None:
            pbar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if "/" not in k}, refresh=False)
        return logs

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, it: int, live=None) -> dict[str, float]:
        """Rank 0 only: metrics over the validation set (EMA model when enabled)."""
        v = self.cfg["val"]
        net = self.ema.module if (self.ema and v["use_ema"]) else self.model
        was_training = net.training
        net.eval()
        ds = self.val_set
        if v["max_images"]:
            ds = Subset(ds, range(min(len(ds), int(v["max_images"]))))
        loader = DataLoader(ds, batch_size=v["batch_size"] or self.local_batch, shuffle=False,
                            num_workers=self.cfg["num_workers"])
        sums: dict[str, float] = {}
        n = 0
        grid_rows: list[list[torch.Tensor]] = []
        for batch in loader:
            batch = _to_device(batch, self.device, self.channels_last)
            with self.autocast():
                out = net.forward_maps(batch[self.input_key], self.get_prior(batch))
            pred = out[v["pred"]].float()
            tgt = batch[v["target"]].float()
            if v["pred"] == "sr":
                pred = pred.clamp(0, 1)
                vals = {"psnr": self.metric_fns[0](pred, tgt, crop_border=v["crop_border"])}
                if it >= self.iters:   # SSIM at the last validation only (selection reads PSNR; time)
                    vals["ssim"] = self.metric_fns[1](pred, tgt, crop_border=v["crop_border"])
            else:
                mse = (pred - tgt).pow(2).flatten(1).mean(1).double()
                vals = {"psnr": 10 * torch.log10(1.0 / mse.clamp_min(1e-12)),
                        "l1": (pred - tgt).abs().flatten(1).mean(1).double()}
            for k, t in vals.items():
                sums[k] = sums.get(k, 0.0) + float(t.sum())
            n += pred.shape[0]
            if len(grid_rows) < v["grid"]:
                for i in range(min(pred.shape[0], v["grid"] - len(grid_rows))):
                    grid_rows.append([batch[self.input_key][i], pred[i], tgt[i]])
        res = {k: s / max(n, 1) for k, s in sums.items()}
        if live is not None:
            live.step = it
            for k, val in res.items():
                live.log_metric(f"val/{k}", val)
            if grid_rows:
                live.log_image(f"val/{it}.png", _grid_image(grid_rows))
            live.make_summary()
        net.train(was_training)
        self.last_val = res
        if self.cfg["select"] == "val" and "psnr" in res:
            self.val_history[it] = float(res["psnr"])
            torch_save(self._model_blob(net, it), self.run_dir / "snapshots" / f"iter_{it:07d}.pt")
        return res

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict:
        c = self.cfg
        t_start = time.perf_counter()
        self.elapsed["sessions"] = self.elapsed.get("sessions", 0) + 1
        wall0 = float(self.elapsed["wall_s"])
        batches = self._batches(self.start_iter)
        live = self._open_live()
        pbar = None
        if self.is_main and self.progress:
            pbar = tqdm(total=self.iters, initial=self.start_iter, desc=c["run"], dynamic_ncols=True)
        it = self.start_iter
        acc: dict[str, torch.Tensor] = {}
        n_acc = 0
        session_train_s, session_images = 0.0, 0
        lrs: dict[str, float] = {}
        self.model.train()
        if self.d_model is not None:
            self.d_model.train()
        try:
            while it < self.iters:
                t0 = time.perf_counter()
                batch = self._augment(_to_device(next(batches), self.device, self.channels_last), it)
                lrs = self._set_lr(it)
                logs = self.step_fn(self, batch)
                if self.ema is not None:
                    self.ema.update(self.model)
                it += 1
                for k, t in logs.items():
                    acc[k] = acc[k] + t if k in acc else t.clone()
                n_acc += 1
                if it % c["log_every"] == 0 or it == self.iters:
                    self._log_train(live, acc, n_acc, it, lrs, pbar)
                    acc, n_acc = {}, 0
                session_train_s += time.perf_counter() - t0
                session_images += c["batch_size"]
                self.elapsed["train_s"] += time.perf_counter() - t0
                self.elapsed["images"] += c["batch_size"]
                if pbar is not None:
                    pbar.update(1)
                if self.val_set is not None and (it % c["val_every"] == 0 or it == self.iters):
                    if self.is_main:
                        self.validate(it, live)
                    D.barrier()
                if it % c["ckpt_every"] == 0 or it == self.iters:
                    self.elapsed["wall_s"] = wall0 + time.perf_counter() - t_start
                    self.save_checkpoint(it)
                for cb in self.callbacks:
                    cb(self, it)
        finally:
            if pbar is not None:
                pbar.close()
            batches.close()  # shuts the loader's workers down
        self.elapsed["wall_s"] = wall0 + time.perf_counter() - t_start
        summary = self._finish(it, session_train_s, session_images)
        if live is not None:
            live.step = it
            live.make_summary()
        return summary

    def _images_seen(self) -> dict:
        """Training images of this stage (``own``), of the runs it starts from (``parent``: the
        ``init_from`` / ``prior_from`` runs' own totals, from their run.json) and ``total``."""
        own = int(self.elapsed["images"])
        parent = 0
        for ref in (self.cfg["init_from"], self.cfg["prior_from"]):
            if not ref:
                continue
            f = resolve_model_file(ref, self.runs_root).parent / "run.json"
            if f.is_file():
                parent += int((json.loads(f.read_text()).get("images_seen") or {}).get("total") or 0)
        return {"own": own, "parent": parent, "total": own + parent}

    def _model_blob(self, net: nn.Module, it: int) -> dict:
        """The model file (``model.pt`` / a snapshot) of ``net``'s weights at iteration ``it``."""
        weights = "ema" if self.ema is not None and net is self.ema.module else "raw"
        return {"format": MODEL_FILE_FORMAT, "model": self.cfg["model"], "state_dict": net.state_dict(),
                "weights": weights, "run_config": self.cfg, "iteration": it, "params": count_params(self.model),
                "input_kind": getattr(self.model, "input_kind", "lr"), "prior": self.prior_blob}

    def _selection(self, it: int, final: nn.Module) -> tuple[dict, dict]:
        """``(model-file blob, run.json fields)`` of the weights ``model.pt`` holds (``select``)."""
        c = self.cfg
        if c["select"] == "val" and self.val_history:
            best = max(self.val_history, key=lambda k: (self.val_history[k], k))
            blob = torch.load(self.run_dir / "snapshots" / f"iter_{best:07d}.pt", map_location="cpu",
                              weights_only=False)
            n_val = c["val"]["max_images"] or (len(self.val_set) if self.val_set is not None else 0)
            text = (f"best val/psnr on the validation split ({n_val} faces) among the {len(self.val_history)} "
                    f"validations (every {c['val_every']} iterations): iteration {best}; test sets are never "
                    f"read in training")
            return blob, {"checkpoint_selection": text, "selected_iter": best,
                          "val_history": {str(k): round(v, 4) for k, v in sorted(self.val_history.items())}}
        text = ("last iteration (model.pt = the weights at the end of the schedule; no checkpoint is picked on "
                "any split; validation = train.val_set, monitored only; test sets are never read in training)")
        blob = self._model_blob(final, it)
        if self.is_main:   # snapshots/ holds at least the weights model.pt holds (a DVC output of every run)
            torch_save(blob, self.run_dir / "snapshots" / f"iter_{it:07d}.pt")
        return blob, {"checkpoint_selection": text, "selected_iter": it}

    def _finish(self, it: int, session_train_s: float, session_images: int) -> dict:
        c = self.cfg
        final = self.ema.module if self.ema is not None else self.model
        blob, selection = self._selection(it, final)
        summary = {
            "run": c["run"], "method": c["method"], "scale": c["scale"], "recipe": c["recipe"],
            "iterations": it, "batch_size": c["batch_size"], "world_size": self.dist.world_size,
            "wall_time_s": round(self.elapsed["wall_s"], 3), "train_time_s": round(self.elapsed["train_s"], 3),
            "images_per_s": round(self.elapsed["images"] / max(self.elapsed["train_s"], 1e-9), 3),
            "session_images_per_s": round(session_images / max(session_train_s, 1e-9), 3) if session_images else None,
            "setup_s": round(self.setup_s, 3),
            "params": {"model": count_params(self.model),
                       "discriminator": count_params(self.d_model) if self.d_model is not None else None},
            "params_M": round(count_params(self.model) / 1e6, 4),
            "weights": blob["weights"], "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "amp": self.amp or "fp32", "amp_config": c["amp"], "channels_last": self.channels_last,
            "compile": c["compile"], "sessions": self.elapsed.get("sessions", 1),
            "resumed_at": self.resumes, "init_from": self.init_info, "prior_from": c["prior_from"],
            "images_seen": self._images_seen(),
            **selection,
            "final_val": self.last_val, "torch": torch.__version__,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if self.is_main:
            torch_save(blob, self.run_dir / "model.pt")
            write_json(self.run_dir / "run.json", summary)
        D.barrier()
        return summary


# ====================================================================== utilities
def _grid_image(rows: list[list[torch.Tensor]]) -> np.ndarray:
    """Rows of (input, prediction, target) tiles -> HxWx3 uint8 (tiles resized to the
    largest, nearest; 1-channel maps shown grey; values clamped to [0, 1])."""
    size = max(max(t.shape[-2:]) for r in rows for t in r)
    tiles = []
    for r in rows:
        row = []
        for t in r:
            t = t.detach().float().cpu()
            t = t[None] if t.dim() == 2 else t
            t = t[:3] if t.shape[0] >= 3 else t[:1].expand(3, -1, -1)
            t = F.interpolate(t[None], size=(size, size), mode="nearest")[0]
            row.append(t.clamp(0, 1))
        tiles.append(torch.cat(row, dim=2))
    img = torch.cat(tiles, dim=1)
    return (img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def train(cfg: Mapping[str, Any], train_set, val_set=None, **kwargs) -> dict:
    """``Trainer(cfg, train_set, val_set, **kwargs).fit()``; returns the run.json summary."""
    return Trainer(cfg, train_set, val_set, **kwargs).fit()
