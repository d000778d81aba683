"""A newcomer adds a method the README's way ("Add a method"): the model files and params
entries are the README's own code blocks, so README and code cannot drift apart.

Both toy methods (plain, and with a parsing map declared in ``maps``) go through the zoo's
contract, ``fsr check``, training, evaluation, the downstream stage's run list and (the one
with maps) the report's parsing figure, on a tiny real data root. The params sections their
stages read are recorded and must be the ones ``fsrlib.deps.STAGES`` declares for dvc.yaml.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from contract import check_sr_model
from fsrlib import deps
from fsrlib.cli import main as fsr
from fsrlib.config import load_and_validate, load_params
from fsrlib.pipeline import evaluate as evaluate_stage
from fsrlib.pipeline import train_stage
from fsrlib.pipeline.downstream import downstream_runs
from fsrlib.pipeline.report_models import FigureFaces, maps_figures
from fsrlib.registry import MODELS
from fsrlib.report.readme import ReportLog
from fsrlib.settings import deep_merge

REPO = Path(__file__).resolve().parents[1]


def readme_blocks() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Add a method"):]
    section = section[:section.index("\n## ", 3)]
    return re.findall(r"```(python|yaml)\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def toys(tmp_path_factory):
    """The README's two model files, imported as fsrlib.models.<name> (what the package's scan does)."""
    blocks = readme_blocks()
    assert [k for k, _ in blocks] == ["python", "yaml", "python", "yaml"]
    names, params = [], {}
    folder = tmp_path_factory.mktemp("models")
    for (_, code), (_, entries) in (blocks[0:2], blocks[2:4]):
        file = re.match(r"# fsrlib/models/(\w+)\.py", code)[1]
        (folder / f"{file}.py").write_text(code)
        spec = importlib.util.spec_from_file_location(f"fsrlib.models.{file}", folder / f"{file}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        names.append(file)
        params = deep_merge(params, yaml.safe_load(entries))
    yield names, params
    for n in names:
        MODELS.unregister(n)
        sys.modules.pop(f"fsrlib.models.{n}", None)


class Recording(dict):
    """A params dict that records which sections are read."""

    def __init__(self, d, seen):
        super().__init__(d)
        self.seen = seen

    def __getitem__(self, k):
        self.seen.add(k)
        return super().__getitem__(k)

    def get(self, k, default=None):
        self.seen.add(k)
        return super().get(k, default)


def _declared(stage: str) -> set[str]:
    secs = {p.split(".")[0] for p in deps.STAGES[stage].params}
    if "runs" in secs or "chained" in secs:  # a run's entry is looked up among runs and chained
        secs |= {"runs", "chained"}
    return secs


def test_readme_toy_methods_end_to_end(toys, tiny_data, tmp_path, monkeypatch):
    names, entries = toys
    for n in names:
        check_sr_model(n)  # the zoo's contract holds for the new files
    base = load_params(REPO / "params.yaml")
    params = deep_merge(base, entries)
    params["train"].update(train_set="celeba:train", val_set="celeba:test", max_train_images=4, max_val_images=2,
                           runs_root=str(tmp_path / "runs"), threads=1, progress=False)
    params["evaluate"].update(testsets=["helen50"], metrics=["psnr", "ssim"], max_images=2, save_images=True,
                              device="cpu", pil_lr_testsets=["helen50"], test_pick="helen50")
    params["train"]["select"] = {"rule": "val", "val_every": 1}   # 2 snapshots per run: a pick to measure
    for run in entries["runs"]:  # a 2-step schedule for the test (the README's entry says 500)
        params["runs"][run]["overrides"] = {"iters": 2, "batch_size": 2}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    assert fsr(["--params", str(path), "check"]) == 0

    seen: dict[str, set] = {"train": set(), "evaluate": set()}
    real_validate = train_stage.validate_runs
    monkeypatch.setattr(train_stage, "validate_runs", lambda p: Recording(real_validate(p), seen["train"]))
    monkeypatch.setattr(evaluate_stage, "load_and_validate",
                        lambda p: Recording(load_and_validate(p), seen["evaluate"]))
    results = tmp_path / "results"
    for n, run in zip(names, entries["runs"]):
        summary = train_stage.train_run(path, run, data_root=tiny_data, progress=False)
        assert summary["iterations"] == 2 and (tmp_path / "runs" / run / "model.pt").is_file()
        card = (tmp_path / "runs" / run / "README.md").read_text()  # the model card, by the train stage
        assert "## Training" in card and "MACs" in card and f"--checkpoint runs/{run}/model.pt" in card
        res = evaluate_stage.evaluate_run(path, run, data_root=tiny_data, results_root=results, progress=False)
        rec = json.loads((results / run / "helen50" / "metrics.json").read_text())
        assert rec["outputs_sr"] is True and rec["maps"] == list(MODELS.get(n).maps)
        assert res["helen50"]["metrics"]["psnr"] > 5 and len(list((results / run / "helen50" / "sr").rglob("*.png")))
        # the SR of PIL-bicubic LR (protocol_sensitivity's family A) and the test-pick measurement:
        # model.pt is the validation-selected snapshot, so its score is the pick's "at selected"
        assert len(list((results / run / "helen50" / "sr_pil").rglob("*.png"))) == 2 and rec["pil_lr"]["psnr"] > 5
        pick = rec["test_pick"]
        assert pick["iters"] == [1, 2] and pick["selected_iter"] in (1, 2)
        assert abs(pick["test_at_selected"] - res["helen50"]["metrics"]["psnr"]) < 1e-9
        assert pick["bias_db"] == max(pick["test_psnr"]) - pick["test_at_selected"] >= 0
    assert seen["train"] and seen["train"] <= _declared("train"), seen["train"]
    assert seen["evaluate"] and seen["evaluate"] <= _declared("evaluate"), seen["evaluate"]

    # the downstream stage measures both, with no line in params (downstream.exclude lists what it leaves out)
    runs = downstream_runs(load_and_validate(path), results)
    assert set(entries["runs"]) <= set(runs)

    # the report draws the parsing maps of the model that declares them, and none for the plain one
    log, fig_dir = ReportLog(), tmp_path / "figures"
    fig_dir.mkdir()
    maps_figures(log, FigureFaces(tiny_data, "helen50", 2), list(entries["runs"]), tmp_path / "runs", fig_dir, 1)
    made = [f["path"].name for f in log.figures]
    assert made == ["parsing_x8_helen50.png"], (made, log.notes)
    assert names[1] + "-x8" in log.figures[0]["caption"] and names[0] + "-x8" not in log.figures[0]["caption"]
