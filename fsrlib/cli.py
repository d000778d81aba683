"""The ``fsr`` command.

    fsr check                         validate params.yaml (methods, runs, scales, keys)
    fsr download [--source mirror|public] [--mirror PATH]
                                      fill data/raw (tracked by data.dvc) with checksums
    fsr evaluate --method M --scale S --checkpoint C DIR
                                      prepare + degrade + evaluate + downstream on any folder
    fsr upscale PHOTO --method M --scale S [--checkpoint C]
                                      super-resolve every face of a photo, paste back

Each command imports its code when it runs (not at the top of this module), so that
``fsr --help`` and ``fsr check`` do not load the pipeline's heavy dependencies (dlib, OpenCV,
matplotlib) they do not use.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def cmd_check(a) -> int:
    from .config import all_runs, load_and_validate
    from .train.schema import lint_params, validate_runs

    params = validate_runs(load_and_validate(a.params))
    problems = lint_params(params)
    if problems:
        for msg in problems:
            print(f"fsr check: {a.params}: {msg}", file=sys.stderr)
        return 2
    runs = all_runs(params)
    print(f"{a.params}: OK ({len(params.get('methods') or {})} methods, {len(runs)} runs)")
    return 0


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
    from .pipeline.upscale import upscale_photo

    out = upscale_photo(a.photo, method=a.method, scale=a.scale, checkpoint=a.checkpoint, out=a.out,
                        device=a.device, params_path=a.params)
    print(f"wrote {out}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fsr", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("check", help="validate params.yaml")
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

    s = sub.add_parser("upscale", help="super-resolve the faces of a photo and paste them back")
    s.add_argument("photo")
    s.add_argument("--method", required=True)
    s.add_argument("--scale", type=int, required=True, choices=[4, 8, 16])
    s.add_argument("--checkpoint", default=None, help="default: runs/<method>-x<scale>/model.pt")
    s.add_argument("--out", default=None, help="output image (default: <photo>_fsr_<method>_x<scale>.png)")
    s.add_argument("--device", default="auto")
    s.set_defaults(fn=cmd_upscale)

    a = p.parse_args(argv)
    from .io import OfflineError
    from .registry import ConfigError

    try:
        return a.fn(a)
    except (ConfigError, OfflineError, FileNotFoundError) as e:
        print(f"fsr {a.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
