"""Report layer: paper_results.csv against the specs, tables on a fake results folder, figures."""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from fsrlib.config import parse_run_name  # noqa: E402
from fsrlib.report import figures as F  # noqa: E402
from fsrlib.report import results as RES  # noqa: E402
from fsrlib.report import specs as SP  # noqa: E402
from fsrlib.report import tables as T  # noqa: E402
from fsrlib.report import vocabulary as V  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECS = Path(os.environ.get("FSR_SHARED", ROOT.parent / "shared")) / "specs"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# rows of paper_results.csv per (paper, table): the number of values printed in each spec table
EXPECTED_ROWS = {
    ("wnet", "T1"): 168, ("wnet", "T2"): 48, ("wnet", "T3"): 16,
    ("fishfsrnet", "T1"): 140, ("fishfsrnet", "T2"): 30, ("fishfsrnet", "T3"): 16, ("fishfsrnet", "T4"): 6,
    ("sparnet", "T1"): 36, ("sparnet", "T2"): 4, ("sparnet", "T3"): 12, ("sparnet", "T4"): 20,
    ("sparnet", "T5"): 2, ("sparnet", "T6"): 16,
    ("aminet", "T1"): 24, ("aminet", "T2"): 10, ("aminet", "T3"): 10, ("aminet", "T4"): 24, ("aminet", "T5"): 14,
    ("aminet", "T6"): 12, ("aminet", "T7"): 136, ("aminet", "T8"): 20, ("aminet", "T9"): 40, ("aminet", "T10"): 44,
    ("thesis", "T4.1"): 12,
}

# spec file, the tables of its section 7 in order, and where that section's results tables end
SPEC_TABLES = {
    "000_wnet.md": (["T1", "T1", "T2", "T3"], "### Figures"),
    "001_fishfsrnet.md": (["T1", "T2", "T3", "T4"], "### Figures"),
    "002_sparnet.md": (["T1", "T2", "T3", "T4", "T5", "T6"], "**Numbers that appear only"),
    "003_aminet.md": ([f"T{i}" for i in range(1, 11)], "### Inconsistencies"),
    "004_thesis.md": (["T4.1"], "### 7.2"),
}
PAPER_OF = {"000_wnet.md": "wnet", "001_fishfsrnet.md": "fishfsrnet", "002_sparnet.md": "sparnet",
            "003_aminet.md": "aminet", "004_thesis.md": "thesis"}


# ============================================================================ paper_results.csv
@pytest.fixture(scope="module")
def paper():
    return RES.load_paper_results()


def test_paper_csv_schema(paper):
    raw = pd.read_csv(RES.PAPER_CSV, dtype=str, keep_default_na=False)
    assert list(raw.columns) == ["paper", "table", "block", "method", "method_key", "dataset", "scale", "metric",
                                 "value", "note"]
    for v in raw["value"]:
        float(v)  # every value parses
        assert re.fullmatch(r"-?\d+(\.\d+)?", v), v
    assert not raw.duplicated(["paper", "table", "block", "method", "dataset", "scale", "metric"]).any()
    assert set(raw["paper"]) == set(V.PAPERS)
    assert all(s == "" or s.isdigit() for s in raw["scale"])


def test_paper_csv_row_counts(paper):
    counts = Counter(zip(paper["paper"], paper["table"]))
    assert dict(counts) == EXPECTED_ROWS


def _spec_tables(text: str, end_marker: str) -> list[list[list[str]]]:
    """The Markdown tables of section 7 up to ``end_marker``: header row + body rows."""
    sec = text[text.index("## 7."):]
    sec = sec[:sec.index(end_marker)]
    tables, cur = [], []
    for ln in sec.splitlines():
        if ln.startswith("|"):
            cells = [c.strip() for c in ln.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                cur.append(cells)
        elif cur:
            tables.append(cur)
            cur = []
    if cur:
        tables.append(cur)
    return tables


def _spec_numbers(table: list[list[str]]) -> list[str]:
    """Every number printed in a spec table body (first column = row labels; Year not a result)."""
    header, body = table[0], table[1:]
    skip = {0} | {j for j, h in enumerate(header) if h.strip().lower() in ("year", "venue")}
    out = []
    for row in body:
        for j, cell in enumerate(row):
            if j in skip:
                continue
            s = re.sub(r"\*\*|</?u>", "", cell).strip().strip("_")
            for part in s.split("/"):
                part = re.sub(r"(%|ms|M|G)$", "", part.strip())
                if re.fullmatch(r"-?\d+(\.\d+)?", part):
                    out.append(part)
    return out


@pytest.mark.skipif(not SPECS.is_dir(), reason=f"specs not found at {SPECS}")
@pytest.mark.parametrize("spec_file", sorted(SPEC_TABLES))
def test_paper_csv_matches_spec_tables(paper, spec_file):
    """Recount: each spec table's numbers == the CSV values of that table (same multiset)."""
    ids, end = SPEC_TABLES[spec_file]
    tables = _spec_tables((SPECS / spec_file).read_text(), end)
    assert len(tables) == len(ids), f"{spec_file}: found {len(tables)} tables, expected {len(ids)}"
    want: dict[str, Counter] = {}
    for tid, tab in zip(ids, tables):
        want.setdefault(tid, Counter()).update(_spec_numbers(tab))
    p = paper[paper["paper"] == PAPER_OF[spec_file]]
    for tid, nums in want.items():
        got = Counter(p[p["table"] == tid]["value_str"])
        assert sum(nums.values()) == EXPECTED_ROWS[(PAPER_OF[spec_file], tid)], tid
        assert got == nums, f"{spec_file} {tid}: missing {nums - got}, extra {got - nums}"


@pytest.mark.parametrize("key,value", [
    (("wnet", "T1", "mode_I", "W-Net", "helen", 8, "lpips"), "0.1046"),
    (("wnet", "T1", "mode_II", "SPARNet [10]", "celeba", 8, "psnr"), "27.29"),
    (("wnet", "T2", "", "MRRNet [47]", "helen", 8, "identity_cos"), "0.6810"),
    (("wnet", "T3", "", "Exp.G", "celeba", 4, "psnr"), "31.37"),
    (("fishfsrnet", "T1", "", "Ours (FishFSRNet)", "average", None, "ssim"), "0.7917"),
    (("fishfsrnet", "T1", "", "DIC [19]", "helen", 16, "psnr"), "22.60"),
    (("fishfsrnet", "T4", "", "ParsingNet", "helen", 16, "parsing_acc"), "0.8672"),
    (("sparnet", "T1", "", "SPARNet", "helen", 8, "auc10"), "58.51"),
    (("sparnet", "T1", "", "Bicubic", "umd", 8, "identity_cos"), "0.1851"),
    (("sparnet", "T3", "", "DICNet", "helen_dic", 8, "time_s"), "0.065"),
    (("sparnet", "T6", "", "Pix2PixHD", "celeba_testn", None, "fid"), "43.1"),
    (("aminet", "T1", "", "LGFI w/o SKAF", "celeba", 8, "params_M"), "8.21"),
    (("aminet", "T6", "edff", "SFMNet [20]", "celeba", 8, "psnr"), "28.07"),
    (("aminet", "T9", "case_3", "AMINet", "scface", 8, "identity_cos"), "0.8601"),
    (("aminet", "T10", "", "CTCNet [5]", "celeba", 8, "macs_G"), "47.2"),
    (("thesis", "T4.1", "", "Proposed method 2", "celebamaskhq", 8, "lpips"), "0.1018"),
])
def test_paper_csv_pinned_values(paper, key, value):
    """Values land on the right method / dataset / scale / metric."""
    paper_, table, block, method, dataset, scale, metric = key
    sel = paper[(paper["paper"] == paper_) & (paper["table"] == table) & (paper["block"] == block)
                & (paper["method"] == method) & (paper["dataset"] == dataset) & (paper["metric"] == metric)]
    sel = sel[sel["scale"].isna()] if scale is None else sel[sel["scale"] == scale]
    assert list(sel["value_str"]) == [value]


# ============================================================================ fake results
PROTO = {"data": "celeba+helen mirror (fake)", "degradation": "matlab-bicubic", "crop_border": 0,
         "color": "y_bt601", "parser": "landmark", "budget": {"iters": 600, "batch": 8}}
LPIPS_REASON = "AlexNet backbone weights not on this machine (offline=true)"


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _result(root: Path, run: str, testset: str, metrics: dict, downstream: dict | None = None,
            protocol: dict | None = None, n: int = 50):
    key, scale, _ = parse_run_name(run)
    proto = {**PROTO, **(protocol or {})}
    missing = {k: LPIPS_REASON for k, v in metrics.items() if v is None}
    _dump(root / "results" / run / testset / "metrics.json",
          {"run": run, "method": key, "scale": scale, "testset": testset, "n_images": n,
           "metrics": metrics, "missing": missing, "protocol": proto})
    if downstream is not None:
        _dump(root / "results" / run / testset / "downstream.json",
              {"run": run, "method": key, "scale": scale, "testset": testset, "n_images": n,
               "metrics": downstream, "missing": {}, "protocol": proto})


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsr")
    _result(root, "sparnet-x8", "helen50", {"psnr": 24.1, "ssim": 0.70123, "lpips": None, "vif": 0.41},
            {"lmk_auc10": 43.21, "identity_cos": 0.61, "lmk_dist_px": 3.2},
            protocol={"params_M": 10.52, "macs_G": 7.13, "time_ms": 12.3})
    _result(root, "sparnet-x8", "celeba_test", {"psnr": 25.5, "ssim": 0.7401, "lpips": None},
            {"identity_cos": 0.5123}, protocol={"params_M": 10.52, "macs_G": 7.13, "time_ms": 12.3}, n=100)
    _result(root, "sparnet-x8-seed2", "helen50", {"psnr": 99.0, "ssim": 0.99})  # tagged run: not preferred
    _result(root, "bicubic-x8", "helen50", {"psnr": 23.0, "ssim": 0.63}, {"lmk_auc10": 4.0})
    _result(root, "bicubic-x4", "celeba_test", {"psnr": 26.9, "ssim": 0.79, "lpips": None},
            {"identity_cos": 0.70, "lmk_dist_px": 10.5}, n=100)
    _result(root, "wnet-x4", "celeba_test", {"psnr": 30.12, "ssim": 0.8899, "lpips": None},
            {"identity_cos": 0.8, "lmk_dist_px": 7.1}, n=100)
    _result(root, "wnet-x4", "helen50", {"psnr": 30.5, "ssim": 0.9, "lpips": None})
    _result(root, "wnet_expA-x4", "celeba_test", {"psnr": 28.0, "ssim": 0.83}, n=100)
    _result(root, "fishfsrnet-x8", "celeba_test", {"psnr": 26.2, "ssim": 0.77},
            protocol={"crop_border": 8, "parser": "bisenet"}, n=100)
    _result(root, "fishfsrnet_model1-x8", "celeba_test", {"psnr": 25.9, "ssim": 0.76}, n=100)
    _result(root, "aminet-x8", "celeba_test", {"psnr": 26.7, "ssim": 0.78, "vif": 0.44, "lpips": 0.2},
            protocol={"params_M": 12.87, "macs_G": 9.4, "time_ms": 20.0}, n=100)
    _result(root, "pgnet-x8", "celeba_test", {"psnr": 24.0, "ssim": 0.7, "lpips": 0.21}, n=100)
    _result(root, "pgnet-x8", "celebamask_test", {"psnr": 24.0, "ssim": 0.7, "lpips": 0.21}, n=98)   # thesis T4.1 (†)
    for s in (4, 8, 16):
        _result(root, f"parsingnet-x{s}", "celeba_test", {"parsing_acc": 0.9 - 0.01 * s}, n=100)
    _dump(root / "runs" / "sparnet-x8" / "run.json", {"run": "sparnet-x8", "budget": {"iters": 600, "batch": 8}})
    _dump(root / "runs" / "srcnn-x4" / "run.json", {"run": "srcnn-x4", "params_M": 0.057})  # trained only
    ours = RES.load_results(root / "results", root / "runs")
    out = root / "reports" / "tables"
    written = T.build_all(root / "results", root / "runs", out)
    return {"root": root, "ours": ours, "out": out, "written": written}


def _cell(df, method, col):
    row = df[df["Method"] == method]
    assert len(row) == 1, (method, list(df["Method"]))
    return row.iloc[0][col]


def test_load_results_long_format(fake):
    ours = fake["ours"]
    for c in ("run", "method_key", "scale", "testset", "metric", "value", "missing_reason", "crop_border",
              "color", "parser", "budget", "protocol"):
        assert c in ours.columns
    r = ours[(ours["run"] == "sparnet-x8") & (ours["testset"] == "helen50")]
    assert r[r["metric"] == "psnr"]["value"].iloc[0] == pytest.approx(24.1)
    lp = r[r["metric"] == "lpips"].iloc[0]
    assert np.isnan(lp["value"]) and lp["missing_reason"] == LPIPS_REASON
    assert set(r[r["metric"] == "params_M"]["source"]) == {"protocol"}
    assert (ours[ours["run"] == "wnet_expA-x4"]["method_key"] == "wnet_expA").all()
    assert r["budget"].iloc[0] == "600 iters × batch 8"
    srcnn = ours[ours["run"] == "srcnn-x4"]
    assert list(srcnn["testset"]) == [""] and srcnn["metric"].iloc[0] == "params_M"


def test_tables_paper_values_verbatim(fake, paper):
    """Every transcribed number appears, as printed, on the paper side of some cell."""
    for (pp, tid), g in paper.groupby(["paper", "table"]):
        shown = Counter()
        for spec in (s for s in SP.TABLES if s.paper == pp and s.table == tid):
            df = pd.read_csv(fake["out"] / f"{spec.name}.csv", dtype=str, keep_default_na=False)
            for c in df.columns:
                for v in df[c]:
                    if " / " in v:
                        shown[v.split(" / ", 1)[0]] += 1
        need = Counter(g["value_str"])
        assert not (need - shown), f"{pp} {tid}: not shown {need - shown}"


def test_tables_ours_in_right_cells(fake, paper):
    ours = fake["ours"]
    df = T.build_table(SP.TABLES_BY_NAME["sparnet_t1"], ours, paper)
    assert _cell(df, "SPARNet", "Helen ×8 PSNR↑") == "26.59 / 24.10"          # untagged run preferred
    assert _cell(df, "SPARNet", "Helen ×8 SSIM↑") == "0.7716 / 0.7012"
    assert _cell(df, "SPARNet", "Helen ×8 AUC@10% (%)↑") == "58.51 / 43.21"
    assert _cell(df, "Bicubic", "Helen ×8 AUC@10% (%)↑") == "4.42 / 4.00"
    assert _cell(df, "SPARNet", "UMD ×8 ID cos↑") == "0.5546 / 0.5123†"      # stand-in test set
    assert _cell(df, "SPARNet", "ours run") == "sparnet-x8"
    df = T.build_table(SP.TABLES_BY_NAME["wnet_t1_mode_i"], ours, paper)
    assert _cell(df, "W-Net", "CelebA ×4 PSNR↑") == "31.77 / 30.12"
    assert _cell(df, "W-Net", "Helen ×4 SSIM↑") == "0.9251 / 0.9000"
    assert _cell(df, "Bicubic", "CelebA ×4 SSIM↑") == "0.8002 / 0.7900"
    df = T.build_table(SP.TABLES_BY_NAME["wnet_t2"], ours, paper)
    assert _cell(df, "W-Net", "CelebA ×4 Lmk dist (px)↓") == "6.98 / 7.10"
    df = T.build_table(SP.TABLES_BY_NAME["wnet_t3"], ours, paper)
    assert _cell(df, "Exp.A", "CelebA ×4 PSNR↑") == "28.69 / 28.00"
    assert _cell(df, "Exp.H", "CelebA ×4 PSNR↑") == "31.63 / 30.12"          # falls back to wnet-x4
    assert "config" in df.columns and "Parsing Block" in _cell(df, "Exp.B", "config")
    df = T.build_table(SP.TABLES_BY_NAME["fishfsrnet_t3"], ours, paper)
    assert _cell(df, "Model 1", "CelebA ×8 PSNR↑") == "27.21 / 25.90"
    assert _cell(df, "Model 8", "CelebA ×8 PSNR↑") == "27.54 / 26.20"
    df = T.build_table(SP.TABLES_BY_NAME["fishfsrnet_t4"], ours, paper)
    assert _cell(df, "ParsingNet", "CelebA ×16 Parsing acc↑") == "0.9564 / 0.7400"
    df = T.build_table(SP.TABLES_BY_NAME["aminet_t10"], ours, paper)
    assert _cell(df, "AMINet", "CelebA ×8 Params (M)") == "12.62 / 12.87"
    assert _cell(df, "AMINet", "CelebA ×8 Time (ms)") == "35 / 20"
    df = T.build_table(SP.TABLES_BY_NAME["sparnet_t3"], ours, paper)
    assert _cell(df, "SPARNet", "Helen (DIC) ×8 Time (s)") == "0.051 / 0.012"   # ms -> s, run-level: no †
    assert _cell(df, "SPARNet", "Helen (DIC) ×8 PSNR↑") == "26.97 / 24.10†"   # helen50 stands in
    df = T.build_table(SP.TABLES_BY_NAME["thesis_t4_1"], ours, paper)
    assert _cell(df, "Proposed method 1", "CelebAMask-HQ ×8 PSNR↑") == "24.66 / 24.00†"


def test_tables_missing_cells_have_reasons(fake, paper):
    ours = fake["ours"]
    df = T.build_table(SP.TABLES_BY_NAME["wnet_t1_mode_i"], ours, paper)
    assert _cell(df, "W-Net", "CelebA ×4 LPIPS↓") == f"0.0482 / – (metric missing: {LPIPS_REASON})"
    assert _cell(df, "FSRNet [7]", "CelebA ×4 PSNR↑") == "31.37 / – (not implemented in fsrlib)"
    assert _cell(df, "EDSR [46]", "CelebA ×4 PSNR↑") == \
        "31.50 / – (not trained in this profile: no run edsr-x4)"
    assert _cell(df, "SRCNN [45]", "CelebA ×4 PSNR↑") == \
        "28.01 / – (not evaluated on celeba_test: run srcnn-x4 has no results there)"
    assert _cell(df, "W-Net", "CelebA ×8 PSNR↑").startswith("27.54 / – (not trained in this profile")
    df = T.build_table(SP.TABLES_BY_NAME["aminet_t9"], ours, paper)
    assert _cell(df, "AMINet", "Case 1").startswith("0.8533 / – (test set not available: SCface")
    df = T.build_table(SP.TABLES_BY_NAME["sparnet_fig5_fig7"], ours, paper)
    assert _cell(df, "SPARNet-V1", "Helen ×8 PSNR↑") == \
        "– (not reported by the paper) / – (not trained in this profile: no run sparnet_v1-x8)"
    assert _cell(df, "SPARNet (V16-S4)", "Helen ×8 PSNR↑") == "26.59 / 24.10"
    df = T.build_table(SP.TABLES_BY_NAME["fishfsrnet_t1"], ours, paper)
    assert _cell(df, "Ours (FishFSRNet)", "Avg PSNR↑") == "27.49 / – (mean needs all 6 settings (1 available))"
    assert _cell(df, "Ours (FishFSRNet)", "CelebA ×8 PSNR↑") == "27.54 / 26.20"
    # every cell of every table: a number on each side, or a dash with a reason
    side = re.compile(r"^(-?\d+(\.\d+)?†?|– \(.+\))$")
    for spec in SP.TABLES:
        df = T.build_table(spec, ours, paper)
        for c in df.columns:
            if c in ("Method", "ours run", "config"):
                continue
            for v in df[c]:
                p, o = (v.split(") / ", 1)[0] + ")", v.split(") / ", 1)[1]) if v.startswith("– (") \
                    else v.split(" / ", 1)
                assert side.match(p) and side.match(o), (spec.name, c, v)


def test_tables_hr_row_is_optional(fake, paper):
    df = T.build_table(SP.TABLES_BY_NAME["wnet_t2"], fake["ours"], paper)
    assert "HR (reference)" not in set(df["Method"])


def test_written_files_and_captions(fake):
    out = fake["out"]
    for spec in SP.TABLES:
        md = (out / f"{spec.name}.md").read_text()
        assert (out / f"{spec.name}.csv").stat().st_size > 0
        assert md.startswith("# ") and "| Method |" in md
    md = (out / "wnet_t1_mode_i.md").read_text()
    for s in ("Y channel (y_bt601)", "crop border 0 px", "parser: landmark", "600 iters × batch 8",
              "matlab-bicubic", "celeba_test (n=100)", "scale: ×4", "Paper (W-Net"):
        assert s in md, s
    assert "[1]" in md and "Missing values:" in md  # reasons become footnotes in Markdown
    csv = pd.read_csv(out / "wnet_t1_mode_i.csv", dtype=str, keep_default_na=False)
    assert "not implemented in fsrlib" in " ".join(csv.to_numpy().ravel())  # and stay inline in the CSV
    fish = (out / "fishfsrnet_t3.md").read_text()
    assert "8 px (fishfsrnet-x8)" in fish and "0 px (fishfsrnet_model1-x8)" in fish  # varying protocol named
    thesis = (out / "thesis_t4_1.md").read_text()
    assert "† stand-in test set" in thesis
    index = (out / "README.md").read_text()
    assert all(f"({s.name}.md)" in index for s in SP.TABLES) and "ours_summary.md" in index
    assert "`wnet_expA`" in index
    summ = pd.read_csv(out / "ours_summary.csv", dtype=str, keep_default_na=False)
    assert {"sparnet-x8", "wnet-x4"} <= set(summ["run"])
    assert not list(out.glob(".*"))  # no temporary files left


def test_build_table_without_results(paper):
    df = T.build_table(SP.TABLES_BY_NAME["aminet_t7"], None, paper)
    assert _cell(df, "AMINet", "CelebA ×8 PSNR↑") == "28.26 / – (not trained in this profile: no run aminet-x8)"
    assert "no results" in T.table_caption(SP.TABLES_BY_NAME["aminet_t7"], df, None)


def test_expected_method_keys(paper):
    keys = T.expected_method_keys(paper)
    for k in ("bicubic", "sparnet", "fishfsrnet_model1", "wnet_expH", "aminet_s", "pgnet_gan", "parsingnet"):
        assert k in keys
    assert all("-x" not in k for k in keys)


# ============================================================================ figures
def _png(p: Path) -> bool:
    return Path(p).is_file() and Path(p).read_bytes()[:8] == PNG_MAGIC


def _faces(n=2, size=128, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def _landmarks(n=2):
    base = np.zeros((68, 2))
    base[:, 0] = np.linspace(20, 108, 68)
    base[:, 1] = 64
    base[36:48] = np.c_[np.linspace(35, 95, 12), np.full(12, 55)]
    base[48:68] = np.c_[np.linspace(45, 85, 20), np.full(20, 95) + np.sin(np.arange(20))]
    return [base + i for i in range(n)]


def test_figure_qualitative_grid(tmp_path):
    hr = _faces()
    lr = [h[::8, ::8] for h in hr]
    sr = {"bicubic": [h.astype(np.float32) / 255 for h in hr], "sparnet": hr}
    p = F.qualitative_grid(lr, hr, sr, tmp_path / "q" / "grid_x8.png", landmarks=_landmarks(), names=["a", "b"],
                           title="×8", metrics={"sparnet": [25.1, 26.3]})
    assert _png(p) and p.name == "grid_x8.png"
    p2 = F.qualitative_grid(lr, hr, sr, tmp_path / "grid_nolmk.png")
    assert _png(p2)
    assert not list((tmp_path / "q").glob(".*"))


def test_figure_landmarks_npz(tmp_path):
    lm = np.stack(_landmarks(3))
    np.savez(tmp_path / "landmarks.npz", names=np.array(["celeba/a", "celeba/b", "helen/c"]), landmarks=lm)
    got = F.load_landmarks(tmp_path / "landmarks.npz", ["b", "helen/c"])
    assert got["b"].shape == (68, 2) and np.allclose(got["helen/c"], lm[2])
    box = F.landmark_box(lm[0], F.LMK_EYES, (128, 128))
    assert 0 <= box[0] < box[2] <= 128 and 0 <= box[1] < box[3] <= 128


def test_figure_attention_maps(tmp_path):
    rng = np.random.default_rng(1)
    maps = [rng.random((16, 16)), rng.random((1, 32, 32)), rng.random((8, 64, 64))]
    assert _png(F.attention_maps(maps, tmp_path / "att.png", image=_faces(1)[0], stage_names=["14", "15", "16"]))
    assert _png(F.attention_maps(maps, tmp_path / "att_noimg.png"))


def test_figure_parsing_maps(tmp_path):
    rng = np.random.default_rng(2)
    skin_lr = [np.repeat(rng.random((1, 16, 16)), 3, 0) for _ in range(2)]        # ParsingNet, LR size
    wnet = [rng.random((128, 128)) for _ in range(2)]                              # W-Net binary map
    parts = [rng.random((11, 128, 128)) for _ in range(2)]                         # thesis 11 maps
    labels = [rng.integers(0, 19, (128, 128)) for _ in range(2)]
    p = F.parsing_maps({"parsingnet": skin_lr, "wnet": wnet, "pgnet": parts}, tmp_path / "parsing.png",
                       images=_faces(), targets=labels, title="parsing")
    assert _png(p)
    onehot = np.zeros((11, 1, 4))
    onehot[[0, 5, 7], 0, [0, 1, 2]] = 1.0  # pixel 3: no channel >= 0.5 -> background
    lab, soft = F.parsing_to_labels(onehot)
    assert soft is None and lab[0].tolist() == [1, 10, 11, 0]  # skin, nose, mouth in the 19-class space
    lab, soft = F.parsing_to_labels(skin_lr[0])
    assert lab is None and soft.shape == (16, 16)


def _fake_dvclive(d: Path, n: int = 5, timestamp: bool = False) -> None:
    """What dvclive 3.x writes for ``log_metric("train/loss")`` etc.: one TSV per metric under
    ``plots/metrics/<path>.tsv`` with columns ``step``, ``<last name>`` (and ``timestamp``)."""
    for name, f in (("train/loss", lambda i: 1.0 / (i + 1)), ("val/psnr", lambda i: 20.0 + i)):
        p = d / "plots" / "metrics" / f"{name}.tsv"
        p.parent.mkdir(parents=True, exist_ok=True)
        head = ["timestamp"] if timestamp else []
        lines = ["\t".join([*head, "step", name.split("/")[-1]])]
        lines += ["\t".join([*([str(1700000000000 + i)] if timestamp else []), str(i), str(f(i))]) for i in range(n)]
        p.write_text("\n".join(lines) + "\n")


def test_figure_training_curves(tmp_path):
    curves = {}
    for run, ts in (("sparnet-x8", False), ("wnet-x4", True)):
        d = tmp_path / "runs" / run / "dvclive"
        _fake_dvclive(d, timestamp=ts)
        curves[run] = F.read_dvclive(d)
    assert set(curves["wnet-x4"]["metric"]) == {"train/loss", "val/psnr"}
    assert len(curves["wnet-x4"]) == 10
    assert curves["sparnet-x8"].query("metric == 'val/psnr'")["value"].tolist() == [20, 21, 22, 23, 24]
    assert _png(F.training_curves(curves, tmp_path / "curves.png", smooth=2, scale_loss=100))


def test_figure_psnr_vs_cost(tmp_path, paper, fake):
    pts = F.cost_points(paper, fake["ours"])
    assert {"paper", "ours"} == set(pts["source"])
    assert (pts[pts["label"] == "AMINet"]["params_M"] == 12.62).all()
    assert _png(F.psnr_vs_cost(pts, tmp_path / "cost.png", title="×8 CelebA"))


def test_figure_downstream_curves(tmp_path):
    rng = np.random.default_rng(3)
    sims = {"bicubic": rng.uniform(0.2, 0.6, 50), "wnet": rng.uniform(0.5, 0.9, 50)}
    assert _png(F.identity_threshold_curve(sims, tmp_path / "id.png", title="CelebA ×8"))
    nme = {"baseline": rng.uniform(0, 0.12, 50), "sparnet": np.r_[rng.uniform(0, 0.08, 49), np.nan]}
    assert _png(F.ced_curve(nme, tmp_path / "ced.png"))
    assert F.ced_auc([0.0, 0.0]) == pytest.approx(1.0)
    assert F.ced_auc([1.0]) == pytest.approx(0.0)
    assert F.ced_auc([0.05]) == pytest.approx(0.5, abs=1e-3)


def test_markdown_footnotes_when_both_sides_are_missing():
    """Each side's reason becomes its own footnote (the HR row: no paper value, no PSNR)."""
    from fsrlib.report.results import _budget_str
    from fsrlib.report.tables import _markdown
    from fsrlib.report.vocabulary import MISSING

    df = pd.DataFrame({"PSNR": [f"{MISSING} (not reported by the paper) / {MISSING} (metric missing: psnr)",
                                f"{MISSING} (not reported by the paper) / 27.50",
                                "26.59 / 23.81", f"{MISSING} (not implemented in fsrlib)"]})
    md, notes = _markdown(df)
    assert notes == ["not reported by the paper", "metric missing: psnr", "not implemented in fsrlib"]
    assert f"{MISSING} [1] / {MISSING} [2]" in md and f"{MISSING} [1] / 27.50" in md
    assert "26.59 / 23.81" in md and f"| {MISSING} [3] |" in md
    # untrained rows (bicubic, HR) have no budget to describe; trained ones do
    assert _budget_str({"iters": 0, "batch": 0, "train_time_s": 0.0}) == ""
    assert _budget_str({"iters": None, "batch": None}) == ""
    # wall time and device are per-run facts (runs.md), never in a caption
    assert _budget_str({"iters": 500, "batch": 8, "device": "cpu", "train_time_s": 53.7}) == "500 iters × batch 8"


# ============================================================================ readable captions (issue 13)
def test_captions_are_short_and_link_runs_md(fake):
    from fsrlib.report.captions import CAPTION_MAX
    out = fake["out"]
    for spec in [*SP.TABLES, None]:
        name = spec.name if spec is not None else "ours_summary"
        md = (out / f"{name}.md").read_text()
        caption = md.split("\n\n|", 1)[0]  # title and caption lines, up to the table
        assert len(caption) < CAPTION_MAX, (name, len(caption), caption)
        assert 2 <= len([ln for ln in caption.splitlines() if ln.strip()]) <= 3, (name, caption)
        assert "[runs.md](runs.md)" in caption and "train_time_s" not in md and "wall" not in caption


def test_runs_table_written(fake):
    out = fake["out"]
    md = (out / "runs.md").read_text()
    runs = pd.read_csv(out / "runs.csv", dtype=str, keep_default_na=False)
    assert {"sparnet-x8", "srcnn-x4"} <= set(runs["run"])
    for c in ("iterations", "batch", "images_seen", "wall_time_s", "device", "seed", "params_M", "macs_G"):
        assert c in runs.columns and f" {c} " in md
    assert "[runs](runs.md)" in (out / "README.md").read_text()


def test_no_machine_paths_in_tables(tmp_path):
    """A missing-metric reason that names a file under the home folder is written portably."""
    from fsrlib.metrics.learned import _resolve_weights
    from fsrlib.report.captions import portable
    _, reason = _resolve_weights("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", None, True,
                                 "AlexNet backbone")
    if reason:  # absent here: the reason names the torch hub cache, not this machine's home folder
        assert "$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth" in reason and str(Path.home()) not in reason
    home = f"{Path.home()}/.cache/torch/hub/checkpoints/x.pth"
    assert portable(f"expected {home}") == "expected $TORCH_HOME/hub/checkpoints/x.pth"
    _result(tmp_path, "aminet-x8", "celeba_test", {"psnr": 26.7, "ssim": 0.78, "lpips": None}, n=100)
    mj = tmp_path / "results" / "aminet-x8" / "celeba_test" / "metrics.json"
    obj = json.loads(mj.read_text())
    obj["missing"]["lpips"] = f"weights not found at {Path.home()}/models/alexnet.pth"
    mj.write_text(json.dumps(obj))
    T.build_all(tmp_path / "results", tmp_path / "runs", tmp_path / "tables")
    for f in (tmp_path / "tables").iterdir():
        text = f.read_text()
        assert str(Path.home()) not in text and str(tmp_path) not in text, f.name
    assert "~/models/alexnet.pth" in (tmp_path / "tables" / "aminet_t7.md").read_text()


def test_captions_short_with_the_pipelines_protocol(tmp_path):
    """Protocol strings as the evaluate stage writes them, x4 and x8 runs, long budgets."""
    def proto(ts, n, s, iters):
        return {"data": f"{ts}: {n} faces (celeba test), dlib-aligned 128x128 (margin 1.2), trained on celeba:train",
                "degradation": f"MATLAB imresize bicubic x{s} (antialiased, a=-0.5, boundary symmetric, round "
                               "between passes True)", "crop_border": 0, "color": "y_bt601 (PSNR/SSIM); VIF on Y",
                "parser": "landmark", "budget": {"iters": iters, "batch": 8, "train_time_s": 53.7, "device": "cpu"}}
    for run, it in (("bicubic-x4", 0), ("bicubic-x8", 0), ("wnet-x4", 1500), ("wnet-x8", 250), ("fishfsrnet-x8", 100),
                    ("fishfsrnet-x4", 100), ("sparnet-x8", 500), ("aminet-x8", 250), ("pgnet-x8", 250)):
        s = parse_run_name(run)[1]
        for ts, n in (("celeba_test", 464), ("helen50", 50)):
            _result(tmp_path, run, ts, {"psnr": 25.0, "ssim": 0.7, "lpips": None, "vif": 0.3},
                    {"identity_cos": 0.6, "lmk_dist_px": 3.0}, protocol=proto(ts, n, s, it), n=n)
    from fsrlib.report.captions import CAPTION_MAX
    out = tmp_path / "tables"
    T.build_all(tmp_path / "results", tmp_path / "runs", out)
    for p in out.glob("*.md"):
        if p.name in ("README.md", "runs.md"):
            continue
        caption = p.read_text().split("\n\n|", 1)[0]
        assert len(caption) < CAPTION_MAX, (p.name, len(caption), caption)
        assert "53.7" not in p.read_text()
    md = (out / "wnet_t1_mode_i.md").read_text()
    assert "MATLAB bicubic ×4/×8" in md and "celeba:train → celeba_test (464), helen50 (50)" in md


def test_report_model_cards(fake, tmp_path):
    """reports/cards/<run>.md: the run's card with its metrics per test set and their protocol."""
    from fsrlib.report.cards import write_report_cards
    written = write_report_cards(tmp_path / "cards", fake["ours"], None, fake["root"] / "runs")
    assert {p.name for p in written} == {"sparnet-x8.md", "srcnn-x4.md"}
    card = (tmp_path / "cards" / "sparnet-x8.md").read_text()
    assert "| helen50 | 50 | 24.10 | 0.7012 |" in card and "Protocol: Ours:" in card
    assert "[1] AlexNet backbone weights not on this machine" in card
    assert "fsr upscale photo.jpg --method sparnet --scale 8 --checkpoint runs/sparnet-x8/model.pt" in card


def test_headline_table(fake, paper):
    """Every x8 method on CelebA and Helen: paper / ours and the margin over bicubic."""
    from fsrlib.report.headline import headline_table
    lines = headline_table(fake["ours"], paper)
    assert lines and "CelebA PSNR paper / ours" in lines[0] and "Helen Δ bicubic paper / ours" in lines[0]
    row = next(ln for ln in lines if ln.startswith("| sparnet | sparnet-x8 |"))
    # SPARNet's own paper (Table I) prints Helen only; CelebA comes from AMINet Table VII
    assert "/ 25.50" in row and "/ 24.10" in row and "/ +1.10" in row  # 24.10 - bicubic-x8's 23.00 on helen50
    assert lines[2].startswith("| bicubic | bicubic-x8 |")


# ============================================================================ paper conventions (issue 11)
def _conventions_frame(rows):
    """protocol_sensitivity()'s long frame: (run, testset, convention, psnr, ssim) rows."""
    return pd.DataFrame([{"run": r, "scale": parse_run_name(r)[1], "testset": t, "n_images": 100, "convention": c,
                          "psnr": p, "ssim": s, "d_psnr": 0.0, "d_ssim": 0.0} for r, t, c, p, s in rows])


def test_tables_ours_under_the_papers_convention(fake, paper):
    ours = fake["ours"]
    ps = _conventions_frame([("fishfsrnet-x8", "celeba_test", "ref", 26.2, 0.77),
                             ("fishfsrnet-x8", "celeba_test", "family_A", 26.19, 0.7698),
                             ("fishfsrnet-x8", "celeba_test", "family_B", 26.8149, 0.79123),
                             ("wnet-x4", "celeba_test", "family_B", 31.0, 0.9)])
    spec = SP.TABLES_BY_NAME["fishfsrnet_t3"]
    assert spec.convention == "family_B" and SP.TABLES_BY_NAME["sparnet_t1"].convention == "family_A"
    df = T.build_table(spec, ours, paper, ps)
    assert _cell(df, "Model 8", "CelebA ×8 PSNR↑") == "27.54 / 26.81"          # family_B, not ref's 26.20
    assert _cell(df, "Model 8", "CelebA ×8 SSIM↑").endswith(" / 0.7912")
    assert _cell(T.build_table(spec, ours, paper), "Model 8", "CelebA ×8 PSNR↑") == "27.54 / 26.20"
    assert _cell(df, "Model 1", "CelebA ×8 PSNR↑") == ("27.21 / – (not re-scored under family_B: no saved SR "
                                                       "images of run fishfsrnet_model1-x8 on celeba_test)")
    cap = T.table_caption(spec, df, ours)
    assert "; ours under family B (Y round, crop 8, SSIM 7x7);" in cap and len(cap) < 400
    assert any("scored under family_B" in d for d in T.table_details(spec, df, ours))
    part = T.build_table(spec, ours, paper, ps.assign(n_images=40))      # save_images: 40 of the 100 faces
    assert "not re-scored under family_B: 40 of the 100 faces of celeba_test" in _cell(part, "Model 8",
                                                                                       "CelebA ×8 PSNR↑")
    # a ref table (W-Net Mode II) is unchanged by the frame; ours_summary keeps ref
    mode_ii = SP.TABLES_BY_NAME["wnet_t1_mode_ii"]
    assert T.build_table(mode_ii, ours, paper, ps).equals(T.build_table(mode_ii, ours, paper))
    assert _cell(T.build_table(SP.TABLES_BY_NAME["wnet_t1_mode_i"], ours, paper, ps), "W-Net",
                 "CelebA ×4 PSNR↑") == "31.77 / 31.00"
    # a test set the frame does not cover at all (report.protocol_testsets: helen50 only): ref value, marked
    helen_only = _conventions_frame([("fishfsrnet-x8", "helen50", "family_B", 25.0, 0.7)])
    fb = T.build_table(spec, ours, paper, helen_only)
    assert _cell(fb, "Model 8", "CelebA ×8 PSNR↑") == "27.54 / 26.20" + T.REF_MARK
    assert any(d.startswith(T.REF_MARK + " under the project's protocol") for d in T.table_details(spec, fb, ours))


# ============================================================================ ranking agreement (issue 11)
def test_rank_agreement_hand_computed():
    from fsrlib.report.ranking import rank_agreement
    # ranks 1 2 3 4 vs 1 3 2 4: sum d^2 = 2, rho = 1 - 6*2/(4*15) = 0.8; 1 of 6 pairs discordant, tau = 4/6
    s = rank_agreement([0.1, 0.2, 0.3, 0.4], [10.0, 30.0, 20.0, 40.0])
    assert s["rho"] == pytest.approx(0.8) and s["tau"] == pytest.approx(2 / 3)
    assert (s["n"], s["discordant"], s["pairs"]) == (4, 1, 6)
    assert rank_agreement([1, 2, 3], [3, 2, 1])["rho"] == pytest.approx(-1.0)


def _fake_downstream():
    ident = {"bicubic-x8": (0.50, 0.40), "sparnet-x8": (0.70, 0.65), "wnet-x8": (0.65, 0.70), "aminet-x8": (0.8, 0.8)}
    nme = {"bicubic-x8": (0.09, 0.10), "sparnet-x8": (0.05, 0.06), "wnet-x8": (0.06, 0.07), "aminet-x8": (0.04, 0.05)}
    d = {r: {"celeba_test": {"identity_cos": ident[r][0], "identity_cos_mobilefacenet": ident[r][1],
                             "lmk_nme_io": nme[r][0], "lmk_pfld_nme_io": nme[r][1]}} for r in ident}
    d["hr-x8"] = {"celeba_test": {"identity_cos": 1.0, "identity_cos_mobilefacenet": 1.0, "lmk_nme_io": 0.0,
                                  "lmk_pfld_nme_io": 0.0}}   # HR against itself: not a method, left out
    d["srcnn-x8"] = {"celeba_test": {"identity_cos": 0.55, "identity_cos_mobilefacenet": None}}  # one network only
    return d


def test_ranking_agreement_table_and_figure(tmp_path):
    from fsrlib.report.ranking import agreement_panels, agreement_table, write_agreement_table
    d = _fake_downstream()
    tab = agreement_table(d)
    ident = tab[tab["measure"] == "identity"].iloc[0]
    assert ident["n_runs"] == 4 and ident["pairs_in_disagreement"] == "1 of 6"   # sparnet vs wnet swap
    assert (ident["spearman_rho"], ident["kendall_tau"]) == ("0.80", "0.67")
    lmk = tab[tab["measure"] == "landmarks"].iloc[0]
    assert lmk["spearman_rho"] == "1.00" and lmk["pairs_in_disagreement"] == "0 of 6"
    md, csv = write_agreement_table(tab, tmp_path)
    assert md.name == "downstream_ranking_agreement.md" and csv.is_file()
    assert len(md.read_text().split("\n\n|", 1)[0]) < 400
    panels = agreement_panels(d, "celeba_test")
    assert [p["title"].split(":")[0] for p in panels] == ["identity", "landmarks"]
    assert "Spearman ρ = 0.80, Kendall τ = 0.67 (n = 4)" in panels[0]["title"]
    assert _png(F.ranking_agreement(panels, tmp_path / "rank.png", title="celeba_test"))


# ============================================================================ test-pick bias (issue 8)
def test_pick_bias_table(tmp_path):
    from fsrlib.report.pick_bias import pick_bias_table, write_pick_bias
    assert write_pick_bias(tmp_path / "results", tmp_path / "tables") == []   # no results: no table
    for run, sel, at, best, it in (("sparnet-x8", 200, 24.101, 24.31, 150), ("wnet-x8", 150, 23.5, 23.5, 150)):
        _result(tmp_path, run, "helen50", {"psnr": at, "ssim": 0.7})
        mj = tmp_path / "results" / run / "helen50" / "metrics.json"
        obj = json.loads(mj.read_text())
        obj["test_pick"] = {"testset": "helen50", "metric": "psnr", "iters": [50, 100, 150, 200],
                            "val_psnr": [20.0, 21.0, 22.0, 22.5], "test_psnr": [22.0, 23.0, best, at],
                            "selected_iter": sel, "selected_by": "val_psnr", "test_at_selected": at,
                            "test_best": best, "test_best_iter": it, "bias_db": best - at}
        mj.write_text(json.dumps(obj))
    _result(tmp_path, "bicubic-x8", "helen50", {"psnr": 23.0, "ssim": 0.63})     # untrained: no test_pick
    df = pick_bias_table(tmp_path / "results")
    assert list(df["run"]) == ["sparnet-x8", "wnet-x8", "mean / max over 2 runs"]
    r = df.iloc[0]
    assert (r["selected iter"], r["helen50 PSNR at selected"], r["best helen50 PSNR (iter)"], r["bias (dB)"]) == \
        ("200 (val_psnr)", "24.10", "24.31 (150)", "0.21")
    assert df.iloc[-1]["bias (dB)"] == "0.10 / 0.21"
    md, csv = write_pick_bias(tmp_path / "results", tmp_path / "tables")
    text = md.read_text()
    assert "picked on the test set" in text and len(text.split("\n\n|", 1)[0]) < 400 and str(tmp_path) not in text
