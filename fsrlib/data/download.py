"""Raw data: public sources, a local mirror, the manifest and the raw index.

Layout of ``data/raw`` (the same whatever the source)::

    celeba/images/*.jpg        CelebA in-the-wild photos (original file names)
    celeba/identity.csv        file, identity, orig_width, orig_height, face_extent_px
    celeba_test/images/*.jpg   CelebA's official test partition (identities disjoint from celeba/)
    celeba_test/identity.csv   the same columns as celeba/identity.csv
    helen/{train,test}/*.jpg   Helen photos (iBUG 300-W distribution)
    helen/{train,test}/*.pts   68-point ground truth (300-W)
    helen/{train,test}/index.csv   file, orig_width, orig_height, face_extent_px
    celebamask_hq_mini/{train,test}/images/<id>.jpg, masks/<id>.png   CelebAMask-HQ faces (512 px)
                               and their 19-class labels (CelebAMask-HQ ids; fsrlib.data.celebamask)
    ffhq/images/*.png, ffhq/index.csv   (only when asked for)
    MANIFEST.csv               file, bytes, sha256 of every file above
    SOURCES.json               where each part came from and which checksums were checked

Sources
    ``source="mirror"``: a folder with the layout above for celeba/ and helen/ (e.g. the
    shared mirror), from ``mirror=`` or ``$FSR_DATA_MIRROR``. ``source="public"``: the
    archives below, downloaded with :func:`fsrlib.io.fetch` into ``$FSR_CACHE/datasets``.

Checksums (:data:`SOURCES`)
    ``md5`` values marked ``published`` come from public code that checks them
    (torchvision's ``CelebA.file_list``; NVlabs' ``download_ffhq.py``). Where no checksum is
    published (``None``), the first download computes a sha256 and records it in
    ``$FSR_CACHE/datasets/recorded_checksums.json`` (and in ``SOURCES.json``, with
    ``"checksum": "recorded at first download"``); later downloads are checked against it.
    Nothing here claims a checksum it has not seen.

Absolute paths of this machine are never written into any output.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from ..io import ChecksumError, OfflineError, cache_dir, fetch, sha256sum, write_csv, write_json
from .align import read_pts

__all__ = ["SOURCES", "MIRROR_HINT", "resolve_mirror", "fetch_raw", "verify_raw", "build_raw_index",
           "subsample_per_identity", "write_manifest"]

MIRROR_HINT = (
    "Point the pipeline at a local mirror of the data sets (a folder holding celeba/ and helen/ in "
    "the layout of fsrlib/data/download.py): either export FSR_DATA_MIRROR=/path/to/mirror before "
    "running, or set `data: {mirror: /path/to/mirror}` in params.yaml (a path relative to the "
    "repository root is fine). On this project's machines the mirror is ../shared/datasets."
)

_GDRIVE = "https://drive.google.com/uc?export=download&id={}"

#: public sources. ``md5``/``sha256`` None = not published: recorded at first download.
SOURCES: dict[str, dict] = {
    "celeba": {
        "homepage": "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
        "licence": "non-commercial research only (MMLAB, CUHK)",
        "files": {
            # in-the-wild photos: a 14-part 7z archive in the Google Drive folder
            # "In-The-Wild Images" (folder id 0B7EVK8r0v71peklHb0pGdDl6R28). No checksums are
            # published for the parts (torchvision lists a hash for 'img_celeba.7z' that is a
            # copy of the PNG archive's and cannot be right), so they are recorded at first
            # download. Drive serves big files behind a confirmation page: when the automatic
            # download fails, put the parts by hand in $FSR_CACHE/datasets/celeba/.
            "img_celeba.7z": {"parts": [f"img_celeba.7z.{i:03d}" for i in range(1, 15)],
                              "url": None, "md5": None, "status": "manual: Drive folder 0B7EVK8r0v71peklHb0pGdDl6R28"},
            "identity_CelebA.txt": {"url": _GDRIVE.format("1_ee_0u7vcNLOfNLegJRHmolfH5ICW-XS"),
                                    "md5": "32bd1bd63d3c78cd57e08160ec5ed1e2",
                                    "status": "published (torchvision CelebA.file_list)"},
            "list_landmarks_celeba.txt": {"url": _GDRIVE.format("0B7EVK8r0v71pTzJIdlJWdHczRlU"),
                                          "md5": "063ee6ddb681f96bc9ca28c6febb9d1a",
                                          "status": "published (torchvision CelebA, commented-out entry)"},
            "list_bbox_celeba.txt": {"url": _GDRIVE.format("0B7EVK8r0v71pbThiMVRxWXZ4dU0"),
                                     "md5": "00566efa6fedff7a56946cd1c10f1c16",
                                     "status": "published (torchvision CelebA.file_list)"},
            "list_eval_partition.txt": {"url": _GDRIVE.format("0B7EVK8r0v71pY0NSMzRuSXJEVkk"),
                                        "md5": "d32c9cbf5e040fd4025c592c306e6668",
                                        "status": "published (torchvision CelebA.file_list)"},
        },
    },
    "helen": {
        "homepage": "https://ibug.doc.ic.ac.uk/resources/facial-point-annotations/",
        "licence": "non-commercial research only (Helen / iBUG 300-W)",
        "files": {
            # trainset/ and testset/ folders of jpg + 68-point .pts
            "helen.zip": {"url": "https://ibug.doc.ic.ac.uk/download/annotations/helen.zip",
                          "md5": None, "status": "no published checksum: recorded at first download"},
        },
    },
    "ffhq": {
        "homepage": "https://github.com/NVlabs/ffhq-dataset",
        "licence": "CC BY-NC-SA 4.0 (images: their own licences)",
        "files": {
            # per-image URLs and md5s are inside this JSON (images1024x1024 section)
            "ffhq-dataset-v2.json": {"url": _GDRIVE.format("16N0RV4fHI6joBuKbQAoG34V_cQk7vxSA"),
                                     "md5": "425ae20f06a4da1d4dc0f46d40ba5fd6", "size": 267793842,
                                     "status": "published (NVlabs download_ffhq.py json_spec)"},
        },
    },
}

MIRROR_PARTS = {"celeba": ("celeba/images", "celeba/identity.csv"),
                "celeba_test": ("celeba_test/images", "celeba_test/identity.csv"),
                "helen": ("helen/train", "helen/test"),
                # CelebAMask-HQ subset: {train,test}/images/<id>.jpg + masks/<id>.png (19 classes)
                "celebamask": ("celebamask_hq_mini/train", "celebamask_hq_mini/test")}


# ====================================================================== helpers
def resolve_mirror(mirror=None, repo_root=None) -> Path | None:
    """The mirror folder: ``mirror`` (param), else ``$FSR_DATA_MIRROR``; a relative path is
    taken from ``repo_root`` (default: the current directory). None when neither is set."""
    m = mirror or os.environ.get("FSR_DATA_MIRROR") or None
    if not m:
        return None
    p = Path(m).expanduser()
    if not p.is_absolute() and repo_root is not None:
        p = Path(repo_root) / p
    return p


def _recorded_path() -> Path:
    return cache_dir() / "datasets" / "recorded_checksums.json"


def _recorded() -> dict:
    p = _recorded_path()
    return json.loads(p.read_text()) if p.exists() else {}


def _fetch_checked(name: str, spec: dict, dest: Path, progress: bool = True) -> tuple[Path, str]:
    """Fetch with the published checksum, or with the one recorded at first download."""
    rec = _recorded()
    md5 = spec.get("md5")
    sha = None if md5 else rec.get(name)
    if spec.get("url") is None:
        if dest.exists():
            return dest, "present (manual download)"
        raise OfflineError(f"{name} has no direct download URL ({spec.get('status')}); put it at {dest}.\n"
                           + MIRROR_HINT)
    path = fetch(spec["url"], dest, sha256=sha, md5=md5, what=name, progress=progress, offline_hint=MIRROR_HINT)
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith(b"<!doctype html") or head.startswith(b"<html"):
        path.unlink()
        raise OfflineError(f"{name}: the server answered with a web page instead of the file (Google Drive "
                           f"asks to confirm big downloads). Download it in a browser from {spec['url']} "
                           f"and put it at {dest}.\n" + MIRROR_HINT)
    if md5:
        return path, f"md5 {md5} ({spec.get('status')})"
    if sha:
        return path, f"sha256 {sha} (recorded at first download)"
    digest = sha256sum(path)
    rec[name] = digest
    write_json(_recorded_path(), rec)
    return path, f"sha256 {digest} (recorded at first download: no published checksum)"


def write_manifest(root) -> pd.DataFrame:
    """MANIFEST.csv: file (relative, posix), bytes, sha256 of every data file under ``root``."""
    root = Path(root)
    rows = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name in ("MANIFEST.csv", "SOURCES.json") or p.name.startswith("."):
            continue
        rows.append({"file": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": sha256sum(p)})
    df = pd.DataFrame(rows, columns=["file", "bytes", "sha256"])
    write_csv(root / "MANIFEST.csv", df)
    return df


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.exists() and dst.stat().st_size == src.stat().st_size and dst.stat().st_mtime >= src.stat().st_mtime:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


# ====================================================================== fetch
def fetch_raw(dest="data/raw", source: str = "mirror", mirror=None, datasets=("celeba", "helen"),
              progress: bool = True, ffhq_limit: int | None = None, repo_root=None) -> Path:
    """Fill ``dest`` with the raw data sets and write MANIFEST.csv and SOURCES.json.

    ``source="mirror"`` copies the mirror's ``celeba/``, ``celeba_test/`` and ``helen/`` (``mirror`` or
    ``$FSR_DATA_MIRROR``); ``source="public"`` downloads the public archives. With no mirror
    and no network an :class:`OfflineError` says how to point at a mirror."""
    dest = Path(dest)
    datasets = tuple(datasets)
    sources: dict = {"source": source, "datasets": list(datasets), "parts": {}}
    if source == "mirror":
        m = resolve_mirror(mirror, repo_root)
        if m is None:
            raise OfflineError("no data mirror given (source='mirror').\n" + MIRROR_HINT)
        if not m.is_dir():
            raise OfflineError(f"the data mirror {m} does not exist.\n" + MIRROR_HINT)
        for ds in datasets:
            if ds not in MIRROR_PARTS:
                raise ValueError(f"the mirror holds {sorted(MIRROR_PARTS)}, not {ds!r}; use source='public' for it")
            files = []
            for part in MIRROR_PARTS[ds]:
                src = m / part
                if not src.exists():
                    raise OfflineError(f"the mirror {m} has no {part}.\n" + MIRROR_HINT)
                files += [src] if src.is_file() else [p for p in sorted(src.rglob("*")) if p.is_file()]
            for p in tqdm(files, desc=f"copy {ds}", disable=not progress):
                _copy_if_changed(p, dest / p.relative_to(m))
            sources["parts"][ds] = {"from": "mirror", "files": len(files),
                                    "checksum": "sha256 of every file in MANIFEST.csv"}
    elif source == "public":
        for ds in datasets:
            if ds == "celeba":
                sources["parts"][ds] = _public_celeba(dest, progress)
            elif ds == "celeba_test":
                sources["parts"][ds] = _public_celeba_test(dest, progress)
            elif ds == "helen":
                sources["parts"][ds] = _public_helen(dest, progress)
            elif ds == "ffhq":
                sources["parts"][ds] = _public_ffhq(dest, progress, ffhq_limit)
            elif ds == "celebamask":
                raise OfflineError("CelebAMask-HQ (images + 19-class masks) has no direct public download URL "
                                   "(Google Drive, by request); use source='mirror' with a folder holding "
                                   "celebamask_hq_mini/{train,test}/{images,masks}.\n" + MIRROR_HINT)
            else:
                raise ValueError(f"unknown data set {ds!r}")
    else:
        raise ValueError(f"source must be 'mirror' or 'public', got {source!r}")
    write_manifest(dest)
    write_json(dest / "SOURCES.json", sources)
    return dest


def _dl_dir(ds: str) -> Path:
    return cache_dir() / "datasets" / ds


def _public_celeba(dest: Path, progress: bool) -> dict:
    files = SOURCES["celeba"]["files"]
    info = {}
    for name in ("identity_CelebA.txt", "list_landmarks_celeba.txt"):
        _, info[name] = _fetch_checked(f"celeba/{name}", files[name], _dl_dir("celeba") / name, progress)
    parts = [_dl_dir("celeba") / p for p in files["img_celeba.7z"]["parts"]]
    missing = [p.name for p in parts if not p.exists()]
    if missing:
        raise OfflineError(
            "CelebA in-the-wild images: the 14 parts img_celeba.7z.001..014 must be downloaded by hand "
            f"from the CelebA Google Drive folder 'In-The-Wild Images' into {_dl_dir('celeba')} "
            f"(missing: {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}).\n" + MIRROR_HINT)
    rec = _recorded()
    for p in parts:  # no published checksums: record, then check
        key = f"celeba/{p.name}"
        d = sha256sum(p)
        if key in rec and rec[key] != d:
            raise OfflineError(f"{p} changed since it was first recorded (sha256 {rec[key]}); delete it and download again")
        rec[key] = d
    write_json(_recorded_path(), rec)
    sevenz = shutil.which("7z") or shutil.which("7za")
    if sevenz is None:
        raise RuntimeError("unpacking img_celeba.7z needs the 7z program (apt-get install p7zip-full)")
    tmp = _dl_dir("celeba") / "unpacked"
    if not (tmp / "img_celeba").is_dir():
        subprocess.run([sevenz, "x", "-y", f"-o{tmp}", str(parts[0])], check=True)
    out = dest / "celeba" / "images"
    out.mkdir(parents=True, exist_ok=True)
    ident = pd.read_csv(_dl_dir("celeba") / "identity_CelebA.txt", sep=r"\s+", header=None, names=["file", "identity"])
    rows = []
    for r in ident.itertuples(index=False):
        src = tmp / "img_celeba" / r.file
        if not src.exists():
            continue
        _copy_if_changed(src, out / r.file)
        with Image.open(src) as im:
            w, h = im.size
        # the 68-point extent is only known after detection (CelebA gives 5 points)
        rows.append({"file": r.file, "identity": int(r.identity), "orig_width": w, "orig_height": h,
                     "face_extent_px": np.nan})
    write_csv(dest / "celeba" / "identity.csv", pd.DataFrame(rows))
    return {"from": "public", "checksums": info, "images": "img_celeba.7z parts: sha256 recorded at first download"}


#: photos per identity of the public ``celeba_test`` (as in the mirror: 8 photos of each identity
#: of CelebA's official test partition that has at least 8)
CELEBA_TEST_PER_IDENTITY = 8


def _public_celeba_test(dest: Path, progress: bool) -> dict:
    """``celeba_test/`` from the public CelebA: the official test partition (partition 2 of
    ``list_eval_partition.txt``), the first :data:`CELEBA_TEST_PER_IDENTITY` photos (file-name
    order) of every identity with that many. Needs the unpacked in-the-wild photos of
    :func:`_public_celeba` (run it first, e.g. ``datasets: [celeba, celeba_test, ...]``)."""
    files = SOURCES["celeba"]["files"]
    info = {}
    for name in ("identity_CelebA.txt", "list_eval_partition.txt"):
        _, info[name] = _fetch_checked(f"celeba/{name}", files[name], _dl_dir("celeba") / name, progress)
    src_dir = _dl_dir("celeba") / "unpacked" / "img_celeba"
    if not src_dir.is_dir():
        raise OfflineError(f"celeba_test needs the unpacked CelebA photos in {src_dir}: download 'celeba' first.\n"
                           + MIRROR_HINT)
    ident = pd.read_csv(_dl_dir("celeba") / "identity_CelebA.txt", sep=r"\s+", header=None, names=["file", "identity"])
    part = pd.read_csv(_dl_dir("celeba") / "list_eval_partition.txt", sep=r"\s+", header=None,
                       names=["file", "partition"])
    test = ident.merge(part, on="file")
    test = test[test.partition == 2].sort_values("file")
    test = test.groupby("identity").filter(lambda g: len(g) >= CELEBA_TEST_PER_IDENTITY)
    test = test.groupby("identity", sort=True).head(CELEBA_TEST_PER_IDENTITY)
    out = dest / "celeba_test" / "images"
    rows = []
    for r in tqdm(list(test.itertuples(index=False)), desc="celeba_test", disable=not progress):
        src = src_dir / r.file
        _copy_if_changed(src, out / r.file)
        with Image.open(src) as im:
            w, h = im.size
        rows.append({"file": r.file, "identity": int(r.identity), "orig_width": w, "orig_height": h,
                     "face_extent_px": np.nan})
    write_csv(dest / "celeba_test" / "identity.csv", pd.DataFrame(rows))
    return {"from": "public", "checksums": info, "partition": "official test (list_eval_partition.txt = 2)",
            "per_identity": CELEBA_TEST_PER_IDENTITY}


def _public_helen(dest: Path, progress: bool) -> dict:
    z, how = _fetch_checked("helen/helen.zip", SOURCES["helen"]["files"]["helen.zip"],
                            _dl_dir("helen") / "helen.zip", progress)
    with zipfile.ZipFile(z) as zf:
        for member in zf.namelist():
            parts = Path(member).parts
            split = next((("train" if p == "trainset" else "test") for p in parts if p in ("trainset", "testset")), None)
            if split is None or member.endswith("/") or Path(member).suffix.lower() not in (".jpg", ".png", ".pts"):
                continue
            target = dest / "helen" / split / Path(member).name
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as fsrc, open(target, "wb") as fdst:
                shutil.copyfileobj(fsrc, fdst)
    for split in ("train", "test"):
        rows = []
        for img in sorted((dest / "helen" / split).glob("*.jpg")):
            pts = img.with_suffix(".pts")
            ext = np.nan
            if pts.exists():
                p = read_pts(pts)
                ext = float(np.max(p.max(0) - p.min(0)))
            with Image.open(img) as im:
                w, h = im.size
            rows.append({"file": img.name, "orig_width": w, "orig_height": h, "face_extent_px": round(ext, 1)})
        write_csv(dest / "helen" / split / "index.csv", pd.DataFrame(rows))
    return {"from": "public", "checksums": {"helen.zip": how}}


def _public_ffhq(dest: Path, progress: bool, limit: int | None) -> dict:
    j, how = _fetch_checked("ffhq/ffhq-dataset-v2.json", SOURCES["ffhq"]["files"]["ffhq-dataset-v2.json"],
                            _dl_dir("ffhq") / "ffhq-dataset-v2.json", progress)
    meta = json.loads(Path(j).read_text())
    items = sorted(meta.items(), key=lambda kv: int(kv[0]))
    if limit is not None:
        items = items[: int(limit)]
    rows = []
    for k, v in items:
        spec = v["image"]
        out = dest / "ffhq" / "images" / Path(spec["file_path"]).name
        fetch(spec["file_url"], out, md5=spec["file_md5"], what=f"ffhq {k}", progress=False, offline_hint=MIRROR_HINT)
        rows.append({"file": out.name, "orig_width": 1024, "orig_height": 1024, "face_extent_px": np.nan})
    write_csv(dest / "ffhq" / "index.csv", pd.DataFrame(rows))
    return {"from": "public", "checksums": {"ffhq-dataset-v2.json": how, "images": "md5 per image from the JSON"},
            "n": len(rows)}


# ====================================================================== verify + index
def verify_raw(root="data/raw", check: bool = True):
    """Re-check MANIFEST.csv (every file present with its size and sha256) and return the
    raw index DataFrame: file (relative to ``root``), dataset, orig_split, identity,
    face_extent_px, has_pts."""
    root = Path(root)
    man_path = root / "MANIFEST.csv"
    if not man_path.exists():
        raise FileNotFoundError(f"{man_path} is missing: run the download stage (fetch_raw) first")
    if check:
        man = pd.read_csv(man_path)
        bad = []
        for r in man.itertuples(index=False):
            p = root / r.file
            if not p.exists():
                bad.append(f"{r.file}: missing")
            elif p.stat().st_size != r.bytes or sha256sum(p) != r.sha256:
                bad.append(f"{r.file}: changed (sha256 mismatch)")
        if bad:
            raise ChecksumError(f"{len(bad)} raw files do not match MANIFEST.csv: " + "; ".join(bad[:5])
                                + (" ..." if len(bad) > 5 else ""))
    return build_raw_index(root)


def subsample_per_identity(idx: pd.DataFrame, dataset: str, k: int | None) -> pd.DataFrame:
    """Keep the first ``k`` photos (file-name order) of every identity of ``dataset`` in the raw
    index; the other data sets' rows are unchanged. ``k=None``: all."""
    if k is None:
        return idx
    sel = idx[idx.dataset == dataset].sort_values("file", kind="stable")
    keep = sel.groupby("identity", sort=False).head(int(k)).index
    return idx[(idx.dataset != dataset) | idx.index.isin(keep)].reset_index(drop=True)


def build_raw_index(root="data/raw"):
    """The raw index of everything under ``root``. ``celeba`` photos have no split yet (the
    prepare stage splits them by identity); ``celeba_test`` photos are ``orig_split="test"``."""
    root = Path(root)
    parts = []
    for ds, split in (("celeba", ""), ("celeba_test", "test")):
        cel = root / ds / "identity.csv"
        if cel.exists():
            d = pd.read_csv(cel)
            parts.append(pd.DataFrame({
                "file": (f"{ds}/images/" + d["file"]).values, "dataset": ds, "orig_split": split,
                "identity": d["identity"].astype("Int64").values, "face_extent_px": d["face_extent_px"].values,
                "has_pts": False}))
    for split in ("train", "test"):
        hi = root / "helen" / split / "index.csv"
        if hi.exists():
            d = pd.read_csv(hi)
            files = [f"helen/{split}/{f}" for f in d["file"]]
            parts.append(pd.DataFrame({
                "file": files, "dataset": "helen", "orig_split": split,
                "identity": pd.array([pd.NA] * len(d), dtype="Int64"), "face_extent_px": d["face_extent_px"].values,
                "has_pts": [(root / Path(f).with_suffix(".pts")).exists() for f in files]}))
    for split in ("train", "test"):
        cm = root / "celebamask_hq_mini" / split / "images"
        if cm.is_dir():
            files = [f"celebamask_hq_mini/{split}/images/{p.name}" for p in sorted(cm.glob("*.jpg"))]
            parts.append(pd.DataFrame({
                "file": files, "dataset": "celebamask", "orig_split": split,
                "identity": pd.array([pd.NA] * len(files), dtype="Int64"),
                "face_extent_px": np.full(len(files), np.nan), "has_pts": False}))
    ff = root / "ffhq" / "index.csv"
    if ff.exists():
        d = pd.read_csv(ff)
        parts.append(pd.DataFrame({
            "file": ("ffhq/images/" + d["file"]).values, "dataset": "ffhq", "orig_split": "train",
            "identity": pd.array([pd.NA] * len(d), dtype="Int64"), "face_extent_px": d["face_extent_px"].values,
            "has_pts": False}))
    if not parts:
        raise FileNotFoundError(f"no data set index found under {root}")
    idx = pd.concat(parts, ignore_index=True)
    idx["orig_split"] = idx["orig_split"].fillna("")
    return idx
