"""Params profiles: ``params/<name>.yaml`` is an **overlay** on ``params.yaml`` (the demo).

A profile file holds only what differs from ``params.yaml``, so the two cannot drift apart:
a key added to ``params.yaml`` reaches every profile. The effective params of a profile are
:func:`apply_overlay` ``(params.yaml, params/<name>.yaml)``:

- ``methods``, ``runs``, ``chained``: an entry of the overlay **replaces** the entry of that
  name whole (a method is one paper's recipe: its model, losses, batch and schedule; merging
  a paper model into a demo one would keep the demo's slim widths); ``null`` removes it;
  entries the overlay does not name are kept. A GAN method and the method it starts from
  sit in the same file, so that ``model: *anchor`` aliases hold (``fsr check``);
- every other section is deep-merged (:func:`fsrlib.settings.deep_merge`): the overlay's
  keys win, lists and scalars are replaced, ``null`` is a value.

DVC and the notebooks read ``params.yaml``. ``./run.sh repro --profile paper`` therefore
writes the effective params there for the duration of the run (``python -m fsrlib.profiles
apply paper``: the demo file is kept in ``.dvc/tmp/params.base.yaml``) and puts the demo file
back when the run ends (``restore``; run.sh also restores a leftover copy of a killed run
before it starts). ``python -m fsrlib.profiles write paper OUT`` writes the effective params
elsewhere (to read them, or for ``dvc exp run`` users).
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
from pathlib import Path
from typing import Mapping

import yaml

from .registry import ConfigError
from .settings import deep_merge

ENTRY_SECTIONS = ("methods", "runs", "chained")
PROFILES_DIR = "params"
BACKUP = Path(".dvc") / "tmp" / "params.base.yaml"
HEADER = ("# EFFECTIVE params of profile {name!r}: params.yaml + {path} (fsrlib.profiles).\n"
          "# Generated: edit params.yaml or {path}, not this file; `python -m fsrlib.profiles restore` "
          "puts the demo file back.\n")


def apply_overlay(base: Mapping, overlay: Mapping | None) -> dict:
    """The effective params: ``overlay`` over ``base`` (module doc for the rules)."""
    out = {k: v for k, v in base.items()}
    for section, val in (overlay or {}).items():
        if section in ENTRY_SECTIONS:
            if val is not None and not isinstance(val, Mapping):
                raise ConfigError(f"profile section {section} must be a mapping of entries, got {type(val).__name__}")
            entries = dict(out.get(section) or {})
            for name, entry in (val or {}).items():
                if entry is None:
                    entries.pop(name, None)
                else:
                    entries[name] = entry  # whole: keeps YAML aliases between the overlay's entries
            out[section] = entries
        elif isinstance(val, Mapping) and isinstance(out.get(section), Mapping):
            out[section] = deep_merge(out[section], val)
        else:
            out[section] = val
    return copy.deepcopy(out)  # one deepcopy: shared objects (aliases) stay shared


def profile_path(name: str | os.PathLike, root: str | os.PathLike = ".") -> Path:
    """``paper`` -> ``<root>/params/paper.yaml``; a path is taken as it is."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.parent != Path("."):
        return p if p.is_absolute() else Path(root) / p
    return Path(root) / PROFILES_DIR / f"{name}.yaml"


def list_profiles(root: str | os.PathLike = ".") -> list[str]:
    return sorted(p.stem for p in (Path(root) / PROFILES_DIR).glob("*.yaml"))


def load_profile(name: str | os.PathLike, base: str | os.PathLike = "params.yaml") -> dict:
    """The effective params of a profile (``base`` + overlay), not yet validated. ``"paper,ablations"``
    applies the overlays in that order."""
    base = Path(base)
    with open(base) as f:
        params = yaml.safe_load(f) or {}
    for one in str(name).split(","):
        path = profile_path(one, base.parent)
        if not path.is_file():
            known = ", ".join(list_profiles(base.parent)) or "none"
            raise FileNotFoundError(f"no profile {one!r}: {path} does not exist (profiles: {known})")
        with open(path) as f:
            params = apply_overlay(params, yaml.safe_load(f) or {})
    return params


def dump(params: Mapping) -> str:
    return yaml.safe_dump(dict(params), sort_keys=False, default_flow_style=None, width=120)


def write_profile(name: str, out: str | os.PathLike, base: str | os.PathLike = "params.yaml") -> Path:
    from .io import write_text

    params = load_profile(name, base)
    rel = profile_path(name, ".")
    return write_text(out, HEADER.format(name=name, path=rel) + dump(params))


def apply(name: str, root: str | os.PathLike = ".") -> Path:
    """Write profile ``name``'s effective params into ``params.yaml``, the demo file kept aside."""
    root = Path(root)
    base, backup = root / "params.yaml", root / BACKUP
    if backup.exists():
        raise ConfigError(f"{backup} exists: a profile is already applied (`python -m fsrlib.profiles restore`)")
    paths = " + ".join(str(profile_path(n, ".")) for n in name.split(","))
    text = HEADER.format(name=name, path=paths) + dump(load_profile(name, base))
    backup.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(base, backup)
    from .io import write_text

    write_text(base, text)
    return base


def restore(root: str | os.PathLike = ".") -> bool:
    """Put the demo ``params.yaml`` back after :func:`apply`; False when nothing was applied."""
    root = Path(root)
    backup = root / BACKUP
    if not backup.exists():
        return False
    os.replace(backup, root / "params.yaml")
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fsrlib.profiles", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("apply", help="write a profile's effective params into params.yaml (demo kept aside)")
    s.add_argument("name")
    sub.add_parser("restore", help="put the demo params.yaml back")
    s = sub.add_parser("write", help="write a profile's effective params to a file")
    s.add_argument("name")
    s.add_argument("out")
    sub.add_parser("list", help="the profiles of params/")
    a = p.parse_args(argv)
    try:
        if a.cmd == "apply":
            print(f"profile {a.name}: effective params written to {apply(a.name)} (demo file in {BACKUP})")
        elif a.cmd == "restore":
            print("params.yaml restored" if restore() else "no profile applied")
        elif a.cmd == "write":
            print(f"wrote {write_profile(a.name, a.out)}")
        else:
            print("\n".join(list_profiles()))
    except (ConfigError, FileNotFoundError) as e:
        print(f"fsrlib.profiles: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
