"""Short table captions (what a reader needs to read the numbers) and portable text.

A caption is three lines, under :data:`CAPTION_MAX` characters in all: the table's title, the
paper's protocol in one line (:data:`PAPER_SHORT`) and ours in one line (data, degradation,
metric convention, parser, budget), with a link to ``runs.md`` where the per-run facts are
(iterations, batch, wall time, device, seeds, parameters, MACs). The full protocols go below
the table. No wall time and no machine path in a caption: a rerun with the same numbers writes
the same bytes (:func:`portable` rewrites machine paths in any text the report writes).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

import pandas as pd

__all__ = ["CAPTION_MAX", "PAPER_SHORT", "RUNS_LINK", "paper_line", "ours_line", "caption_lines", "portable"]

CAPTION_MAX = 400
RUNS_LINK = "Per-run facts: [runs.md](runs.md)."

#: the papers' protocols in one short line each (the full text: the spec's ``paper_protocol``)
PAPER_SHORT = {
    "wnet": "CelebA (Mode I 168,854 / Mode II 18,000 train), Helen 50; bicubic LR; Y assumed; BiSeNet parser",
    "fishfsrnet": "DIC split (CelebA 168,854/1,000, Helen 1,955/50); bicubic; Y, 8 px crop; BiSeNet skin map",
    "sparnet": "CelebA ≈179K MTCNN crops, bicubic 16 px LR; Helen test; Y, no crop; batch 64, 2e-4",
    "aminet": "CelebA 18,000/1,000, Helen test; bicubic 16 px LR; Y assumed, no crop; no parser",
    "thesis": "CelebAMask-HQ 28,000/1,000, ×8 bicubic assumed; RGB assumed; 11-map parsing prior",
}
#: tables whose protocol differs from their paper's usual one
TABLE_SHORT = {
    "sparnet_t6": "FFHQ 70K at 512 px, blind degradation; LPIPS on CelebAHQ-Test, FID on CelebA-TestN",
}


def paper_line(spec) -> str:
    short = TABLE_SHORT.get(spec.name) or PAPER_SHORT.get(spec.paper)
    return f"Paper: {short}." if short else ""


def _json(s) -> dict:
    try:
        d = json.loads(s)
    except (TypeError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _join(values) -> str:
    vals = sorted({str(v) for v in values if v not in (None, "", "None", "nan")})
    return " | ".join(vals) if vals else "n/a"


def ours_line(ours: pd.DataFrame | None, runs: Sequence[str], used: Sequence[tuple[str, str]] | None = None,
              metric_convention: str | None = None) -> str:
    """``Ours: <train set> → <test sets (n)>; <degradation>; <metric convention>; parser <p>;
    <iterations> × batch <b>.`` of the runs (and (run, test set) pairs) that fill a table.
    ``metric_convention``: the PSNR / SSIM convention's text, in place of the results' own."""
    if ours is None or not len(runs):
        return "Ours: no results in this profile yet."
    sub = ours[ours["run"].isin(runs)]
    if used:
        pairs = set(map(tuple, used))
        m = [(r, t) in pairs for r, t in zip(sub["run"], sub["testset"])]
        sub = sub[m] if any(m) else sub
    protos = [_json(p) for p in sub["protocol"].dropna().unique()]
    train = {m.group(1) for d in sub["data"].dropna() for m in [re.search(r"trained on (\S+)", str(d))] if m}
    ts = []
    for t, g in sub[sub["testset"] != ""].groupby("testset"):
        n = sorted({int(x) for x in g["n_images"].dropna()})
        ts.append(f"{t} ({'/'.join(map(str, n))})" if n else t)
    deg_by: dict[str, set[str]] = {}
    for d in sub["degradation"].dropna():
        d = str(d).split(" (")[0].replace("MATLAB imresize bicubic", "MATLAB bicubic")
        m = re.match(r"^(.*?) x(\d+)$", d)
        deg_by.setdefault(m.group(1) if m else d, set()).update({int(m.group(2))} if m else set())
    deg = {k + (" " + "/".join(f"×{x}" for x in sorted(v)) if v else "") for k, v in deg_by.items()}
    color = {("Y" if str(c).lower().startswith("y") else "RGB" if str(c).lower().startswith("rgb") else str(c))
             for c in sub["color"].dropna()}
    crop = {str(c) for c in sub["crop_border"].dropna()}
    iters = sorted({int(b["iters"]) for p in protos if isinstance(b := p.get("budget"), dict)
                    and isinstance(b.get("iters"), (int, float)) and b["iters"]})
    batch = sorted({int(b["batch"]) for p in protos if isinstance(b := p.get("budget"), dict)
                    and isinstance(b.get("batch"), (int, float)) and b["batch"]})
    data = (f"{_join(train)} → " if train else "test ") + (", ".join(ts) or "n/a")
    parts = [data, _join(deg), metric_convention or f"{_join(color)}, crop {_join(crop)} px",
             f"parser {_join(sub['parser'].dropna())}"]
    if iters:
        it = f"{iters[0]}" if len(iters) == 1 else f"{iters[0]}-{iters[-1]}"
        parts.append(f"{it} iters" + (f" × batch {_join(batch)}" if batch else ""))
    return "Ours: " + "; ".join(parts) + "."


def caption_lines(spec, df: pd.DataFrame, ours: pd.DataFrame | None) -> list[str]:
    """The three caption lines of a paper table (title, paper, ours + the runs.md link)."""
    lines = [f"{spec.title}"]
    p = paper_line(spec)
    if p:
        lines.append(p)
    conv = df.attrs.get("convention_text")
    lines.append(f"{ours_line(ours, df.attrs.get('runs', []), df.attrs.get('used'), conv)} {RUNS_LINK}")
    return lines



def portable(text: str, root: str | Path | None = None) -> str:
    """``text`` without machine paths: the torch hub cache becomes ``$TORCH_HOME/hub``, the
    repository (``root``, default the working directory) a relative path, the home folder
    ``~``."""
    s = str(text)
    th = os.environ.get("TORCH_HOME")
    home = str(Path.home())
    hubs = [th] if th else []
    hubs.append(os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.join(home, ".cache")), "torch"))
    for h in hubs:
        s = s.replace(h.rstrip("/") + "/", "$TORCH_HOME/")
    r = str(Path(root or os.getcwd()).resolve()).rstrip("/")
    if len(r) > 1:
        s = s.replace(r + "/", "")
    if len(home) > 1:
        s = re.sub(rf"{re.escape(home)}(?=/|\b)", "~", s)
    return s
