"""Params profiles: params/<name>.yaml overlays params.yaml; both validate with the registry."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from fsrlib.config import all_runs, run_config, validate_params
from fsrlib.profiles import BACKUP, apply, apply_overlay, list_profiles, load_profile, restore
from fsrlib.registry import MODELS
from fsrlib.train.schema import lint_params, validate_runs

ROOT = Path(__file__).resolve().parents[1]


def test_overlay_rules():
    base = yaml.safe_load("""
train: {threads: 2, max_val_images: 16, progress: true}
methods:
  a: {model: &a {type: sparnet, min_ch: 4}, iters: 10}
  b: {model: *a, iters: 5}
  c: {model: {type: srcnn}}
runs: {a-x8: {method: a, scale: 8}, c-x8: {method: c, scale: 8}}
""")
    over = yaml.safe_load("""
train: {threads: 8}
methods:
  a: {model: &a {type: sparnet}, iters: 1000}
  b: {model: *a, iters: 50}
runs: {c-x8: null}
""")
    eff = apply_overlay(base, over)
    assert eff["train"] == {"threads": 8, "max_val_images": 16, "progress": True}  # deep-merged
    assert eff["methods"]["a"] == {"model": {"type": "sparnet"}, "iters": 1000}  # replaced whole: no min_ch
    assert eff["methods"]["b"]["model"] is eff["methods"]["a"]["model"]  # the alias holds
    assert eff["methods"]["c"] == {"model": {"type": "srcnn"}} and list(eff["runs"]) == ["a-x8"]
    assert base["methods"]["a"]["model"]["min_ch"] == 4  # inputs untouched


@pytest.mark.parametrize("profile", [None, *list_profiles(ROOT)])
def test_profiles_validate_with_the_registry(profile):
    params = (yaml.safe_load((ROOT / "params.yaml").read_text()) if profile is None
              else load_profile(profile, ROOT / "params.yaml"))
    validate_params(params)
    validate_runs(params)  # every model and loss type and argument, against the registries
    assert lint_params(params) == []
    seen = set()
    for name in all_runs(params):  # every distinct model config builds (arguments accepted)
        cfg = run_config(params, name)["model"]
        key = json.dumps(cfg, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            MODELS.build(dict(cfg))


def test_paper_profile_is_an_overlay():
    over = yaml.safe_load((ROOT / "params/paper.yaml").read_text())
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, val in over.items():  # data sections hold only differences
        if section not in ("methods", "runs", "chained") and isinstance(val, dict):
            assert all(base.get(section, {}).get(k) != v for k, v in val.items()), section
    eff = load_profile("paper", ROOT / "params.yaml")
    assert eff["prepare"] == base["prepare"]  # not in the overlay: the demo's, by construction
    assert "ema" not in eff["methods"]["sparnet_released"]  # the released SPARNet trainer has no EMA
    assert eff["methods"]["sparnethd"]["ema"]["decay"] == 0.999


def test_apply_and_restore(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "params").mkdir()
    shutil.copy(ROOT / "params/paper.yaml", tmp_path / "params/paper.yaml")
    demo = (tmp_path / "params.yaml").read_text()
    apply("paper", tmp_path)
    eff = yaml.safe_load((tmp_path / "params.yaml").read_text())
    over = yaml.safe_load((tmp_path / "params/paper.yaml").read_text())
    assert eff == apply_overlay(yaml.safe_load((tmp_path / BACKUP).read_text()), over)  # what DVC reads now
    lint = lint_params(eff)
    assert lint == []  # aliases survive the written file
    with pytest.raises(Exception, match="already applied"):
        apply("paper", tmp_path)
    assert restore(tmp_path) and (tmp_path / "params.yaml").read_text() == demo
    assert not restore(tmp_path)
