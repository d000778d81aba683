"""Paper-vs-ours tables.

Three pieces:

1. :func:`load_results` reads ``results/{run}/{testset}/metrics.json`` and ``downstream.json``
   (and ``runs/{run}/run.json``) into one long DataFrame: one row per
   (run, testset, metric), with the reason when a metric is missing and the protocol
   fields that the captions quote.
2. :data:`TABLES`: one declarative :class:`TableSpec` per results table of the five papers
   (main tables and ablations). A spec names the rows (methods as printed in
   ``paper_results.csv``), the columns (paper dataset x scale x metric) and how our runs map
   onto them (method key -> run ``{key}-x{scale}``; paper dataset -> our test set).
3. :func:`build_table` puts the paper value beside ours in every cell
   (``"paper / ours"``); a cell without a number says why. :func:`write_table` writes
   ``reports/tables/{name}.md`` and ``.csv``; :func:`build_all` writes every table and an index.

Run names are ``{method_key}-x{scale}`` (e.g. ``sparnet-x8``, ``wnet_expA-x4``), optionally
followed by a tag (``sparnet-x8-seed2``); the untagged run is preferred.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from ..io import write_csv, write_text

PAPER_CSV = Path(__file__).with_name("paper_results.csv")
PAPER_KEY = ["paper", "table", "block", "method", "dataset", "scale", "metric"]

# ---------------------------------------------------------------------------------------------
# vocabulary
PAPERS = {
    "wnet": "W-Net (facial feature-guided FSR)",
    "fishfsrnet": "ParsingNet + FishFSRNet",
    "sparnet": "SPARNet / SPARNetHD",
    "aminet": "AMINet",
    "thesis": "Prior-guided FSR thesis (PGNet)",
}

METRIC_LABEL = {
    "psnr": "PSNR↑", "ssim": "SSIM↑", "lpips": "LPIPS↓", "vif": "VIF↑", "fid": "FID↓",
    "identity_cos": "ID cos↑", "lmk_dist_px": "Lmk dist (px)↓", "auc10": "AUC@10% (%)↑",
    "parsing_acc": "Parsing acc↑", "params_M": "Params (M)", "macs_G": "MACs (G)",
    "time_ms": "Time (ms)", "time_s": "Time (s)",
}
METRIC_DECIMALS = {
    "psnr": 2, "ssim": 4, "lpips": 4, "vif": 4, "fid": 2, "identity_cos": 4, "lmk_dist_px": 2,
    "auc10": 2, "lmk_auc10": 2, "parsing_acc": 4, "params_M": 2, "macs_G": 1, "time_ms": 0, "time_s": 3,
}
#: metrics that do not depend on the test set (looked up on any test set of the run)
RUN_LEVEL_METRICS = {"params_M", "macs_G", "time_ms", "time_s"}


#: paper metric -> (our metric name, conversion of our value to the paper's unit).
#: ``lmk_auc10`` is already in % (``fsrlib.metrics.face``), AUC of the NME vs the HR detection.
OURS_METRIC: dict[str, tuple[str, Any]] = {
    "auc10": ("lmk_auc10", None),
    "time_s": ("time_ms", lambda v: v / 1000.0),
}

DATASET_LABEL = {
    "celeba": "CelebA", "helen": "Helen", "helen_dic": "Helen (DIC)", "umd": "UMD",
    "celeba_fsrnet": "CelebA (FSRNet 18K)", "scface": "SCface", "celebahq": "CelebAHQ-Test",
    "celeba_testn": "CelebA-TestN", "celebamaskhq": "CelebAMask-HQ", "average": "Avg",
}

#: paper dataset -> (our test set or None, note). A note on a test set that exists marks a
#: stand-in ("proxy"): ours is measured on it, the paper on something else.
TESTSETS: dict[str, tuple[str | None, str]] = {
    "celeba": ("celeba_test", ""),
    "helen": ("helen50", ""),
    "helen_dic": ("helen50", "paper: DICNet's Helen test crops; ours: helen50"),
    "umd": ("celeba_test", "paper: UMD-Face (1,000 identities); ours: identity similarity on celeba_test"),
    "celeba_fsrnet": ("celeba_test", "paper: FSRNet's 18K CelebA split; ours: celeba_test"),
    "celebamaskhq": ("celeba_test", "paper: CelebAMask-HQ test (1,000); ours: celeba_test"),
    "scface": (None, "SCface surveillance faces are not part of this project"),
    "celebahq": (None, "CelebAHQ-Test at 512 px is not part of this project"),
    "celeba_testn": (None, "CelebA-TestN (real LR faces) is not part of this project"),
}

PROXY_MARK = "†"
MISSING = "–"

_RUN_RE = re.compile(r"^(?P<key>.+?)-x(?P<scale>\d+)(?:[-_.](?P<tag>.+))?$")
_PROTOCOL_COLS = ["data", "degradation", "crop_border", "color", "parser", "budget"]


# ---------------------------------------------------------------------------------------------
# loading
def load_paper_results(path: str | Path = PAPER_CSV) -> pd.DataFrame:
    """The transcribed paper numbers. ``value_str`` keeps the printed text (``"0.7210"``),
    ``value`` is its float; ``scale`` is a nullable integer (empty for averages and for
    SPARNetHD's blind setting)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df["value_str"] = df["value"]
    df["value"] = df["value"].astype(float)
    df["scale"] = pd.to_numeric(df["scale"].replace("", None)).astype("Int64")
    return df


def parse_run_name(run: str) -> tuple[str, int | None, str]:
    """``"wnet_expA-x4"`` -> ``("wnet_expA", 4, "")``; ``"sparnet-x8-seed2"`` -> tag ``seed2``."""
    m = _RUN_RE.match(run)
    if not m:
        return run, None, ""
    return m["key"], int(m["scale"]), m["tag"] or ""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return {"_error": f"{path.name} unreadable ({e.__class__.__name__})"}


def _budget_str(b: Any) -> str:
    if b is None or b == "":
        return ""
    if isinstance(b, dict):
        if not b.get("iters") and not b.get("epochs"):
            return ""  # nothing trained (bicubic, the HR reference): no budget to describe
        parts = []
        if "iters" in b:
            parts.append(f"{b['iters']} iters")
        if "epochs" in b:
            parts.append(f"{b['epochs']} epochs")
        if "batch" in b:
            parts.append(f"batch {b['batch']}")
        parts += [f"{k}={v}" for k, v in b.items() if k not in ("iters", "epochs", "batch")]
        return " × ".join(parts[:2]) + ("; " + ", ".join(parts[2:]) if len(parts) > 2 else "")
    return str(b)


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def load_results(results_dir: str | Path = "results", runs_dir: str | Path | None = "runs",
                 downstream_dir: str | Path | None = None) -> pd.DataFrame:
    """Every metric of every evaluated run, long format. ``downstream_dir``: where the
    downstream stage wrote ``{run}/{testset}/downstream.json`` (default: ``results_dir``).

    Columns: ``run, method_key, method, scale, tag, testset, source`` (metrics | downstream |
    protocol | run), ``metric, value`` (float or NaN), ``missing_reason, n_images``, the
    protocol fields ``data, degradation, crop_border, color, parser, budget`` and
    ``protocol`` (the whole protocol dict as JSON). Complexity numbers (``params_M``,
    ``macs_G``, ``time_ms``) found in a protocol or in ``run.json`` become metric rows with
    ``source`` protocol / run. A run with a ``run.json`` and no results yet appears with
    ``testset == ""`` so that tables can say "trained, not evaluated"."""
    results_dir = Path(results_dir)
    runs_dir = Path(runs_dir) if runs_dir is not None else None
    records: list[dict] = []
    run_json_cache: dict[str, dict] = {}

    def run_json(run: str) -> dict:
        if run not in run_json_cache:
            p = runs_dir / run / "run.json" if runs_dir is not None else None
            run_json_cache[run] = _read_json(p) if p is not None and p.is_file() else {}
        return run_json_cache[run]

    def base(run: str, obj: dict, testset: str) -> dict:
        key, scale, tag = parse_run_name(run)
        rj = run_json(run)
        protocol = {}
        if isinstance(rj.get("protocol"), dict):
            protocol.update(rj["protocol"])
        for k in ("budget", "data", "degradation", "parser", "profile"):
            if k in rj and k not in protocol:
                protocol[k] = rj[k]
        if isinstance(obj.get("protocol"), dict):
            protocol.update(obj["protocol"])
        if scale is None:
            scale = obj.get("scale", rj.get("scale"))
            key = obj.get("method") or rj.get("method") or key
        return {
            "run": run, "method_key": key, "method": obj.get("method", rj.get("method", key)),
            "scale": int(scale) if scale is not None else None, "tag": tag, "testset": testset,
            "n_images": obj.get("n_images"),
            **{c: (_budget_str(protocol.get(c)) if c == "budget" else
                   (None if protocol.get(c) is None else str(protocol.get(c)))) for c in _PROTOCOL_COLS},
            "protocol": json.dumps(protocol, sort_keys=True, default=str),
            "_protocol": protocol,
        }

    seen_runs: set[str] = set()
    downstream_dir = results_dir if downstream_dir is None else Path(downstream_dir)
    roots = [(results_dir, (("metrics.json", "metrics"), ("downstream.json", "downstream")))]
    if downstream_dir != results_dir:
        roots = [(results_dir, (("metrics.json", "metrics"),)), (downstream_dir, (("downstream.json", "downstream"),))]
    for root, files in roots:
        if not root.is_dir():
            continue
        for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for ts_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
                for fname, source in files:
                    f = ts_dir / fname
                    if not f.is_file():
                        continue
                    seen_runs.add(run_dir.name)
                    obj = _read_json(f)
                    b = base(run_dir.name, obj, obj.get("testset", ts_dir.name))
                    metrics = obj.get("metrics") or {}
                    missing = obj.get("missing") or {}
                    if "_error" in obj:
                        records.append({**b, "source": source, "metric": "_file",
                                        "value": None, "missing_reason": obj["_error"]})
                    for m, v in metrics.items():
                        val = _num(v)
                        reason = "" if val is not None else (missing.get(m) or "value is null, no reason recorded")
                        records.append({**b, "source": source, "metric": m, "value": val, "missing_reason": reason})
                    for m, r in missing.items():
                        if m not in metrics:
                            records.append({**b, "source": source, "metric": m, "value": None,
                                            "missing_reason": str(r)})
                    if source == "metrics":
                        records += _complexity_rows(b, metrics, run_json(run_dir.name))
    if runs_dir is not None and runs_dir.is_dir():
        for p in sorted(runs_dir.glob("*/run.json")):
            run = p.parent.name
            if run in seen_runs:
                continue
            b = base(run, {}, "")
            rows = _complexity_rows(b, {}, run_json(run))
            records += rows or [{**b, "source": "run", "metric": "_trained", "value": None,
                                 "missing_reason": "trained, not evaluated"}]
    cols = ["run", "method_key", "method", "scale", "tag", "testset", "source", "metric", "value",
            "missing_reason", "n_images", *_PROTOCOL_COLS, "protocol"]
    df = pd.DataFrame([{k: r.get(k) for k in cols} for r in records], columns=cols)
    df["value"] = df["value"].astype(float)
    df["scale"] = df["scale"].astype("Int64")
    df["missing_reason"] = df["missing_reason"].fillna("")
    for c in _PROTOCOL_COLS:  # text as written ("0", not 0.0)
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def _complexity_rows(b: dict, metrics: dict, rj: dict) -> list[dict]:
    out = []
    sources = [("protocol", b["_protocol"]), ("run", rj)]
    if isinstance(rj.get("complexity"), dict):
        sources.append(("run", rj["complexity"]))
    for m in ("params_M", "macs_G", "time_ms"):
        if m in metrics:
            continue
        for src, d in sources:
            v = _num(d.get(m)) if isinstance(d, dict) else None
            if v is not None:
                out.append({**b, "source": src, "metric": m, "value": v, "missing_reason": ""})
                break
    return out


def load_per_image(results_dir: str | Path, run: str, testset: str, downstream: bool = False,
                   downstream_dir: str | Path | None = None) -> pd.DataFrame:
    """``per_image.csv`` (or ``downstream_per_image.csv``, under ``downstream_dir`` when given)
    of one run and test set, for figures."""
    name = "downstream_per_image.csv" if downstream else "per_image.csv"
    root = Path(downstream_dir) if (downstream and downstream_dir is not None) else Path(results_dir)
    return pd.read_csv(root / run / testset / name, dtype={"name": str})


# ---------------------------------------------------------------------------------------------
# specs
@dataclass(frozen=True)
class Row:
    """A table row: a paper method (as printed in ``paper_results.csv``) and our run keys.

    ``keys``: our method keys tried in order (the first with a run wins); ``None`` takes the
    ``method_key`` of the paper CSV. ``also``: extra fallback keys. ``source``: read the
    paper values from another ``(table, block, method)`` of the same paper. ``optional``:
    drop the row when we have no value for it (e.g. an HR reference row)."""

    method: str
    keys: tuple[str, ...] | None = None
    label: str | None = None
    block: str | None = None
    also: tuple[str, ...] = ()
    source: tuple[str, str, str] | None = None
    optional: bool = False


@dataclass(frozen=True)
class Col:
    """A column: paper dataset x scale x metric, and where our number comes from."""

    dataset: str
    scale: int | None
    metric: str
    label: str | None = None
    block: str | None = None
    testset: str | None = "auto"          # "auto": TESTSETS[dataset]; "*": any test set of the run
    mean_of: tuple[tuple[str, int], ...] = ()  # derived column: mean of these (dataset, scale)

    def our_testset(self) -> tuple[str | None, str]:
        if self.testset != "auto":
            return self.testset, ""
        if self.metric in RUN_LEVEL_METRICS:
            return "*", ""
        return TESTSETS.get(self.dataset, (self.dataset, ""))

    def header(self) -> str:
        if self.label:
            return self.label
        ds = DATASET_LABEL.get(self.dataset, self.dataset)
        sc = f" ×{self.scale}" if self.scale else ""
        return f"{ds}{sc} {METRIC_LABEL.get(self.metric, self.metric)}"


@dataclass(frozen=True)
class TableSpec:
    name: str
    paper: str
    table: str
    title: str
    rows: tuple[Row, ...]
    cols: tuple[Col, ...]
    block: str = ""
    kind: str = "main"                     # main | ablation | downstream | efficiency | ours
    paper_protocol: str = ""
    notes: tuple[str, ...] = ()


def _grid(datasets: Sequence[str], scales: Sequence[int | None], metrics: Sequence[str]) -> tuple[Col, ...]:
    return tuple(Col(d, s, m) for d in datasets for s in scales for m in metrics)


def _rows(*methods: str, **kw) -> tuple[Row, ...]:
    return tuple(Row(m, **kw) for m in methods)


HR_ROW = Row("", keys=("hr",), label="HR (reference)", optional=True)

_WNET_PROTO = ("CelebA (OpenFace 68-landmark crop, 128×128), bicubic LR; Mode I: 168,854 train (DIC split), "
               "Mode II: 18,000 train (RAAN); test CelebA 1,000 (Mode I) / 100 (Mode II) and Helen 50; "
               "PSNR/SSIM colour channel not stated (Y assumed), no crop stated; LPIPS (AlexNet assumed); "
               "batch 4, Adam 1e-4; parser BiSeNet (binary skin-vs-components map)")
_FISH_PROTO = ("DIC protocol: CelebA 168,854 train / 1,000 test, Helen 1,955 train / 50 test (Helen models "
               "trained on Helen); bicubic LR 32/16/8 px from 128×128; PSNR/SSIM on Y (BT.601); the official "
               "code crops 8 px per side; batch 8, Adam 1e-4; parser BiSeNet -> binary skin map, ParsingNet "
               "estimates it at LR")
_SPAR_PROTO = ("CelebA ≈179K MTCNN crops, 128×128, bicubic 16×16 LR (8×); test Helen (FSRNet split); "
               "PSNR/SSIM on Y (BT.601), no crop; AUC of FAN landmarks under NME 10%; identity = SphereFace "
               "cosine on UMD-Face; batch 64, Adam 2e-4, L2 loss")
_SPARHD_PROTO = ("FFHQ 70K at 512×512, blind degradation (blur, downsample, noise, JPEG; eq. 14); LPIPS on "
                 "CelebAHQ-Test, FID on CelebA-TestN vs CelebAHQ-Test HR; 100k iterations, batch 2")
_AMI_PROTO = ("CelebA 18,000 train / 1,000 test, Helen test; centre-cropped aligned faces 128×128, bicubic "
              "16×16 LR (×8); PSNR/SSIM channel not stated (Y assumed), no crop stated; VIF, LPIPS (AlexNet "
              "assumed); Adam 2e-4, RTX 3090; no parser")
_AMI_ABL = ("Ablations (Tables I-V) use an unstated cheaper protocol: the full model scores 27.83 dB here "
            "vs 28.26 dB in Table VII; compare within the table only.")
_THESIS_PROTO = ("CelebAMask-HQ 28,000 train / 1,000 test, 128×128, ×8 (16×16 LR, bicubic assumed); "
                 "PSNR/SSIM channel not stated (RGB assumed); LPIPS backbone unstated (AlexNet assumed); "
                 "RMSProp; parsing prior = 11 CelebAMask-HQ component maps")

_W_T1_COLS = _grid(("celeba", "helen"), (4, 8), ("psnr", "ssim", "lpips"))
_F_SETTINGS = tuple((d, s) for d in ("celeba", "helen") for s in (4, 8, 16))

TABLES: tuple[TableSpec, ...] = (
    # ------------------------------------------------------------------ W-Net
    TableSpec(
        "wnet_t1_mode_i", "wnet", "T1", "W-Net Table 1 (Training Mode I): FSR methods on CelebA and Helen",
        _rows("Bicubic", "SRCNN [45]", "EDSR [46]", "FSRNet [7]", "DIC [35]", "MRRNet [47]", "W-Net"),
        _W_T1_COLS, block="mode_I", paper_protocol=_WNET_PROTO + " (Training Mode I)",
        notes=("Both modes are filled from the same runs (<key>-x<scale>); the paper's modes differ in training-set "
               "size and test-set size.",)),
    TableSpec(
        "wnet_t1_mode_ii", "wnet", "T1", "W-Net Table 1 (Training Mode II): FSR methods on CelebA and Helen",
        _rows("SRGAN [15]", "SPARNet [10]", "SISN [24]", "WIPA [48]", "MRRNet [47]", "UFSRNet [49]", "W-Net"),
        _W_T1_COLS, block="mode_II", paper_protocol=_WNET_PROTO + " (Training Mode II)",
        notes=("The paper has no Bicubic row in Mode II (see Mode I).",)),
    TableSpec(
        "wnet_t2", "wnet", "T2", "W-Net Table 2: downstream landmark distance and identity similarity (Mode II)",
        (*_rows("Bicubic", "SPARNet [10]", "SRGAN [15]", "MRRNet [47]", "UFSRNet [49]", "W-Net"), HR_ROW),
        _grid(("celeba", "helen"), (4, 8), ("lmk_dist_px", "identity_cos")), kind="downstream",
        paper_protocol=_WNET_PROTO + "; landmarks: OpenFace 68 points on SR vs HR, mean Euclidean distance "
        "(px assumed); identity: AdaFace cosine SR vs HR",
        notes=("The paper's table is transposed (rows = dataset/scale/metric); here rows are methods.",)),
    TableSpec(
        "wnet_t3", "wnet", "T3", "W-Net Table 3 (ablation): Parsing Block, LPF, SCAB on CelebA ×4 (Mode II)",
        tuple(Row(f"Exp.{c}", also=(("wnet",) if c == "H" else ())) for c in "ABCDEFGH"),
        _grid(("celeba",), (4,), ("psnr", "ssim")), kind="ablation", paper_protocol=_WNET_PROTO,
        notes=("The ✓ marks were lost in extraction; rows B and D-G are a reconstruction [A].",
               "Exp.H is the full W-Net (= Table 1 Mode II CelebA ×4); ours falls back to run wnet-x4.")),
    # ------------------------------------------------------------------ FishFSRNet
    TableSpec(
        "fishfsrnet_t1", "fishfsrnet", "T1", "FishFSRNet Table I: FSR methods on CelebA and Helen (PSNR/SSIM)",
        _rows("Bicubic", "SRCNN [78]", "URDGN [8]", "VDSR [79]", "WSRNet [11]", "Super-FAN [16]", "FSRNet [18]",
              "DIC [19]", "SISN [14]", "Ours (FishFSRNet)"),
        (*_grid(("celeba", "helen"), (4, 8, 16), ("psnr", "ssim")),
         Col("average", None, "psnr", label="Avg PSNR↑", testset=None, mean_of=_F_SETTINGS),
         Col("average", None, "ssim", label="Avg SSIM↑", testset=None, mean_of=_F_SETTINGS)),
        paper_protocol=_FISH_PROTO,
        notes=("Avg = mean over the six dataset×scale settings; ours is computed the same way when all six exist.",
               "Paper: Ours' average SSIM is printed 0.7917; the mean of its six SSIMs is 0.7941.",
               "Paper Helen models are trained on Helen; ours are the CelebA-trained runs evaluated on helen50.")),
    TableSpec(
        "fishfsrnet_t2", "fishfsrnet", "T2", "FishFSRNet Table II: identity cosine similarity of SR vs HR",
        (*_rows("Bicubic", "FSRNet [18]", "DIC [19]", "SISN [14]", "Ours"), HR_ROW),
        _grid(("celeba", "helen"), (4, 8, 16), ("identity_cos",)), kind="downstream",
        paper_protocol=_FISH_PROTO + "; identity: DeepFace (LightFace framework) embeddings, cosine SR vs HR"),
    TableSpec(
        "fishfsrnet_t3", "fishfsrnet", "T3", "FishFSRNet Table III (ablation): PAFB and MSRB on CelebA ×8",
        tuple(Row(f"Model {i}", also=(("fishfsrnet",) if i == 8 else ())) for i in range(1, 9)),
        _grid(("celeba",), (8,), ("psnr", "ssim")), kind="ablation", paper_protocol=_FISH_PROTO,
        notes=("Model 8 is the full FishFSRNet (= Table I CelebA ×8); ours falls back to run fishfsrnet-x8.",)),
    TableSpec(
        "fishfsrnet_t4", "fishfsrnet", "T4", "FishFSRNet Table IV: ParsingNet face-parsing accuracy",
        _rows("ParsingNet"), _grid(("celeba", "helen"), (4, 8, 16), ("parsing_acc",)), kind="downstream",
        paper_protocol=_FISH_PROTO + "; the accuracy metric is not defined by the paper",
        notes=("Ours: pixel accuracy of the binarised ParsingNet map vs the target at LR size (spec's guess).",)),
    # ------------------------------------------------------------------ SPARNet
    TableSpec(
        "sparnet_t1", "sparnet", "T1", "SPARNet Table I: Helen ×8 image quality, landmark AUC and UMD identity",
        (*_rows("Bicubic", "RCAN", "CBAM", "URDGN", "Wavelet", "Att-FH", "FSRNet", "Baseline", "SPARNet"), HR_ROW),
        (*_grid(("helen",), (8,), ("psnr", "ssim", "auc10")), Col("umd", 8, "identity_cos")),
        paper_protocol=_SPAR_PROTO,
        notes=("RCAN and CBAM are their attention modules inside the SPARNet skeleton (sparnet_rcan, sparnet_cbam).",
               "AUC in %: ours is lmk_auc10 (NME of SR landmarks vs HR landmarks, inter-ocular).")),
    TableSpec(
        "sparnet_t2", "sparnet", "T2", "SPARNet Table II: FSRNet vs SPARNet on FSRNet's CelebA data (×8)",
        _rows("FSRNet", "SPARNet"), _grid(("celeba_fsrnet",), (8,), ("psnr", "ssim")), paper_protocol=_SPAR_PROTO),
    TableSpec(
        "sparnet_t3", "sparnet", "T3", "SPARNet Table III: Helen test set of DICNet (×8), size and speed",
        _rows("PFSRNet", "DICNet", "SPARNet"), _grid(("helen_dic",), (8,), ("psnr", "ssim", "params_M", "time_s")),
        kind="efficiency", paper_protocol=_SPAR_PROTO + "; time in seconds per image (GPU unstated, K40 likely)",
        notes=("Ours' time_ms is shown in seconds.",)),
    TableSpec(
        "sparnet_t4", "sparnet", "T4", "SPARNet Table IV: Helen at ×4 and ×16",
        _rows("Bicubic", "RCAN", "CBAM", "Wavelet", "SPARNet"), _grid(("helen",), (4, 16), ("psnr", "ssim")),
        paper_protocol=_SPAR_PROTO + "; ×4 trained from scratch, ×16 fine-tuned from ×8"),
    TableSpec(
        "sparnet_t5", "sparnet", "T5", "SPARNet Table V: identity similarity, SICNN vs SPARNet (SICNN's data)",
        _rows("SICNN", "SPARNet (SICNN data)"), (Col("umd", 8, "identity_cos"),), kind="downstream",
        paper_protocol=_SPAR_PROTO + "; both trained on SICNN's pre-aligned set",
        notes=("We do not have SICNN's training set; no run corresponds to either row.",)),
    TableSpec(
        "sparnet_t6", "sparnet", "T6", "SPARNet Table VI: SPARNetHD and loss ablations (LPIPS / FID)",
        _rows("ESRGAN", "SFTGAN", "Pix2PixHD", "SPARNetHD", "w/o L_pix", "w/o L_GAN (and L_fm)", "w/o L_fm",
              "w/o L_pcp"),
        (Col("celebahq", None, "lpips"), Col("celeba_testn", None, "fid")), kind="ablation",
        paper_protocol=_SPARHD_PROTO),
    TableSpec(
        "sparnet_fig5_fig7", "sparnet", "Fig5/Fig7", "SPARNet Figs. 5 and 7 (ablation): FAU count N and "
        "minimum feature size M on Helen ×8",
        (Row("Baseline", source=("T1", "", "Baseline")),
         *(Row("", keys=(f"sparnet_v{n}",), label=f"SPARNet-V{n}") for n in (1, 2, 4, 8)),
         Row("SPARNet", label="SPARNet (V16-S4)", source=("T1", "", "SPARNet")),
         *(Row("", keys=(f"sparnet_s{m}",), label=f"SPARNet-S{m}") for m in (2, 8, 16))),
        _grid(("helen",), (8,), ("psnr", "ssim", "auc10")), kind="ablation",
        paper_protocol=_SPAR_PROTO + "; Figs. 5 and 7 are plots: only Baseline and SPARNet numbers are printed "
        "(Table I)",
        notes=("V-N: attention in the last N FAUs (M = 4); S-M: minimum feature size M (N = 16).",)),
    # ------------------------------------------------------------------ AMINet
    TableSpec(
        "aminet_t1", "aminet", "T1", "AMINet Table I (ablation): effectiveness of LGFI (CelebA ×8)",
        (Row("LGFI w/o SA", also=("aminet_no_sa_keep_skaf",)), Row("LGFI w/o RDFE", also=("aminet_no_rdfe_keep_skaf",)),
         Row("LGFI w/o SKAF"), Row("LGFI")),
        _grid(("celeba",), (8,), ("psnr", "ssim", "vif", "lpips", "time_ms", "params_M")), kind="ablation",
        paper_protocol=_AMI_PROTO, notes=(_AMI_ABL,)),
    TableSpec(
        "aminet_t2", "aminet", "T2", "AMINet Table II (ablation): LGFI vs a Restormer Transformer block (CelebA ×8)",
        _rows("Transformer", "LGFI"), _grid(("celeba",), (8,), ("params_M", "psnr", "ssim", "vif", "lpips")),
        kind="ablation", paper_protocol=_AMI_PROTO, notes=(_AMI_ABL,)),
    TableSpec(
        "aminet_t3", "aminet", "T3", "AMINet Table III (ablation): RDFE vs FFN (CelebA ×8)",
        _rows("FFN", "RDFE"), _grid(("celeba",), (8,), ("params_M", "psnr", "ssim", "vif", "lpips")),
        kind="ablation", paper_protocol=_AMI_PROTO, notes=(_AMI_ABL,)),
    TableSpec(
        "aminet_t4", "aminet", "T4", "AMINet Table IV (ablation): RDFE design (CelebA ×8)",
        _rows("Single path (3×3 dw)", "Single path (5×5 dw)", "Single path (7×7 dw)", "RDFE w/o AU",
              "RDFE w/o FRM", "RDFE"),
        _grid(("celeba",), (8,), ("psnr", "ssim", "vif", "lpips")), kind="ablation", paper_protocol=_AMI_PROTO,
        notes=(_AMI_ABL,)),
    TableSpec(
        "aminet_t5", "aminet", "T5", "AMINet Table V (ablation): SKAF kernels and pooling (CelebA ×8)",
        _rows("SKAF none", "SKAF 7×7+avg+max", "SKAF 5×5+avg+max", "SKAF 7×7", "SKAF 7×7+avg", "SKAF 7×7+max",
              "SKAF 5×5+7×7+avg+max"),
        _grid(("celeba",), (8,), ("psnr", "ssim")), kind="ablation", paper_protocol=_AMI_PROTO,
        notes=(_AMI_ABL, "The paper's rows are unlabelled ✓/× switches; the labels here name the parts kept.")),
    TableSpec(
        "aminet_t6", "aminet", "T6", "AMINet Table VI (ablation): EDFF added to SPARNet and SFMNet (CelebA ×8)",
        (Row("SPARNet [17]", label="SPARNet", block="baseline"),
         Row("SPARNet [17]", label="SPARNet + EDFF", block="edff"),
         Row("SFMNet [20]", label="SFMNet", block="baseline"),
         Row("SFMNet [20]", label="SFMNet + EDFF", block="edff")),
        _grid(("celeba",), (8,), ("params_M", "psnr", "ssim")), kind="ablation", paper_protocol=_AMI_PROTO,
        notes=("The baselines' PSNR/SSIM equal Table VII (main protocol); SPARNet's params are 10.6M here and "
               "16.6M in Table X.",)),
    TableSpec(
        "aminet_t7", "aminet", "T7", "AMINet Table VII: ×8 FSR on CelebA and Helen",
        _rows("Bicubic", "SAN [46]", "RCAN [24]", "HAN [47]", "SwinIR [9]", "FSRNet [12]", "DICNet [14]",
              "FACN [48]", "SPARNet [17]", "SISN [18]", "AD-GNN [49]", "Restormer-M [50]", "LAAT [51]",
              "ELSFace [52]", "SFMNet [20]", "SPADNet [53]", "AMINet"),
        _grid(("celeba", "helen"), (8,), ("psnr", "ssim", "vif", "lpips")), paper_protocol=_AMI_PROTO),
    TableSpec(
        "aminet_t8", "aminet", "T8", "AMINet Table VIII: GAN-based methods on Helen ×8",
        _rows("FSRGAN [12]", "DICGAN [14]", "SPARGAN [17]", "SFMGAN [20]", "AMIGAN (Ours)"),
        _grid(("helen",), (8,), ("psnr", "ssim", "vif", "fid")), paper_protocol=_AMI_PROTO,
        notes=("FID on ~50 Helen images is very noisy; compare the ordering only.",)),
    TableSpec(
        "aminet_t9", "aminet", "T9", "AMINet Table IX: identity cosine similarity on ×8 SCface",
        _rows("SAN [46]", "RCAN [24]", "FSRNet [12]", "FACN [48]", "SPARNet [17]", "SISN [18]", "LAAT [51]",
              "ELSFace [52]", "SFMNet [20]", "AMINet"),
        tuple(Col("scface", 8, "identity_cos", label=f"Case {i}", block=f"case_{i}") for i in range(1, 5)),
        kind="downstream", paper_protocol=_AMI_PROTO + "; recognition network and the four cases are not defined"),
    TableSpec(
        "aminet_t10", "aminet", "T10", "AMINet Table X: model complexity on ×8 CelebA",
        _rows("FSRNet [12]", "SPARNet [17]", "DICNet [14]", "AD-GNN [49]", "CTCNet [5]", "SCTANet [10]",
              "LAAT [51]", "ELSFace [52]", "SFMNet [20]", "AMINet-S", "AMINet"),
        _grid(("celeba",), (8,), ("psnr", "params_M", "macs_G", "time_ms")), kind="efficiency",
        paper_protocol=_AMI_PROTO + "; MACs at 128×128 input, time in ms (RTX 3090 presumably)",
        notes=("Ours: params_M / macs_G / time_ms are read from metrics.json, else its protocol, else run.json.",)),
    # ------------------------------------------------------------------ thesis
    TableSpec(
        "thesis_t4_1", "thesis", "T4.1", "Thesis Table 4.1: objective evaluation (×8)",
        _rows("Bicubic", "SRResNet", "Proposed method 1", "Proposed method 2"),
        _grid(("celebamaskhq",), (8,), ("psnr", "ssim", "lpips")), paper_protocol=_THESIS_PROTO,
        notes=("Proposed method 1 = pgnet (CNN), Proposed method 2 = pgnet_gan (GAN).",)),
)

TABLES_BY_NAME = {t.name: t for t in TABLES}


def expected_method_keys(paper: pd.DataFrame | None = None) -> list[str]:
    """Every method key some table looks for (the run names the lead should produce)."""
    pidx = _PaperIndex(load_paper_results() if paper is None else paper)
    keys: set[str] = set()
    for spec in TABLES:
        for row in spec.rows:
            keys.update(_row_keys(spec, row, pidx))
    return sorted(keys)


# ---------------------------------------------------------------------------------------------
# building
@dataclass
class _Cell:
    paper: str | None = None
    paper_reason: str = ""
    ours: float | None = None
    ours_reason: str = ""
    proxy: bool = False
    run: str = ""
    testset: str = ""


class _PaperIndex:
    """Fast lookups into ``paper_results``: printed values and method keys."""

    def __init__(self, paper: pd.DataFrame):
        self.values: dict[tuple, str] = {}
        self.keys: dict[tuple, list[str]] = {}
        for r in paper.to_dict("records"):
            sc = None if pd.isna(r["scale"]) else int(r["scale"])
            self.values[(r["paper"], r["table"], r["block"], r["method"], r["dataset"], sc, r["metric"])] = \
                r["value_str"]
            ks = self.keys.setdefault((r["paper"], r["table"], r["block"], r["method"]), [])
            if r["method_key"] and r["method_key"] not in ks:
                ks.append(r["method_key"])


def _row_keys(spec: TableSpec, row: Row, paper: pd.DataFrame | _PaperIndex) -> tuple[str, ...]:
    if row.keys is not None:
        return tuple(row.keys) + tuple(row.also)
    pidx = paper if isinstance(paper, _PaperIndex) else _PaperIndex(paper)
    table, block, method = row.source or (spec.table, row.block if row.block is not None else spec.block, row.method)
    keys: list[str] = []
    for (pp, tt, bb, mm), ks in pidx.keys.items():
        # a block named by the row, the spec or the source; else any (e.g. AMINet's SCface cases)
        if pp == spec.paper and tt == table and mm == method and (not block or bb == block):
            keys += ks
    return tuple(dict.fromkeys([*keys, *row.also]))


class _Ours:
    """Lookup of our results: preferred run per (key, scale), values per test set."""

    def __init__(self, ours: pd.DataFrame):
        self.df = ours if ours is not None else pd.DataFrame(columns=["run", "method_key", "scale", "testset",
                                                                       "metric", "value", "missing_reason"])
        self.runs: dict[tuple[str, int | None], str] = {}
        for (key, scale), g in self.df.groupby(["method_key", "scale"], dropna=False):
            runs = sorted(g["run"].unique(), key=lambda r: (parse_run_name(r)[2] != "", r))
            self.runs[(key, None if pd.isna(scale) else int(scale))] = runs[0]
        self.by_run = {run: g for run, g in self.df.groupby("run")}

    def run_for(self, keys: Iterable[str], scale: int | None) -> str | None:
        for k in keys:
            if scale is None:
                cands = sorted(r for (kk, _), r in self.runs.items() if kk == k)
                if cands:
                    return cands[0]
            elif (k, scale) in self.runs:
                return self.runs[(k, scale)]
        return None

    def value(self, run: str, testset: str, metric: str) -> tuple[float | None, str]:
        g = self.by_run[run]
        if testset != "*":
            g_ts = g[g["testset"] == testset]
            if g_ts.empty:
                return None, f"not evaluated on {testset}: run {run} has no results there"
        else:
            g_ts = g
        m = g_ts[g_ts["metric"] == metric]
        if m.empty:
            return None, f"metric missing: {metric} not computed by run {run}"
        ok = m[m["value"].notna()]
        if not ok.empty:
            return float(ok["value"].iloc[0]), ""
        reason = next((r for r in m["missing_reason"] if r), "no reason recorded")
        return None, f"metric missing: {reason}"


def _decimals(s: str) -> int:
    return len(s.split(".")[1]) if "." in s else 0


def _fmt(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}"


def _cell_text(c: _Cell, decimals: int) -> str:
    p = c.paper if c.paper is not None else f"{MISSING} ({c.paper_reason})"
    if c.ours is not None:
        o = _fmt(c.ours, decimals) + (PROXY_MARK if c.proxy else "")
    else:
        o = f"{MISSING} ({c.ours_reason})"
    return f"{p} / {o}"


def _compute_cells(spec: TableSpec, ours: pd.DataFrame | _Ours, paper: pd.DataFrame):
    pidx = _PaperIndex(paper)
    O = ours if isinstance(ours, _Ours) else _Ours(ours)
    grid: list[tuple[Row, tuple[str, ...], list[_Cell], set[str]]] = []
    for row in spec.rows:
        keys = _row_keys(spec, row, pidx)
        cells: list[_Cell] = []
        runs_used: set[str] = set()
        for col in spec.cols:
            c = _Cell()
            # paper side
            if row.method or row.source:
                block = next(b for b in (row.block, col.block, spec.block) if b is not None)
                table, block, method = row.source or (spec.table, block, row.method)
                pr = pidx.values.get((spec.paper, table, block, method, col.dataset, col.scale, col.metric))
                if pr is not None:
                    c.paper = pr
                else:
                    c.paper_reason = "not reported by the paper"
            else:
                c.paper_reason = "not reported by the paper"
            # ours side
            if not keys:
                c.ours_reason = "not implemented in fsrlib"
            elif col.mean_of:
                c.ours_reason = ""  # filled below, from the other cells of the row
            else:
                testset, note = col.our_testset()
                run = O.run_for(keys, col.scale)
                if run is None:
                    c.ours_reason = (f"not trained in this profile: no run {keys[0]}-x{col.scale}"
                                     if col.scale else f"not trained in this profile: no run {keys[0]}-x<scale>")
                elif testset is None:
                    c.ours_reason = f"test set not available: {note}"
                else:
                    our_metric, conv = OURS_METRIC.get(col.metric, (col.metric, None))
                    v, reason = O.value(run, testset, our_metric)
                    if v is not None:
                        c.ours, c.run, c.proxy = (conv(v) if conv else v), run, bool(note)
                        c.testset = testset
                        runs_used.add(run)
                    else:
                        c.ours_reason = reason
            cells.append(c)
        # derived mean columns
        for j, col in enumerate(spec.cols):
            if not col.mean_of or not keys:
                continue
            vals = []
            for k, other in enumerate(spec.cols):
                if (other.dataset, other.scale) in col.mean_of and other.metric == col.metric:
                    vals.append(cells[k].ours)
            if vals and all(v is not None for v in vals) and len(vals) == len(col.mean_of):
                cells[j].ours = sum(vals) / len(vals)
                cells[j].proxy = any(cells[k].proxy for k, o in enumerate(spec.cols)
                                     if (o.dataset, o.scale) in col.mean_of and o.metric == col.metric)
            else:
                n = sum(v is not None for v in vals)
                cells[j].ours_reason = f"mean needs all {len(col.mean_of)} settings ({n} available)"
        if row.optional and all(c.ours is None for c in cells) and all(c.paper is None for c in cells):
            continue
        grid.append((row, keys, cells, runs_used))
    return grid


def _col_decimals(spec: TableSpec, grid) -> list[int]:
    out = []
    for j, col in enumerate(spec.cols):
        ds = [_decimals(cells[j].paper) for _, _, cells, _ in grid if cells[j].paper is not None]
        d = max(ds) if ds else METRIC_DECIMALS.get(col.metric, 3)
        if col.metric in RUN_LEVEL_METRICS:  # sizes and times: never coarser than the default
            d = max(d, METRIC_DECIMALS.get(col.metric, 0))
        out.append(d)
    return out


def _config_note(spec: TableSpec, row: Row, paper: pd.DataFrame) -> str:
    sel = paper[(paper["paper"] == spec.paper) & (paper["table"] == spec.table) & (paper["method"] == row.method)]
    for n in sel["note"]:
        m = re.search(r"config: ([^;]*)", n)
        if m:
            return m.group(1).strip()
    return ""


def build_table(spec: TableSpec, ours: pd.DataFrame | None, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """One paper table with ours beside it.

    Every value cell reads ``"<paper> / <ours>"``; a side without a number reads
    ``"– (<why>)"`` (e.g. ``"27.38 / – (not trained in this profile: no run srcnn-x4)"``).
    ``†`` after our number: measured on a stand-in test set (see the caption). Columns:
    ``Method``, ``ours run`` and, for ablations, ``config``, then one column per
    dataset × scale × metric. ``df.attrs`` holds ``spec`` name, ``runs`` used and
    ``proxies`` (the stand-in notes)."""
    paper = load_paper_results() if paper is None else paper
    ours = _Ours(ours if ours is not None else pd.DataFrame(columns=["run", "method_key", "scale", "testset",
                                                                   "metric", "value", "missing_reason"]))
    grid = _compute_cells(spec, ours, paper)
    decs = _col_decimals(spec, grid)
    headers = [c.header() for c in spec.cols]
    if len(set(headers)) != len(headers):  # disambiguate repeated labels
        headers = [f"{h} [{i}]" if headers.count(h) > 1 else h for i, h in enumerate(headers)]
    records = []
    all_runs: set[str] = set()
    used = sorted({(c.run, c.testset) for _, _, cells, _ in grid for c in cells if c.run})
    for row, keys, cells, runs_used in grid:
        rec = {"Method": row.label or row.method, "ours run": ", ".join(sorted(runs_used)) or
               (f"({', '.join(keys)})" if keys else "—")}
        if spec.kind == "ablation":
            rec["config"] = _config_note(spec, row, paper)
        for h, c, d in zip(headers, cells, decs):
            rec[h] = _cell_text(c, d)
        records.append(rec)
        all_runs |= runs_used
    df = pd.DataFrame(records)
    if "config" in df and not df["config"].astype(bool).any():
        df = df.drop(columns="config")
    proxies = sorted({TESTSETS[c.dataset][1] for c in spec.cols
                      if c.dataset in TESTSETS and TESTSETS[c.dataset][0] and TESTSETS[c.dataset][1]})
    df.attrs.update({"spec": spec.name, "runs": sorted(all_runs), "used": used, "proxies": proxies})
    return df


# ---------------------------------------------------------------------------------------------
# captions and writing
def _describe(values: dict[str, list[str]], fmt=lambda v: v) -> str:
    """``{value: [runs]}`` -> ``"a"``, or ``"a (r1, r2); b (r3)"`` when the runs differ
    (a value shared by more than three runs is summarised as ``"a (N runs)"``)."""
    vals = {k: sorted(set(v)) for k, v in values.items() if k not in ("", "None", "nan")}
    if not vals:
        return "not recorded"
    if len(vals) == 1:
        return fmt(next(iter(vals)))
    items = sorted(vals.items(), key=lambda kv: -len(kv[1]))
    return "; ".join(f"{fmt(k)} ({len(v)} runs)" if len(v) > 3 else f"{fmt(k)} ({', '.join(v)})" for k, v in items)


def _color_str(c: str) -> str:
    c = str(c)
    low = c.lower()
    if low.startswith("y"):
        return f"Y channel ({c})"
    if low.startswith("rgb"):
        return f"RGB ({c})"
    return c


_STANDARD_PROTOCOL = {*_PROTOCOL_COLS, "params_M", "macs_G", "time_ms", "profile",
                      "n_images", "testset", "scale"}  # the last three are in "test sets" / "scale"


def protocol_caption(ours: pd.DataFrame | None, runs: Sequence[str],
                     used: Sequence[tuple[str, str]] | None = None) -> str:
    """The protocol of our numbers, from the results' protocol fields of ``runs``.

    ``used``: the (run, test set) pairs that fill the table (``build_table``'s
    ``df.attrs["used"]``); the test sets listed and the extra protocol fields (e.g. the
    identity or landmark model of ``downstream.json``) come from those only."""
    if ours is None or not len(runs):
        return "Ours: no results in this profile yet."
    sub = ours[ours["run"].isin(runs)]
    if used:
        pairs = set(map(tuple, used))
        mask = [(r, t) in pairs for r, t in zip(sub["run"], sub["testset"])]
        sub_used = sub[mask] if any(mask) else sub  # only run-level numbers (params, time): all of the run
    else:
        sub_used = sub
    sub_ts = sub_used[sub_used["testset"] != ""]

    def collect(col):
        d: dict[str, list[str]] = {}
        for run, g in sub.groupby("run"):
            for v in g[col].dropna().astype(str).unique():
                d.setdefault(v, []).append(run)
        return d

    scales = sorted({int(s) for s in sub["scale"].dropna()})
    ts = []
    for t, g in sub_ts.groupby("testset"):
        n = sorted({int(x) for x in g["n_images"].dropna()})
        ts.append(f"{t} (n={'/'.join(map(str, n))})" if n else t)
    parts = [
        f"data: {_describe(collect('data'))}",
        f"degradation: {_describe(collect('degradation'))}",
        f"training budget: {_describe(collect('budget'))}",
        f"scale: {', '.join('×' + str(s) for s in scales) or 'n/a'}",
        f"metric convention: {_describe(collect('color'), _color_str)}, crop border "
        f"{_describe(collect('crop_border'), lambda v: v + ' px')}",
        f"parser: {_describe(collect('parser'))}",
        f"test sets: {', '.join(ts) or 'n/a'}",
    ]
    extra: dict[str, set[str]] = {}
    for pj in sub_used["protocol"].dropna().unique():
        try:
            d = json.loads(pj)
        except (TypeError, json.JSONDecodeError):
            continue
        for k, v in d.items():
            if k not in _STANDARD_PROTOCOL and isinstance(v, (str, int, float, bool)) and len(str(v)) <= 80:
                extra.setdefault(k, set()).add(str(v))
    parts += [f"{k}: {' | '.join(sorted(v))}" for k, v in sorted(extra.items())]
    return "Ours: " + "; ".join(parts) + "."


def table_caption(spec: TableSpec, df: pd.DataFrame, ours: pd.DataFrame | None) -> str:
    lines = [f"{spec.title}. Each cell: paper / ours; `–` with the reason where a number is missing."]
    if spec.paper_protocol:
        lines.append(f"Paper ({PAPERS.get(spec.paper, spec.paper)}): {spec.paper_protocol}.")
    lines.append(protocol_caption(ours, df.attrs.get("runs", []), df.attrs.get("used")))
    for p in df.attrs.get("proxies", []):
        lines.append(f"{PROXY_MARK} stand-in test set: {p}.")
    lines += list(spec.notes)
    return "\n".join(lines)


_SIDE_RE = re.compile(rf"^{MISSING} \((?P<why>.*)\)$")


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _markdown(df: pd.DataFrame) -> tuple[str, list[str]]:
    """Markdown table; missing-side reasons become numbered footnotes ``[n]``."""
    notes: list[str] = []

    def side(s: str) -> str:
        m = _SIDE_RE.match(s)
        if not m:
            return s
        why = m["why"]
        if why not in notes:
            notes.append(why)
        return f"{MISSING} [{notes.index(why) + 1}]"

    def cell(v: Any) -> str:
        s = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        if s.startswith(f"{MISSING} (") and ") / " in s:  # both sides missing, or paper side missing
            end = s.index(") / ") + 1
            s = f"{side(s[:end])} / {side(s[end + 3:])}"
        elif _SIDE_RE.match(s):
            s = side(s)
        elif " / " in s:
            p, o = s.split(" / ", 1)
            s = f"{side(p)} / {side(o)}"
        return _md_escape(s)

    cols = list(df.columns)
    out = ["| " + " | ".join(_md_escape(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(cell(r[c]) for c in cols) + " |")
    return "\n".join(out), notes


def write_table(df: pd.DataFrame, name: str, caption: str, out_dir: str | Path = "reports/tables") -> tuple[Path, Path]:
    """Write ``{out_dir}/{name}.md`` (caption, table, footnotes) and ``{name}.csv`` (the cells
    with their inline reasons; the caption goes to the Markdown only)."""
    out_dir = Path(out_dir)
    table_md, notes = _markdown(df) if len(df.columns) else ("(empty table)", [])
    cap_lines = caption.splitlines() or [name]
    md = [f"# {cap_lines[0]}", ""]
    if len(cap_lines) > 1:
        md += [*(f"- {ln}" for ln in cap_lines[1:]), ""]
    md += [table_md, ""]
    if notes:
        md += ["Missing values:", ""] + [f"[{i}] {n}  " for i, n in enumerate(notes, 1)] + [""]
    md_path = write_text(out_dir / f"{name}.md", "\n".join(md))
    csv_path = write_csv(out_dir / f"{name}.csv", df)
    return md_path, csv_path


def build_summary(ours: pd.DataFrame) -> pd.DataFrame:
    """All our runs × test sets × image metrics (no paper side)."""
    metrics = ["psnr", "ssim", "lpips", "vif", "fid", "identity_cos", "lmk_dist_px", "lmk_auc10"]
    sub = ours[(ours["testset"] != "") & ours["metric"].isin(metrics)]
    if sub.empty:
        return pd.DataFrame(columns=["run", "testset", *metrics])
    recs = []
    for (run, ts), g in sub.groupby(["run", "testset"]):
        rec = {"run": run, "testset": ts}
        for m in metrics:
            mm = g[g["metric"] == m]
            if mm.empty:
                rec[m] = ""
            elif mm["value"].notna().any():
                rec[m] = _fmt(float(mm["value"].dropna().iloc[0]), METRIC_DECIMALS.get(m, 4))
            else:
                rec[m] = f"{MISSING} ({next((r for r in mm['missing_reason'] if r), 'no reason recorded')})"
        recs.append(rec)
    df = pd.DataFrame(recs)
    return df.loc[:, [c for c in df.columns if c in ("run", "testset") or (df[c] != "").any()]]


def build_all(results_dir: str | Path = "results", runs_dir: str | Path | None = "runs",
              out_dir: str | Path = "reports/tables", paper: pd.DataFrame | None = None,
              specs: Sequence[TableSpec] = TABLES, downstream_dir: str | Path | None = None) -> list[Path]:
    """Every table of :data:`TABLES`, a summary of our runs, and ``README.md`` (the index)."""
    out_dir = Path(out_dir)
    paper = load_paper_results() if paper is None else paper
    ours = load_results(results_dir, runs_dir, downstream_dir)
    written: list[Path] = []
    index = ["# Tables: paper vs ours", "",
             "Generated by `fsrlib.report.tables.build_all`. Each cell reads `paper / ours`; "
             f"`–` marks a missing number with its reason; `{PROXY_MARK}` marks ours measured on a stand-in test set.",
             "", "| table | paper | kind | cells with ours | title |", "|---|---|---|---|---|"]
    for spec in specs:
        df = build_table(spec, ours, paper)
        cap = table_caption(spec, df, ours)
        md, csv = write_table(df, spec.name, cap, out_dir)
        written += [md, csv]
        value_cols = [c for c in df.columns if c not in ("Method", "ours run", "config")]
        n_cells = len(df) * len(value_cols)
        n_ours = sum(not str(df.at[i, c]).split(" / ", 1)[-1].startswith(MISSING)
                     for i in df.index for c in value_cols) if n_cells else 0
        index.append(f"| [{spec.name}]({spec.name}.md) | {spec.paper} {spec.table} | {spec.kind} | "
                     f"{n_ours}/{n_cells} | {_md_escape(spec.title)} |")
    summary = build_summary(ours)
    cap = ("Summary of our runs: every evaluated run and test set. "
           "No paper numbers here; see the per-paper tables. A blank cell: the metric was not computed.\n" + protocol_caption(ours, sorted(ours["run"].unique())))
    md, csv = write_table(summary, "ours_summary", cap, out_dir)
    written += [md, csv]
    index.append(f"| [ours_summary](ours_summary.md) | — | ours | {len(summary)} rows | all our runs |")
    index += ["", "Method keys the tables look for (runs are named `<key>-x<scale>`): "
              + ", ".join(f"`{k}`" for k in expected_method_keys(paper)), ""]
    written.append(write_text(out_dir / "README.md", "\n".join(index)))
    return written


__all__ = [
    "PAPER_CSV", "TABLES", "TABLES_BY_NAME", "TESTSETS", "Row", "Col", "TableSpec",
    "load_paper_results", "load_results", "load_per_image", "parse_run_name", "build_table",
    "table_caption", "protocol_caption", "write_table", "build_summary", "build_all", "expected_method_keys",
]
