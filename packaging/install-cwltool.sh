#!/usr/bin/env bash
# Installs cwltool (from PyPI, pinned) into a virtual environment cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/cwltool-<version>, and prints the path of its
# `cwltool` executable on stdout. Does nothing but print the path when it is already there.
# Used by the CWL examples (examples/cwl/) and their tests (test/integration/test_cwl.py).
#
# Environment: CWLTOOL_VERSION overrides the pinned version (the examples are tested with the
# pinned one). Debian 12's own cwltool (3.1.20230209) is older than the pin and not used.
set -euo pipefail

version=${CWLTOOL_VERSION:-3.3.20260925135507}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets
venv=$cache/cwltool-$version
log() { printf 'install-cwltool: %s\n' "$*" >&2; }

if [[ -x $venv/bin/cwltool ]] && "$venv/bin/python" -c 'import cwltool' 2>/dev/null; then
  echo "$venv/bin/cwltool"
  exit 0
fi

# A venv needs ensurepip, which Debian ships separately in python3-venv.
python=${CWLTOOL_PYTHON:-python3}
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  if [[ $(id -u) != 0 ]]; then
    log "python3-venv is missing (run as root or apt-get install python3-venv)"
    exit 1
  fi
  log "apt-get install python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi

log "creating $venv (cwltool==$version from PyPI)"
mkdir -p "$cache"
# Built beside its final place and renamed only when complete, so an interrupted install is
# never mistaken for a finished one.
rm -rf "$venv.partial"
"$python" -m venv "$venv.partial"
"$venv.partial/bin/python" -m pip install -q --disable-pip-version-check "cwltool==$version" >&2
rm -rf "$venv"
mv "$venv.partial" "$venv"
# The scripts name the .partial path in their #! line; rewrite them to the final path.
grep -l "^#!$venv.partial/bin/" "$venv"/bin/* 2>/dev/null | while read -r f; do
  sed -i "1s|^#!$venv.partial/bin/|#!$venv/bin/|" "$f"
done
sed -i "s|$venv.partial|$venv|g" "$venv/bin/activate" "$venv/pyvenv.cfg" 2>/dev/null || true
"$venv/bin/cwltool" --version >&2
echo "$venv/bin/cwltool"
