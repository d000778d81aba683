"""Which runs the downstream stage measures (the demo's params.yaml)."""
import copy

from fsrlib.config import load_and_validate
from fsrlib.pipeline.downstream import downstream_runs


def test_seed_copies_left_out_unless_asked(tmp_path):
    params = load_and_validate("params.yaml")
    runs = downstream_runs(params, tmp_path)
    assert "sparnet-x8" in runs and "hr-x8" in runs
    assert not [r for r in runs if "-seed" in r]
    assert "sparnethd-x8" not in runs                     # downstream.exclude
    p2 = copy.deepcopy(params)
    p2["downstream"]["seed_copies"] = True
    assert "sparnet-x8-seed1" in downstream_runs(p2, tmp_path)
