"""TsvLive (used where dvclive is not installed) writes the files dvclive writes."""
import json

import numpy as np

from fsrlib.train.live import TsvLive, files_only_live


def _log(live):
    live.log_params({"lr": 0.001, "model.type": "sparnet"})
    for step, loss in [(50, 0.5), (100, 0.25)]:
        live.step = step
        live.log_metric("train/loss", loss)
        live.log_metric("train/lr", 1e-3)
    live.log_metric("val/psnr", 22.5)
    live.log_image("val/100.png", np.full((8, 8, 3), 128, np.uint8))
    live.make_summary()


def test_tsvlive_matches_dvclive(tmp_path):
    a, b = tmp_path / "dvclive", tmp_path / "tsv"
    _log(files_only_live()(str(a), report=None, save_dvc_exp=False, dvcyaml=False))
    _log(TsvLive(str(b)))
    for rel in ("plots/metrics/train/loss.tsv", "plots/metrics/train/lr.tsv", "plots/metrics/val/psnr.tsv"):
        ra = [ln.split("\t") for ln in (a / rel).read_text().split("\n") if ln]
        rb = [ln.split("\t") for ln in (b / rel).read_text().split("\n") if ln]
        assert ra[0] == rb[0]
        assert [(int(s), float(v)) for s, v in ra[1:]] == [(int(s), float(v)) for s, v in rb[1:]]
    ma, mb = json.loads((a / "metrics.json").read_text()), json.loads((b / "metrics.json").read_text())
    assert ma == mb
    assert (b / "plots/images/val/100.png").exists() and (a / "plots/images/val/100.png").exists()
