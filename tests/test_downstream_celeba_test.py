"""The downstream stage on celeba_test faces (the official test partition): both identity
networks' verification, PFLD beside dlib, the ROC scores and figure, in a project of its own."""
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

MODELS = REPO.parent / "shared" / "models"


@pytest.fixture(scope="module")
def project(tmp_path_factory, mirror):
    if not (mirror / "celeba_test").is_dir() or not (MODELS / "pfld_68pt.onnx").is_file():
        pytest.skip("celeba_test or the shared models are missing")
    from fsrlib.data.download import build_raw_index
    from fsrlib.pipeline.prepare import prepare

    root = tmp_path_factory.mktemp("ds")
    raw = root / "data" / "raw" / "celeba_test"
    ids = pd.read_csv(mirror / "celeba_test" / "identity.csv").sort_values("file")
    ids = ids[ids.face_extent_px > 90]
    ids = ids[ids.identity.isin(sorted(set(ids.identity))[:8])].groupby("identity").head(2)
    (raw / "images").mkdir(parents=True)
    for f in ids.file:
        shutil.copy(mirror / "celeba_test" / "images" / f, raw / "images" / f)
    ids.to_csv(raw / "identity.csv", index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"].update(workers=1)
    params["downstream"].update(testsets=["celeba_test"], dlib_max_images=6,
                                mobilefacenet_weights=str(MODELS / "mobilefacenet_casia_068.ckpt"),
                                pfld_weights=str(MODELS / "pfld_68pt.onnx"), pfld_testsets=None)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    faces, _ = prepare(build_raw_index(root / "data" / "raw"), root / "data" / "faces", params["prepare"],
                       progress=False, raw_root=root / "data" / "raw")
    sr = root / "results" / "bicubic-x8" / "celeba_test" / "sr" / "celeba_test"
    sr.mkdir(parents=True)
    for n in faces.name:  # a stand-in SR: 16 px and back
        hr = cv2.imread(str(root / "data" / "faces" / "celeba_test" / f"{n}.png"))
        cv2.imwrite(str(sr / f"{n}.png"), cv2.resize(cv2.resize(hr, (16, 16), interpolation=cv2.INTER_AREA),
                                                     (128, 128), interpolation=cv2.INTER_CUBIC))
    return root, faces


def test_downstream_stage_verifies_with_both_networks(project):
    from fsrlib.pipeline.downstream import downstream_run, plot_roc

    root, faces = project
    assert set(faces.split) == {"test"} and faces.identity.nunique() >= 7
    cache = {}
    out = {run: downstream_run(root / "params.yaml", run, data_root=root / "data", results_root=root / "results",
                               out_root=root / "downstream", progress=False, hr_cache=cache)["celeba_test"]
           for run in ("hr-x8", "bicubic-x8")}
    hr, bic = out["hr-x8"]["metrics"], out["bicubic-x8"]["metrics"]
    assert hr["n_identities"] == faces.identity.nunique()
    assert hr["verif_mobilefacenet_n_identities"] == faces.identity.nunique()
    assert hr["verif_dlib_n_identities"] == 3 and bic["dlib_n_images"] == 6  # capped by whole identities
    assert hr["verif_mobilefacenet_auc"] >= bic["verif_mobilefacenet_auc"]
    assert hr["identity_cos_mobilefacenet"] == pytest.approx(1.0) and bic["identity_cos_mobilefacenet"] < 0.9
    assert hr["lmk_pfld_nme_io"] == pytest.approx(0.0) and bic["lmk_pfld_nme_io"] > 0
    assert any(isinstance(k, tuple) and k[0] == "pfld_hr" for k in cache)   # PFLD's HR half: once per stage
    # pfld_testsets leaves a test set out, and says so in the params' terms
    p2 = yaml.safe_load((root / "params.yaml").read_text())
    p2["downstream"]["pfld_testsets"] = ["helen50"]
    (root / "params_pf.yaml").write_text(yaml.safe_dump(p2, sort_keys=False))
    r2 = downstream_run(root / "params_pf.yaml", "bicubic-x8", data_root=root / "data", results_root=root / "results",
                        out_root=root / "downstream_pf", progress=False, hr_cache=cache)["celeba_test"]
    assert r2["metrics"]["lmk_pfld_nme_io"] is None and "pfld_testsets" in r2["missing"]["lmk_pfld_nme_io"]
    assert r2["metrics"]["verif_mobilefacenet_auc"] == bic["verif_mobilefacenet_auc"]
    assert "identity_model_2" in out["hr-x8"]["protocol"] and "landmark_model_2" in out["hr-x8"]["protocol"]
    z = np.load(root / "downstream" / "bicubic-x8" / "celeba_test" / "verification_scores.npz")
    assert len(z["mobilefacenet_genuine"]) == len(z["mobilefacenet_impostor"]) > 0
    import os

    cwd = os.getcwd()
    os.chdir(root)
    try:
        params = yaml.safe_load((root / "params.yaml").read_text())
        plot_roc(params, "celeba_test", "mobilefacenet", out=root / "roc.png", out_root=root / "downstream")
    finally:
        os.chdir(cwd)
    assert (root / "roc.png").stat().st_size > 1000
