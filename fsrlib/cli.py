"""The ``fsr`` command.

    fsr check [--profile P]           validate params.yaml and each profile params/P.yaml
                                      (an overlay on it; fsrlib.profiles) (methods, runs, keys)
    fsr download [--source mirror|public] [--mirror PATH]
                                      fill data/raw (tracked by data.dvc) with checksums
    fsr evaluate --method M --scale S --checkpoint C DIR
                                      prepare + degrade + evaluate + downstream on any folder
    fsr upscale PHOTO --method M --scale S [--checkpoint C]
                                      super-resolve every face of a photo, paste back
    fsr import METHOD PATH [--run NAME] [--scale S]
                                      an authors' released checkpoint (Face-SPARNet: sparnet,
                                      sparnet_light, sparnethd, sparnethd_3d) -> runs/NAME/

Each command imports its code when it runs (not at the top of this module), so that
``fsr --help`` and ``fsr check`` do not load the pipeline's heavy dependencies (dlib, OpenCV,
matplotlib) they do not use.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .registry import ConfigError


def cmd_check(a) -> int:
    from .config import all_runs, validate_params
    from .profiles import list_profiles, load_profile
    from .train.schema import lint_params, validate_runs

    base = Path(a.params)
    targets = [(str(base), None)] + [(f"{base} + params/{n}.yaml", n) for n in list_profiles(base.parent)
                                    if a.profile in (None, n)]
    if a.profile is not None and len(targets) == 1:
        raise FileNotFoundError(f"no profile {a.profile!r} in {base.parent / 'params'}")
    bad = 0
    for label, name in targets:
        if name is None:
            from .config import load_and_validate
            params = load_and_validate(base)
        else:
            params = load_profile(name, base)
            try:
                validate_params(params)
            except ConfigError as e:
                raise ConfigError(f"profile {name}: {e}") from e
        validate_runs(params)
        problems = lint_params(params)
        for msg in problems:
            print(f"fsr check: {label}: {msg}", file=sys.stderr)
        bad += bool(problems)
        if not problems:
            print(f"{label}: OK ({len(params.get('methods') or {})} methods, {len(all_runs(params))} runs)")
    return 2 if bad else 0


def cmd_download(a) -> int:
    from .config import load_params
    from .data.download import fetch_raw, verify_raw

    data = (load_params(a.params).get("data") or {}) if Path(a.params).exists() else {}
    source = a.source or data.get("source", "mirror")
    mirror = a.mirror or os.environ.get("FSR_DATA_MIRROR") or data.get("mirror")
    root = Path(a.params).resolve().parent if Path(a.params).exists() else Path.cwd()
    raw = fetch_raw(a.dest, source=source, mirror=mirror, datasets=data.get("datasets", ("celeba", "helen")),
                    repo_root=root)
    idx = verify_raw(raw)
    print(f"{raw}: {len(idx)} raw images verified "
          + ", ".join(f"{k} {v}" for k, v in idx.groupby("dataset").size().items()))
    return 0


def cmd_evaluate(a) -> int:
    from .pipeline.folder import evaluate_folder

    out = evaluate_folder(a.dir, method=a.method, scale=a.scale, checkpoint=a.checkpoint, out=a.out,
                          params_path=a.params, device=a.device, identities=a.identities)
    print(f"wrote {out}")
    return 0


def cmd_upscale(a) -> int:
    from .pipeline.upscale import upscale_folder, upscale_photo

    if Path(a.photo).is_dir():
        res = upscale_folder(a.photo, method=a.method, scale=a.scale, checkpoint=a.checkpoint, out=a.out,
                             device=a.device, params_path=a.params, simulate=a.simulate)
        for name, why in res["skipped"].items():
            print(f"skipped {name}: {why}")
        print(f"wrote {len(res['written'])} photo(s) to {res['out']} ({len(res['skipped'])} skipped)")
        return 0
    out = upscale_photo(a.photo, method=a.method, scale=a.scale, checkpoint=a.checkpoint, out=a.out,
                        device=a.device, params_path=a.params, simulate=a.simulate)
    print(f"wrote {out}")
    return 0


def cmd_export(a) -> int:
    from .pipeline.export import export_onnx

    res = export_onnx(a.run, a.onnx, runs_root=a.runs_root, check=not a.no_check)
    diff = "" if res["max_abs_diff"] is None else (
        f"; onnxruntime vs PyTorch on a real face: max abs diff {res['max_abs_diff']:.2e}")
    print(f"wrote {res['path']} (inputs {', '.join(res['inputs'])}, output sr, dynamic batch){diff}")
    return 0


def cmd_import(a) -> int:
    from .pipeline.official_import import import_official

    out = import_official(a.method, a.path, run=a.run, scale=a.scale, runs_root=a.runs_root)
    print(f"wrote {out}/model.pt (use it: fsr evaluate DIR --method {a.method} --scale {a.scale} --checkpoint {out})")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fsr", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("check", help="validate params.yaml and every profile of params/ (overlays)")
    s.add_argument("--profile", default=None, help="check params.yaml and this profile only")
    s.set_defaults(fn=cmd_check)

    s = sub.add_parser("download", help="fill data/raw from a mirror or the public sources")
    s.add_argument("--source", choices=["mirror", "public"], default=None)
    s.add_argument("--mirror", default=None, help="mirror folder (else $FSR_DATA_MIRROR, else params data.mirror)")
    s.add_argument("--dest", default="data/raw")
    s.set_defaults(fn=cmd_download)

    s = sub.add_parser("evaluate", help="evaluate a checkpoint on any folder of face photos")
    s.add_argument("dir")
    s.add_argument("--method", required=True)
    s.add_argument("--scale", type=int, required=True, choices=[4, 8, 16])
    s.add_argument("--checkpoint", required=True, help="a model.pt (runs/<run>/model.pt) or a run folder")
    s.add_argument("--out", default=None, help="output folder (default: results/folder-<dir>/<method>-x<scale>)")
    s.add_argument("--identities", default=None,
                   help="csv of file, identity for verification (default: identity.csv beside or above the images)")
    s.add_argument("--device", default="auto")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("upscale", help="super-resolve the faces of a low-resolution photo (or a folder of them)")
    s.add_argument("photo", help="a photo, or a folder of photos")
    s.add_argument("--method", required=True)
    s.add_argument("--scale", type=int, required=True, choices=[4, 8, 16])
    s.add_argument("--checkpoint", default=None, help="default: runs/<method>-x<scale>/model.pt")
    s.add_argument("--out", default=None, help="output image (default: <photo>_fsr_<method>_x<scale>.png; "
                                                "for a folder: <folder>_fsr_<method>_x<scale>/)")
    s.add_argument("--simulate", action="store_true",
                   help="treat each face as the HR: degrade it scale times and super-resolve that (the photo keeps "
                        "its size)")
    s.add_argument("--device", default="auto")
    s.set_defaults(fn=cmd_upscale)

    s = sub.add_parser("export", help="export a trained run as ONNX (checked against PyTorch with onnxruntime)")
    s.add_argument("run", help="a run name (runs/<run>/model.pt), a run folder or a model.pt")
    s.add_argument("--onnx", required=True, help="output .onnx file")
    s.add_argument("--runs-root", default="runs")
    s.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("import", help="turn an authors' released checkpoint into a run folder")
    s.add_argument("method", help="released model: sparnet | sparnet_light | sparnethd | sparnethd_3d")
    s.add_argument("path", help="the released generator state dict (.pth)")
    s.add_argument("--run", default=None, help="run name (default: <method>-x<scale>-official)")
    s.add_argument("--scale", type=int, default=8, choices=[4, 8, 16])
    s.add_argument("--runs-root", default="runs")
    s.set_defaults(fn=cmd_import)

    a = p.parse_args(argv)
    from .io import OfflineError

    try:
        return a.fn(a)
    except (ConfigError, OfflineError, FileNotFoundError) as e:
        print(f"fsr {a.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
