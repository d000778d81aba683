#!/usr/bin/env python
"""Model benchmark: parameters, MACs, latency, training-step time (and GPU memory) of every
model of the zoo, in its paper/official configuration and in the demo configuration of
``params.yaml`` (``methods:``), next to the papers' own claims and the official code's
parameter counts (``../shared/reference/facts.md``).

Writes ``<out>/models_<device>.md`` and ``<out>/models_<device>.csv`` (rewritten after every
row, so an interrupted run still leaves a valid, partial table). Needs torch only (PyYAML
to read ``--params``; without it the demo configurations recorded in the committed
``models_cpu.csv`` are used). No data, no dlib, no network.

    python benchmarks/models.py --device cpu                      # ~5 min on 2 cores
    python benchmarks/models.py --device cuda --gpu-budget-s 180  # < 4 min on one H100
    python benchmarks/models.py --models 'sparnet*,srcnn' --quick # a subset, few repetitions
    python benchmarks/models.py --dry-run                         # params / MACs only
    python benchmarks/models.py --list                            # the rows, nothing run

What each column means: ``benchmarks/README.md``.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import fnmatch
import gc
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fsrlib.config import run_key  # noqa: E402
from fsrlib.models import MODELS, count_macs, count_params  # noqa: E402
from fsrlib.settings import deep_merge  # noqa: E402

# ====================================================================== table layout
COLUMNS = [
    "model", "config", "method", "scale", "input",
    "params", "params (M)", "MACs (G)",
    "latency (ms)", "latency min (ms)", "latency n",
    "train step (ms)", "train batch", "train n",
    "peak mem infer (MiB)", "peak mem train (MiB)",
    "paper params (M)", "paper MACs (G)", "paper time (ms)", "paper hardware",
    "Δparams vs paper (%)", "ΔMACs vs paper (%)",
    "official params (M)", "Δparams vs official (%)",
    "host load", "notes",
]
CSV_EXTRA = ["cfg"]                     # the exact model config (JSON), CSV only
MD_HIDDEN = {"params"}                  # the exact count is in the CSV
HR = 128                                # the face size every number refers to
TRAIN_BATCH = 8

K40 = "Tesla K40 (paper trains on it; timing GPU unstated)"
RTX3090 = "RTX 3090 (AMINet Table X)"

# ====================================================================== rows


@dataclass
class Row:
    model: str                          # display name (registered name + variant)
    cfg: dict                           # {type: ..., **kwargs}
    config: str                         # "paper" | "demo"
    scale: int | None = 8               # None: a discriminator (built without scale)
    kind: str = "g"                     # "g": FSR model, "d": discriminator (params/MACs only)
    d_size: int = HR                    # discriminator input size
    method: str = ""                    # params.yaml method / run key (demo rows)
    cpu_timing: bool = True             # False: params/MACs only on CPU
    cpu_reason: str = ""
    claims: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    scale_label: str = ""               # e.g. "8 (same at x4)"

    @property
    def id(self) -> str:
        s = f"x{self.scale}" if self.scale else f"{self.d_size}px"
        return f"{self.model}|{self.config}|{self.method or '-'}|{s}"

    def match_names(self) -> list[str]:
        return [self.model, self.cfg.get("type", ""), self.method, self.id]


def _claims(paper_params=None, paper_macs=None, paper_ms=None, hw="", official=None):
    return {"paper_params": paper_params, "paper_macs": paper_macs, "paper_ms": paper_ms, "hw": hw,
            "official": official}


SPARNET_TABLE_X = ("AMINet Table X lists SPARNet at 16.6 M / 7.1 G MACs / 40 ms (RTX 3090), "
                   "inconsistent with SPARNet's own 9.86 M")


def paper_rows() -> list[Row]:
    """The papers' / official code's configurations (one per registered preset of interest)."""
    rows = [
        Row("sparnet", {"type": "sparnet"}, "paper",
            claims=_claims(9.86, None, 51.0, K40, 10_518_867),
            notes=["paper config (PReLU, 2D attention, SPARNet-V16-S4)",
                   "official count = released code (LeakyReLU): see the next row",
                   "paper time: 0.051 s/image (Table III); MACs only plotted (Fig. 10)", SPARNET_TABLE_X]),
        Row("sparnet (act=leakyrelu)", {"type": "sparnet", "act": "leakyrelu"}, "paper",
            claims=_claims(9.86, None, 51.0, K40, 10_518_867), cpu_timing=False,
            cpu_reason="released-code variant of the sparnet row (same compute)",
            notes=["released code's activation; README: 10.52 M"]),
        Row("sparnet (att_type=spar3d, act=leakyrelu)", {"type": "sparnet", "att_type": "spar3d", "act": "leakyrelu"},
            "paper", claims=_claims(official=11.56e6), cpu_timing=False,
            cpu_reason="released 3D-attention variant", notes=["released code only"]),
        Row("sparnet_light", {"type": "sparnet_light"}, "paper",
            claims=_claims(official=5_242_211),
            notes=["preset (PReLU); official count = released LeakyReLU config (README: 5.24 M)"]),
        Row("sparnet_baseline", {"type": "sparnet_baseline"}, "paper",
            notes=["SPARNet Table I baseline (no attention)"]),
        Row("sparnethd", {"type": "sparnethd"}, "paper",
            claims=_claims(official=85.79e6), cpu_timing=False,
            cpu_reason="SPARNetHD at 512 px is GPU-only here",
            notes=["512x512 in/out: latency is per 512x512 face",
                   "official count = released LeakyReLU config (ours: PReLU default)"]),
        Row("parsingnet", {"type": "parsingnet"}, "paper", claims=_claims(official=594_371),
            notes=["outputs the LR parsing map (no SR)"]),
    ]
    fish_off = {4: 4_948_419, 8: 8_423_683, 16: 20.30e6}
    for s in (4, 8, 16):
        n = ["paper-faithful (code_parity=False); the official count is the released file "
             "(like-for-like: the code_parity row)",
             "latency/train exclude ParsingNet (see its row); prior given"]
        if s == 8:
            n.append("official x8 holds 0.246 M never used by its forward")
        if s == 16:
            n.append("released x16 file does not run (spec 001 §2.6: oversized Upsamplers/tail); "
                     "ours generalises x8")
        rows.append(Row("fishfsrnet", {"type": "fishfsrnet"}, "paper", scale=s,
                        claims=_claims(official=fish_off[s]), notes=n))
    for s in (4, 8, 16):
        rows.append(Row("fishfsrnet (code_parity)", {"type": "fishfsrnet", "code_parity": True}, "paper", scale=s,
                        claims=_claims(official=fish_off[s]), cpu_timing=False,
                        cpu_reason="released-code variant of the fishfsrnet row",
                        notes=["released files' quirks reproduced"]))
    rows += [
        Row("wnet", {"type": "wnet"}, "paper", cpu_timing=False,
            cpu_reason="full W-Net runs its W-stage at 1024x1024 (GPU only)",
            notes=["spec estimate (not a paper claim): ~7.0 M / ~514 G MACs; the paper reports none"]),
        Row("aminet", {"type": "aminet"}, "paper", claims=_claims(12.62, 15.6, 35.0, RTX3090),
            notes=["C=20 [U] reading of the spec; no official code"]),
        Row("aminet_s", {"type": "aminet_s"}, "paper", claims=_claims(8.2, 9.4, 25.0, RTX3090),
            notes=["C=16 [U]"]),
        Row("pgnet", {"type": "pgnet"}, "paper", notes=["thesis method 1; the thesis reports no counts"]),
        Row("srcnn", {"type": "srcnn"}, "paper", notes=["9-5-5, 64/32, RGB"]),
        Row("vdsr", {"type": "vdsr"}, "paper", notes=["20 x 64, RGB"]),
        Row("edsr", {"type": "edsr"}, "paper", notes=["EDSR baseline, 16 x 64"]),
        Row("srresnet", {"type": "srresnet"}, "paper", notes=["16 x 64"]),
        Row("patchgan_ms", {"type": "patchgan_ms"}, "paper", scale=None, kind="d", d_size=512,
            notes=["SPARNetHD D: 3 PatchGANs at 512 px; spec 002 (from code): 3.92 M per D, 11.75 M"]),
        Row("patchgan", {"type": "patchgan"}, "paper", scale=None, kind="d",
            notes=["AMIGAN D (single PatchGAN)"]),
        Row("srgan_d", {"type": "srgan_d"}, "paper", scale=None, kind="d",
            notes=["SRGAN / thesis D; spec 004 estimate ~38.2 M"]),
    ]
    return rows


# ---------------------------------------------------------------------- demo rows (params.yaml)
def _load_yaml(path: Path) -> dict:
    import yaml  # noqa: PLC0415  (optional: only to read params.yaml)

    with open(path) as f:
        return yaml.safe_load(f) or {}


def _demo_from_csv(path: Path) -> list[Row]:
    """Fallback without PyYAML: the demo rows recorded in a previous table's CSV."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r.get("config") != "demo" or not r.get("cfg"):
                continue
            cfg = json.loads(r["cfg"])
            kind = "d" if r["scale"] in ("", "-") else "g"
            scale = int(str(r["scale"]).split()[0]) if kind == "g" else None
            d_size = int(r["input"].split("x")[1]) if kind == "d" else HR
            rows.append(Row(r["model"], cfg, "demo", scale=scale, kind=kind, d_size=d_size, method=r["method"],
                            notes=[f"config read from {path.name} (PyYAML missing)"]))
    return rows


def _meta_signature(cfg: dict, scale: int):
    """(params, input size) of a config at a scale, on the meta device (cheap)."""
    with torch.device("meta"):
        m = MODELS.build(cfg, scale=scale)
    return count_params(m), m.expected_input_size()


def demo_rows(params_path: Path | None, fallback_csv: Path | None) -> tuple[list[Row], list[str]]:
    """One row per ``methods.<m>.model`` (and ``d_model``) of params.yaml, at the scales its
    runs use; plus one per run whose ``overrides`` change the model (e.g. aminet_s-x8)."""
    msgs: list[str] = []
    if params_path is None or not params_path.exists():
        msgs.append(f"params file {params_path} not found: no demo rows")
        return [], msgs
    try:
        params = _load_yaml(params_path)
    except ImportError:
        if fallback_csv is not None and fallback_csv.exists():
            msgs.append(f"PyYAML missing: demo configs taken from {fallback_csv}")
            return _demo_from_csv(fallback_csv), msgs
        msgs.append("PyYAML missing and no fallback CSV: no demo rows")
        return [], msgs
    methods = params.get("methods") or {}
    runs = {**(params.get("runs") or {}), **(params.get("chained") or {})}
    rows: list[Row] = []
    for name, m in methods.items():
        if not isinstance(m, dict) or "model" not in m:
            continue
        cfg = dict(m["model"])
        plain = sorted({int(r["scale"]) for r in runs.values()
                        if r.get("method") == name and not (r.get("overrides") or {}).get("model")})
        scales = plain or sorted({int(r["scale"]) for r in runs.values() if r.get("method") == name}) or [8]
        note = f"params.yaml methods.{name}.model"
        try:
            groups: dict = {}
            for s in scales:
                groups.setdefault(_meta_signature(cfg, s), []).append(s)
            for sig, ss in groups.items():
                s = 8 if 8 in ss else ss[0]
                others = [x for x in ss if x != s]
                rows.append(Row(cfg.get("type", "?"), cfg, "demo", scale=s, method=name, notes=[note],
                                scale_label=f"{s} (same at {', '.join(f'x{o}' for o in others)})" if others else ""))
        except Exception as e:  # noqa: BLE001  (a half-edited params.yaml must not stop the run)
            rows.append(Row(cfg.get("type", "?"), cfg, "demo", scale=scales[0], method=name,
                            notes=[note, f"config error: {type(e).__name__}: {e}"]))
        if isinstance(m.get("d_model"), dict):
            d = dict(m["d_model"])
            rows.append(Row(d.get("type", "?"), d, "demo", scale=None, kind="d", method=name,
                            notes=[f"params.yaml methods.{name}.d_model"]))
    for rname, r in runs.items():
        over = ((r.get("overrides") or {}).get("model"))
        base = methods.get(r.get("method"), {})
        if not over or "model" not in base:
            continue
        cfg = deep_merge(base["model"], over)
        rows.append(Row(cfg.get("type", "?"), cfg, "demo", scale=int(r["scale"]), method=run_key(rname),
                        notes=[f"params.yaml run {rname}: methods.{r['method']}.model + overrides {json.dumps(over)}"]))
    return _merge_duplicates(rows), msgs


def _merge_duplicates(rows: list[Row]) -> list[Row]:
    """Methods sharing one model config (srresnet / srgan's G, ...) give one row."""
    out: dict = {}
    for r in rows:
        key = (json.dumps(r.cfg, sort_keys=True), r.scale, r.kind, r.d_size)
        if key in out:
            first = out[key]
            first.method = f"{first.method}, {r.method}"
            first.notes = first.notes + [n for n in r.notes if n not in first.notes]
        else:
            out[key] = r
    return list(out.values())


# ====================================================================== device helpers
class DeviceOps:
    """What differs between CPU and CUDA timing. ``tensor_device`` may differ from ``kind``
    only in tests (the CUDA branch exercised on CPU tensors with torch.cuda stubbed)."""

    def __init__(self, kind: str, tensor_device: torch.device | None = None):
        self.kind = kind
        self.device = tensor_device or torch.device(kind)

    @property
    def cuda(self) -> bool:
        return self.kind == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def reset_peak(self):
        if self.cuda:
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_mib(self) -> float | None:
        return torch.cuda.max_memory_allocated() / 2 ** 20 if self.cuda else None

    def free(self):
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    @staticmethod
    def is_oom(e: BaseException) -> bool:
        oom = getattr(torch.cuda, "OutOfMemoryError", None)
        msg = str(e).lower()
        return ((oom is not None and isinstance(e, oom)) or "out of memory" in msg
                or "alloc_failed" in msg)


@dataclass
class Settings:
    warmup: int
    reps: int
    min_reps: int
    budget_s: float                     # per latency measurement
    train_warmup: int
    train_reps: int
    train_min_reps: int
    train_budget_s: float               # per training-step measurement
    cpu_max_forward_s: float = 5.0      # CPU: skip latency when one forward is slower
    cpu_max_gmac: float = 150.0         # CPU: do not even try above this
    cpu_train_max_s: float = 6.0        # CPU, paper configs: skip the step above this estimate


def settings_for(device: str, quick: bool) -> Settings:
    if quick:
        return Settings(1, 3, 2, 0.5, 1, 2, 1, 0.5)
    if device == "cuda":
        return Settings(5, 30, 5, 0.5, 2, 10, 3, 0.75)
    return Settings(2, 15, 3, 3.0, 1, 5, 2, 4.0)


def time_reps(fn: Callable[[], Any], ops: DeviceOps, warmup: int, reps: int, min_reps: int, budget_s: float,
              deadline: float, first_cap_s: float | None = None, retry_first: bool = True
              ) -> tuple[list[float], float]:
    """Run ``fn`` ``warmup`` times then up to ``reps`` timed times (at least ``min_reps``; more
    while within ``budget_s`` and the global ``deadline``). Returns (seconds per rep, first
    call's seconds). ``first_cap_s``: stop after the first call when it exceeds this (after a
    second try when ``retry_first``)."""

    def once() -> float:
        ops.sync()
        t = time.perf_counter()
        fn()
        ops.sync()
        return time.perf_counter() - t

    first = once()
    if first_cap_s is not None and first > first_cap_s:
        if retry_first:
            first = min(first, once())  # the first call pays one-off set-up costs: try once more
        if first > first_cap_s:
            return [], first
        warmup -= 1
    for _ in range(max(0, warmup - 1)):
        once()
    times: list[float] = []
    t0 = time.perf_counter()
    while len(times) < reps:
        if len(times) >= min_reps and (time.perf_counter() - t0 > budget_s or time.perf_counter() > deadline):
            break
        times.append(once())
    return times, first


# ====================================================================== measurements
def build(row: Row, device: torch.device | str):
    torch.manual_seed(0)
    with torch.device(device):
        if row.kind == "d":
            return MODELS.build(row.cfg)
        return MODELS.build(row.cfg, scale=row.scale)


def make_inputs(model, row: Row, batch: int, device) -> tuple[tuple, str]:
    """Random inputs in [0, 1] of the model's input convention, and their description."""
    meta = str(device) == "meta"
    mk = (lambda *s: torch.empty(*s, device="meta")) if meta else (lambda *s: torch.rand(*s, device=device))
    if row.kind == "d":
        return (mk(batch, 3, row.d_size, row.d_size),), f"3x{row.d_size}x{row.d_size} image"
    size = model.expected_input_size()
    desc = f"3x{size}x{size} " + ("upsampled" if model.input_kind == "upsampled" else "raw LR")
    x = mk(batch, 3, size, size)
    if getattr(model, "needs_prior", False):
        cp = getattr(model, "parsing_channels", 1)
        return (x, mk(batch, cp, size, size)), desc + f" + {cp}x{size}x{size} prior"
    return (x,), desc


def _first_tensor(out):
    while isinstance(out, (list, tuple)):
        out = out[-1]
    return out


def measure_latency(model, inputs, ops: DeviceOps, st: Settings, deadline: float) -> dict:
    model.eval()
    ops.reset_peak()

    def fwd():
        with torch.no_grad():
            model(*inputs)

    cap = st.cpu_max_forward_s if not ops.cuda else None
    times, first = time_reps(fwd, ops, st.warmup, st.reps, st.min_reps, st.budget_s, deadline, cap)
    res = {"first_s": first, "peak": ops.peak_mib()}
    if times:
        res["ms"] = statistics.median(times) * 1e3
        res["min_ms"] = min(times) * 1e3
        res["n"] = len(times)
    return res


def _time_train(model, row: Row, ops: DeviceOps, st: Settings, deadline: float, batch: int):
    ops.reset_peak()
    inputs, _ = make_inputs(model, row, batch, ops.device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    try:
        with torch.no_grad():
            target = torch.rand_like(_first_tensor(model(*inputs)))

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.l1_loss(_first_tensor(model(*inputs)), target)
            loss.backward()
            opt.step()

        cap = None if ops.cuda else st.cpu_train_max_s
        times, first = time_reps(step, ops, st.train_warmup, st.train_reps, st.train_min_reps, st.train_budget_s,
                                 deadline, first_cap_s=cap, retry_first=False)
        note = []
        if not times:  # slow on CPU: the first (warm-up) step is the only measurement
            times, note = [first], [f"train: 1 step only (first step {first:.1f} s > {cap:g} s cap)"]
        return times, ops.peak_mib(), note
    finally:
        model.zero_grad(set_to_none=True)


def measure_train(model, row: Row, ops: DeviceOps, st: Settings, deadline: float, batch: int) -> dict:
    """forward + L1 loss + backward + Adam step at ``batch``; on CUDA halves the batch on OOM.
    The optimizer state, inputs and graph live in :func:`_time_train`'s frame, so they are
    released before the retry."""
    model.train()
    notes = []
    while True:
        try:
            times, peak, note = _time_train(model, row, ops, st, deadline, batch)
            return {"ms": statistics.median(times) * 1e3, "n": len(times), "batch": batch, "peak": peak,
                    "notes": notes + note}
        except RuntimeError as e:
            if not (ops.cuda and ops.is_oom(e)) or batch == 1:
                raise
            notes.append(f"train OOM at batch {batch}")
            batch //= 2
        ops.free()


# ====================================================================== one row
def _pct(ours: float | None, ref: float | None) -> float | None:
    if ours is None or not ref:
        return None
    return 100.0 * (ours - ref) / ref


def run_row(row: Row, ops: DeviceOps, st: Settings, deadline: float, timing: bool) -> dict:
    rec: dict[str, Any] = {c: None for c in COLUMNS}
    notes = list(row.notes)
    rec.update(model=row.model, config=row.config, method=row.method or "",
               scale=row.scale_label or (row.scale if row.scale else "-"),
               cfg=json.dumps(row.cfg, sort_keys=True))
    c = row.claims
    rec.update({"paper params (M)": c.get("paper_params"), "paper MACs (G)": c.get("paper_macs"),
                "paper time (ms)": c.get("paper_ms"), "paper hardware": c.get("hw") or "",
                "official params (M)": (c["official"] / 1e6) if c.get("official") else None})
    # ---- params and MACs on the meta device (no memory, no compute)
    macs = None
    try:
        meta = build(row, "meta")
        n = count_params(meta)
        rec["params"], rec["params (M)"] = n, n / 1e6
        inputs, rec["input"] = make_inputs(meta, row, 1, "meta")
        try:
            macs = count_macs(meta.eval(), *inputs)
            rec["MACs (G)"] = macs / 1e9
        except Exception as e:  # noqa: BLE001
            notes.append(f"MACs on meta failed ({type(e).__name__})")
        del meta
    except Exception as e:  # noqa: BLE001
        notes.append(f"build failed: {type(e).__name__}: {e}")
        rec["notes"] = "; ".join(notes)
        return rec
    rec["Δparams vs paper (%)"] = _pct(rec["params (M)"], c.get("paper_params"))
    rec["ΔMACs vs paper (%)"] = _pct(rec["MACs (G)"], c.get("paper_macs"))
    rec["Δparams vs official (%)"] = _pct(rec["params"], c.get("official"))

    # ---- timing
    why = None
    if row.kind == "d":
        why = "discriminator: params/MACs only"
    elif not timing:
        why = "dry run: no timing"
    elif not ops.cuda and not row.cpu_timing:
        why = f"not run on CPU ({row.cpu_reason}; {rec['MACs (G)'] or 0:.1f} GMAC/forward)"
    elif not ops.cuda and macs is not None and macs / 1e9 > st.cpu_max_gmac:
        why = f"not run on CPU ({macs / 1e9:.0f} GMAC/forward)"
    elif time.perf_counter() > deadline:
        why = "timing skipped: budget (--gpu-budget-s / --cpu-budget-s) reached"
    if why:
        notes.append(why)
        rec["notes"] = "; ".join(notes)
        return rec

    model = None
    try:
        model = build(row, ops.device)
        inputs, _ = make_inputs(model, row, 1, ops.device)
        lat = measure_latency(model, inputs, ops, st, deadline)
        if "ms" not in lat:
            notes.append(f"skipped on CPU ({lat['first_s']:.1f} s/forward)")
        else:
            rec["latency (ms)"], rec["latency min (ms)"], rec["latency n"] = lat["ms"], lat["min_ms"], lat["n"]
            rec["peak mem infer (MiB)"] = lat["peak"]
        del inputs
        # ---- training step
        est = lat.get("min_ms", lat["first_s"] * 1e3) / 1e3 * 3 * TRAIN_BATCH
        if count_params(model) == 0:
            notes.append("train: no parameters")
        elif "ms" not in lat:
            notes.append("train: skipped (forward too slow on CPU)")
        elif not ops.cuda and row.config == "paper" and est > st.cpu_train_max_s:
            notes.append(f"train: skipped on CPU (est. ~{est:.0f} s/step = 3 x {TRAIN_BATCH} x forward)")
        elif time.perf_counter() > deadline:
            notes.append("train: skipped: budget reached")
        else:
            tr = measure_train(model, row, ops, st, deadline, TRAIN_BATCH)
            rec["train step (ms)"], rec["train n"], rec["train batch"] = tr["ms"], tr["n"], tr["batch"]
            rec["peak mem train (MiB)"] = tr["peak"]
            notes += tr["notes"]
    except Exception as e:  # noqa: BLE001
        if ops.is_oom(e):
            notes.append("OOM")
        else:
            notes.append(f"timing failed: {type(e).__name__}: {str(e)[:200]}")
    finally:
        del model
        ops.free()
    rec["notes"] = "; ".join(notes)
    return rec


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


# ====================================================================== header and writers
def _sh(cmd: str) -> str:
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=5, cwd=REPO).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def machine_info(ops: DeviceOps, threads: int) -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine()
    info = {
        "date (UTC)": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "host CPU": f"{cpu} ({os.cpu_count()} logical cores visible)",
        "torch": f"{torch.__version__} (python {platform.python_version()}, {platform.system()})",
        "torch threads": str(threads),
        "git commit": _sh("git rev-parse --short HEAD") or "?",
    }
    try:
        info["load average at start"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        pass
    if ops.cuda and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["GPU"] = f"{torch.cuda.get_device_name(0)} ({p.total_memory / 2 ** 30:.0f} GiB)"
        info["CUDA / cuDNN"] = f"{torch.version.cuda} / {torch.backends.cudnn.version()}"
        info["precision"] = (f"fp32; TF32 conv {torch.backends.cudnn.allow_tf32}, TF32 matmul "
                             f"{torch.backends.cuda.matmul.allow_tf32}; cudnn.benchmark "
                             f"{torch.backends.cudnn.benchmark} (the trainer turns it on: --cudnn-benchmark)")
    else:
        info["precision"] = "fp32"
    return info


def _fmt(v, col: str) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if col.startswith("Δ"):
            return f"{v:+.2f}"
        if col in ("params (M)", "official params (M)", "paper params (M)"):
            return f"{v:.3f}" if abs(v) >= 1 else f"{v:.4f}"
        if col in ("MACs (G)", "paper MACs (G)"):
            return f"{v:.2f}" if abs(v) >= 10 else f"{v:.3f}"
        if "ms" in col:
            return f"{v:.1f}" if v >= 10 else f"{v:.2f}"
        if "MiB" in col:
            return f"{v:.0f}"
        if col == "host load":
            return f"{v:.2f}"
        return f"{v:.4g}"
    return str(v)


def write_tables(recs: list[dict], out: Path, device: str, header: dict, status: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"models_{device}.csv", out / f"models_{device}.md"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS + CSV_EXTRA)
        w.writeheader()
        for r in recs:
            w.writerow({k: _fmt(r.get(k), k) if k not in ("params",) else r.get(k) for k in COLUMNS + CSV_EXTRA})
    cols = [c for c in COLUMNS if c not in MD_HIDDEN]
    if device == "cpu":
        cols = [c for c in cols if "peak mem" not in c]
    lines = [f"# Model benchmark ({device})", "", f"Status: **{status}**. Written by `benchmarks/models.py`; "
             "columns are explained in `benchmarks/README.md`.", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    lines += ["", "| # | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for i, r in enumerate(recs, 1):
        cells = [_fmt(r.get(c), c).replace("|", "/") for c in cols]
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    lines += ["", "## Configurations", ""]
    lines += [f"{i}. `{r['model']}` ({r['config']}, scale {r['scale']}, {r['input']}): `{r['cfg']}`"
              for i, r in enumerate(recs, 1)]
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md_path, csv_path


# ====================================================================== main
def select(rows: list[Row], patterns: str | None) -> list[Row]:
    if not patterns:
        return rows
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [r for r in rows if any(fnmatch.fnmatchcase(n, p) for n in r.match_names() for p in pats)]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--out", default="reports/benchmarks", help="output folder (models_<device>.md/.csv)")
    ap.add_argument("--params", default="params.yaml", help="params file whose methods: give the demo rows")
    ap.add_argument("--models", default=None,
                    help="comma-separated fnmatch patterns on model name / registered type / method / row id")
    ap.add_argument("--config", choices=("all", "paper", "demo"), default="all", help="which configurations")
    ap.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    ap.add_argument("--dry-run", action="store_true", help="params and MACs only, no timing (any machine)")
    ap.add_argument("--list", action="store_true", help="print the rows and exit")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--gpu-budget-s", type=float, default=200.0,
                    help="CUDA: stop timing new rows after this many seconds (params/MACs still written)")
    ap.add_argument("--cpu-budget-s", type=float, default=540.0, help="the same on CPU")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="CUDA: cudnn.benchmark=True as the trainer (autotunes every new conv shape: "
                         "~3-5 s more per model, so a full run needs a larger --gpu-budget-s)")
    return ap.parse_args(argv)


def portable_arg(a: str) -> str:
    """A command-line argument as committed files show it: a path inside the repository relative
    to it, any other absolute path by its last component under ``$OUT`` (no machine paths)."""
    if not a.startswith("/"):
        return a
    p = Path(a).resolve()
    try:
        return p.relative_to(REPO.resolve()).as_posix()
    except ValueError:
        return f"$OUT/{p.name}"


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    if args.device == "cuda" and not args.dry_run and not torch.cuda.is_available():
        sys.exit("--device cuda: CUDA is not available (use --dry-run to check the rows on this machine)")
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    ops = DeviceOps(args.device) if (args.device == "cpu" or torch.cuda.is_available()) else DeviceOps("cpu")
    st = settings_for(args.device, args.quick)
    budget = args.gpu_budget_s if args.device == "cuda" else args.cpu_budget_s
    deadline = t_start + budget

    params_path = Path(args.params)
    if not params_path.is_absolute() and not params_path.exists() and (REPO / params_path).exists():
        params_path = REPO / params_path
    rows = paper_rows() if args.config in ("all", "paper") else []
    msgs: list[str] = []
    if args.config in ("all", "demo"):
        d, msgs = demo_rows(params_path, REPO / "reports" / "benchmarks" / "models_cpu.csv")
        rows += d
    rows = select(rows, args.models)
    if args.list:
        for r in rows:
            print(r.id, json.dumps(r.cfg))
        return []
    for m in msgs:
        print("note:", m, file=sys.stderr)

    header = machine_info(ops, args.threads)
    header["command"] = "`python benchmarks/models.py " + " ".join(
        portable_arg(shlex.quote(a)) for a in (argv if argv is not None else sys.argv[1:])) + "`"
    header["params file"] = f"{params_path}" + (f" ({'; '.join(msgs)})" if msgs else "")
    header["repetitions"] = (f"latency: median of up to {st.reps} after {st.warmup} warm-up (>= {st.min_reps}, "
                             f"~{st.budget_s:g} s cap); train step: median of up to {st.train_reps} after "
                             f"{st.train_warmup} warm-up (>= {st.train_min_reps}, ~{st.train_budget_s:g} s cap)")
    header["budget"] = f"{budget:g} s for timing"
    out = Path(args.out)
    recs: list[dict] = []
    status = "incomplete (running or interrupted)"
    for i, row in enumerate(rows, 1):
        t = time.perf_counter()
        rec = run_row(row, ops, st, deadline, timing=not args.dry_run)
        rec["host load"] = _load()
        recs.append(rec)
        print(f"[{i}/{len(rows)}] {row.id}: {_fmt(rec['params (M)'], 'params (M)')} M, "
              f"{_fmt(rec['MACs (G)'], 'MACs (G)')} GMAC, lat {_fmt(rec['latency (ms)'], 'latency (ms)')} ms, "
              f"train {_fmt(rec['train step (ms)'], 'train step (ms)')} ms ({time.perf_counter() - t:.1f} s) "
              f"{rec['notes']}", flush=True)
        header["runtime"] = f"{time.perf_counter() - t_start:.0f} s so far"
        write_tables(recs, out, args.device, header, status)
    over = time.perf_counter() > deadline
    status = "complete" + (" (budget reached: some timings skipped, see notes)" if over else "")
    header["runtime"] = f"{time.perf_counter() - t_start:.0f} s (whole script)"
    try:
        header["load average at end"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        pass
    md, csv_path = write_tables(recs, out, args.device, header, status)
    print(f"wrote {md} and {csv_path} in {time.perf_counter() - t_start:.0f} s")
    return recs


if __name__ == "__main__":
    main()
