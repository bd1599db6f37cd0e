#!/usr/bin/env bash
# Installs what building and testing crunch-secrets needs on Debian 12, and nothing when it is
# all there already. Used by test/run-all.sh, examples/demo.sh and .ci/run.
set -euo pipefail

log() { printf 'install-deps: %s\n' "$*" >&2; }

debs=(
  meson ninja-build ccache g++ gcc pkg-config
  libcurl4-openssl-dev libyaml-cpp-dev nlohmann-json3-dev libfmt-dev doctest-dev libcli11-dev
  clang-format python3 python3-yaml python3-pytest curl ca-certificates openssl
)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) != 0 ]]; then
    log "missing Debian packages: ${missing[*]} (run as root or install them)"
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# pytest and PyYAML for the interpreter that runs the tests (Debian's or a pyenv one).
if ! python3 -c 'import pytest, yaml' 2>/dev/null; then
  log "pip install pytest pyyaml"
  python3 -m pip install -q pytest pyyaml
fi

# Go >= 1.24 builds OpenBao and the plugin. Debian's golang is older; the Go module proxy
# serves newer toolchains, which `go` fetches by itself when GOTOOLCHAIN asks for one.
if ! command -v go >/dev/null 2>&1; then
  if [[ -x /usr/local/go/bin/go ]]; then
    log "Go found in /usr/local/go/bin (add it to PATH)"
  else
    log "apt-get install golang-go (the newer toolchain comes from the module proxy)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go >/dev/null
  fi
fi
