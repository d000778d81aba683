"""params.yaml and params/paper.yaml through ``fsr check``; the one run-name grammar; the one
way to express an ablation and a GAN's generator; the downstream exclusion list."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from fsrlib.cli import main as fsr
from fsrlib.config import load_and_validate, load_params, parse_run_name, run_config, run_key, validate_params
from fsrlib.profiles import load_profile
from fsrlib.registry import ConfigError
from fsrlib.train.schema import lint_params, validate_runs

REPO = Path(__file__).resolve().parents[1]
PROFILES = [None, "paper"]  # params.yaml; params/paper.yaml is an overlay on it (fsrlib.profiles)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p or "params.yaml")
def test_profiles_pass_fsr_check(profile, capsys):
    path = REPO / "params.yaml"
    assert fsr(["--params", str(path), "check", *(["--profile", profile] if profile else [])]) == 0, \
        capsys.readouterr().err
    params = validate_runs(load_and_validate(path) if profile is None else load_profile(profile, path))
    validate_params(params)
    assert lint_params(params) == []
    # every GAN fine-tune's generator is its parent's by alias, not by copy
    methods = params["methods"]
    for name, r in params["chained"].items():
        m = methods[r["method"]]
        if m.get("recipe") == "gan" and r["from"] in params["runs"]:
            assert m["model"] is methods[params["runs"][r["from"]]["method"]]["model"], name


def test_run_name_grammar():
    assert parse_run_name("wnet_expA-x4") == ("wnet_expA", 4, "")
    assert parse_run_name("sparnet-x8-seed2") == ("sparnet", 8, "seed2")
    assert parse_run_name("hr-x16") == ("hr", 16, "")
    for bad in ("sparnet-x3", "folder-faces", "sparnet_x8", "-x8"):
        assert parse_run_name(bad)[1] is None
        with pytest.raises(ConfigError):
            run_key(bad)


def test_one_way_for_an_ablation_and_a_generator():
    params = load_params(REPO / "params.yaml")
    bad = copy.deepcopy(params)  # deepcopy keeps the alias structure; break it explicitly
    bad["methods"]["amigan"]["model"] = dict(bad["methods"]["aminet"]["model"])
    bad["runs"]["sparnet_baseline-x8"]["overrides"] = {"model": {"att_type": "none"}}
    problems = lint_params(bad)
    assert len(problems) == 2
    assert "sparnet_baseline" in problems[0] and "type: sparnet_baseline" in problems[0]
    assert "amigan" in problems[1] and "*<anchor>" in problems[1]
    # the preset and the spelled-out arguments build the same network
    ok = run_config(params, "sparnet_baseline-x8")["model"]
    assert ok["type"] == "sparnet_baseline"


def test_downstream_exclude_names_run_keys():
    params = load_params(REPO / "params.yaml")
    params["downstream"]["exclude"] = ["no_such_method"]
    with pytest.raises(ConfigError, match="exclude"):
        validate_params(params)
    params["downstream"].pop("exclude")
    params["downstream"]["runs"] = ["sparnet"]  # the old inclusion list is gone
    with pytest.raises(ConfigError, match="unknown key"):
        validate_params(params)


def test_evaluate_testsets_per_run():
    """Seed copies on testsets_seed_copies only; testsets_by_run limits a test set to some run keys."""
    from fsrlib.pipeline.evaluate import run_testsets

    ev = {"testsets": ["helen50", "celeba_test", "celebamask_test"], "testsets_seed_copies": ["helen50"],
          "testsets_by_run": {"celebamask_test": ["pgnet", "bicubic"]}}
    assert run_testsets(ev, "pgnet-x8") == ["helen50", "celeba_test", "celebamask_test"]
    assert run_testsets(ev, "sparnet-x8") == ["helen50", "celeba_test"]
    assert run_testsets(ev, "pgnet-x8-seed1") == ["helen50"]
    assert run_testsets({"testsets": ["helen50", "celeba_test"]}, "edsr-x8-seed2") == ["helen50", "celeba_test"]
