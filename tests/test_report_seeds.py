"""Seeds pooled in the report: mean/std/n over <run> and <run>-seed<k>, ours_summary's
n_seeds / psnr_std / ssim_std, and the two-standard-error tie rule."""
from __future__ import annotations

import math

import pandas as pd

from fsrlib.report.seeds import add_seed_columns, base_run, compare, is_tie, seed_stats
from fsrlib.report.tables import build_summary


def _ours():
    rows = []
    for run, p, s in [("sparnet-x8", 23.0, 0.60), ("sparnet-x8-seed1", 23.2, 0.62), ("sparnet-x8-seed2", 23.4, 0.64),
                      ("edsr-x8", 22.5, 0.58)]:
        for m, v in (("psnr", p), ("ssim", s)):
            rows.append({"run": run, "testset": "helen50", "metric": m, "value": v, "missing_reason": ""})
    return pd.DataFrame(rows)


def test_seed_stats_and_summary_columns():
    assert base_run("sparnet-x8-seed2") == "sparnet-x8" and base_run("sparnet_baseline-x8") == "sparnet_baseline-x8"
    st = seed_stats(_ours()).set_index(["run", "metric"])
    assert st.loc[("sparnet-x8", "psnr"), "n"] == 3
    assert math.isclose(st.loc[("sparnet-x8", "psnr"), "mean"], 23.2)
    assert math.isclose(st.loc[("sparnet-x8", "psnr"), "std"], 0.2)
    assert st.loc[("edsr-x8", "psnr"), "n"] == 1 and st.loc[("edsr-x8", "psnr"), "std"] == 0
    summ = add_seed_columns(build_summary(_ours()), _ours()).set_index("run")
    assert {"n_seeds", "psnr_std", "ssim_std"} <= set(summ.columns)
    assert summ.at["sparnet-x8", "n_seeds"] == 3 and summ.at["sparnet-x8", "psnr_std"] == "0.20"
    assert summ.at["sparnet-x8", "psnr"].startswith("23.2") and summ.at["edsr-x8", "n_seeds"] == 1
    assert summ.at["sparnet-x8-seed1", "n_seeds"] == 1


def test_two_standard_error_tie():
    assert is_tie(23.2, 0.1, 23.0, 0.05)          # 0.2 < 2 * 0.112
    assert not is_tie(23.5, 0.05, 23.0, 0.05)     # 0.5 > 2 * 0.071
    assert compare(23.2, 0.1, 23.0, 0.05).startswith("tie") and compare(23.5, 0.05, 23.0, 0.05) == "23.50 > 23.00"


def _ours_more():
    extra = [("bicubic-x8", 23.1, 0.61), ("sparnet_baseline-x8", 23.9, 0.66), ("sparnet_baseline-x8-seed1", 23.8, 0.65),
             ("sparnet_baseline-x8-seed2", 24.0, 0.67), ("srgan-x8", 22.0, 0.55), ("srresnet-x8", 23.6, 0.63)]
    rows = [{"run": r, "testset": "helen50", "metric": m, "value": v, "missing_reason": ""}
            for r, p, s in extra for m, v in (("psnr", p), ("ssim", s))]
    return pd.concat([_ours(), pd.DataFrame(rows)], ignore_index=True)


def test_margin_over_bicubic_marks_ties():
    from fsrlib.report.seeds import add_margin_column
    ours = _ours_more()
    summ = add_margin_column(add_seed_columns(build_summary(ours), ours), ours).set_index("run")
    assert summ.at["sparnet-x8", "psnr_vs_bicubic"] == "+0.10 (tie)"      # 0.1 < 2 * 0.2 / sqrt(3)
    assert summ.at["sparnet_baseline-x8", "psnr_vs_bicubic"] == "+0.80"   # 0.8 > 2 * 0.1 / sqrt(3)
    assert summ.at["edsr-x8", "psnr_vs_bicubic"] == "-0.60" and summ.at["bicubic-x8", "psnr_vs_bicubic"] == ""


def test_ablation_contradiction_and_gan_notes():
    from fsrlib.report.seeds import ablation_notes, below_reference_notes
    (line,) = ablation_notes(_ours_more())
    assert "CONTRADICTS" in line and "23.20" in line and "23.90" in line
    (gan,) = below_reference_notes(_ours_more(), {"srgan-x8": "srresnet-x8", "sparnet-x8": "edsr-x8"})
    assert gan.startswith("srgan-x8 ends below bicubic-x8") and "-1.60 dB" in gan and "-0.0800" in gan
