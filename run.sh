#!/usr/bin/env bash
# The project's two commands (see README):
#   ./run.sh repro [args for `dvc repro`]   set up if needed, get the raw data, run the pipeline
#   ./run.sh repro --profile paper [args]   the same with params/paper.yaml over params.yaml
#                                           (fsrlib/profiles.py; params.yaml is put back after)
#   ./run.sh test  [args for `pytest`]      set up if needed, run the test suite
#   ./run.sh lint                           set up if needed, ruff (config in pyproject.toml)
# Set-up = a virtual environment in .venv (FSR_VENV to change) with requirements.txt,
# reinstalled when requirements.txt or pyproject.toml change.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${FSR_VENV:-.venv}"
PY="$VENV/bin/python"

ensure_env() {
  local stamp="$VENV/.fsr-stamp" want
  want="$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)"
  if [ ! -x "$PY" ]; then
    echo "[run.sh] creating $VENV (python3 = $(python3 --version 2>&1))"
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[run.sh] installing requirements into $VENV (torch from this machine's disk: about a minute)"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -r requirements.txt
    echo "$want" > "$stamp"
  fi
  export PATH="$PWD/$VENV/bin:$PATH"
}

ensure_raw_data() {
  # data/raw is tracked by data.dvc. Collaborators with a DVC remote pull it; everyone
  # else fetches it from a local mirror (params.yaml data.mirror / $FSR_DATA_MIRROR) or
  # from the public sources (data.source: public), checksummed either way.
  if [ -f data/raw/MANIFEST.csv ]; then return; fi
  if [ -n "$(dvc remote list 2>/dev/null)" ] && dvc pull -q data.dvc; then return; fi
  fsr download
}

restore_profile() {
  # a profile run writes its effective params into params.yaml (what DVC and the notebooks
  # read) and keeps the demo file in .dvc/tmp/params.base.yaml; put it back (also after a kill)
  if [ -f .dvc/tmp/params.base.yaml ]; then python -m fsrlib.profiles restore; fi
}

cmd="${1:-}"; shift || true
case "$cmd" in
  repro)
    ensure_env
    restore_profile
    profile=""
    if [ "${1:-}" = "--profile" ]; then profile="${2:?--profile needs a name (params/<name>.yaml)}"; shift 2; fi
    ensure_raw_data
    if [ -n "$profile" ]; then
      trap restore_profile EXIT
      python -m fsrlib.profiles apply "$profile"
    fi
    dvc repro "$@"
    ;;
  test)
    ensure_env
    python -m pytest "$@"
    ;;
  lint)
    ensure_env
    ruff check .
    ;;
  *)
    echo "usage: ./run.sh repro [dvc repro args] | ./run.sh test [pytest args] | ./run.sh lint" >&2
    exit 2
    ;;
esac
