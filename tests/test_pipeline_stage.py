"""The data stages run end to end as the pipeline runs them: papermill-executed notebooks over
about ten real faces (a tiny copy of the mirror), in a project folder of their own."""
import json
import shutil

import pandas as pd
import papermill
import pytest
import yaml
from conftest import REPO


@pytest.fixture(scope="module")
def project(tmp_path_factory, mirror):
    """A project folder: params.yaml pointing at a 10-image mirror, the notebooks, fsrlib."""
    root = tmp_path_factory.mktemp("proj")
    mini = root / "mirror"
    ids = pd.read_csv(mirror / "celeba" / "identity.csv")
    ids = ids[ids.face_extent_px > 120].groupby("identity").head(2).iloc[:6]
    (mini / "celeba" / "images").mkdir(parents=True)
    for f in ids.file:
        shutil.copy(mirror / "celeba" / "images" / f, mini / "celeba" / "images" / f)
    bad = ids.iloc[:1].assign(file="999999.jpg")  # a corrupt photo, listed like any other
    pd.concat([ids, bad]).to_csv(mini / "celeba" / "identity.csv", index=False)
    # celeba_test (the official test partition): 2 identities x 3 photos; params keep 2 of each
    tids = pd.read_csv(mirror / "celeba_test" / "identity.csv")
    tids = tids[tids.face_extent_px > 90].groupby("identity").filter(lambda g: len(g) >= 3)
    tids = tids[tids.identity.isin(sorted(set(tids.identity))[:2])].groupby("identity").head(3)
    (mini / "celeba_test" / "images").mkdir(parents=True)
    for f in tids.file:
        shutil.copy(mirror / "celeba_test" / "images" / f, mini / "celeba_test" / "images" / f)
    tids.to_csv(mini / "celeba_test" / "identity.csv", index=False)
    for split, n in (("train", 2), ("test", 2)):
        idx = pd.read_csv(mirror / "helen" / split / "index.csv").iloc[:n]
        (mini / "helen" / split).mkdir(parents=True)
        for f in idx.file:
            for src in (mirror / "helen" / split / f, (mirror / "helen" / split / f).with_suffix(".pts")):
                shutil.copy(src, mini / "helen" / split / src.name)
        idx.to_csv(mini / "helen" / split / "index.csv", index=False)
    (mini / "celeba" / "images" / "999999.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["mirror"] = str(mini)
    params["data"]["celeba_test_per_identity"] = 2
    params["prepare"].update(workers=1, split_fractions=[0.5, 0.25, 0.25], helen50_n=2, min_face_size=40)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    (root / "fsrlib").symlink_to(REPO / "fsrlib")
    return root


def _run(project, name):
    out = project / "reports" / "notebooks" / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(project / "notebooks" / f"{name}.ipynb"), str(out), cwd=str(project),
                               parameters={"params_path": "params.yaml"}, kernel_name="python3", progress_bar=False)
    return json.loads(out.read_text())


def test_download_and_prepare_notebooks_run_end_to_end(project):
    from fsrlib.data.download import fetch_raw

    fetch_raw(project / "data" / "raw", source="mirror", mirror=project / "mirror", progress=False,
              datasets=("celeba", "celeba_test", "helen"))  # `fsr download`
    _run(project, "01_download")
    idx = pd.read_csv(project / "data" / "index" / "raw_index.csv")
    assert len(idx) == 15  # 7 celeba + 2 x 2 celeba_test (of 6: the demo's subsample) + 4 helen
    assert idx[idx.dataset == "celeba_test"].groupby("identity").size().tolist() == [2, 2]
    nb = _run(project, "02_prepare")
    faces = pd.read_csv(project / "data" / "faces" / "faces.csv", dtype={"name": str})
    rejects = pd.read_csv(project / "data" / "faces" / "rejects.csv")
    assert len(faces) + len(rejects) == 15  # nothing silently disappears
    ct = faces[faces.dataset == "celeba_test"]
    assert len(ct) >= 3 and set(ct.split) == {"test"} and ct.identity.notna().all()
    assert "unreadable" in set(rejects.reason)  # the corrupt photo is listed with its reason
    assert len(faces) >= 8 and {"celeba", "helen"} <= set(faces.dataset)
    assert (project / "data" / "faces" / "MANIFEST.md5").read_text().count("\n") >= len(faces)
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs)
    assert not any(o.get("output_type") == "error" for o in outputs)
