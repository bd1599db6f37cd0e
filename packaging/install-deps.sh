#!/usr/bin/env bash
# Installs what building and testing crunch-secrets needs on Debian 12, and nothing when it is
# all there already. Used by test/run-all.sh, examples/demo.sh and .ci/run.
set -euo pipefail

log() { printf 'install-deps: %s\n' "$*" >&2; }

debs=(
  meson ninja-build ccache g++ gcc pkg-config
  libcurl4-openssl-dev libssl-dev libyaml-cpp-dev nlohmann-json3-dev libfmt-dev doctest-dev libcli11-dev
  clang-format python3 python3-yaml python3-pytest curl ca-certificates openssl zsh groff-base man-db strace
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

# Go >= 1.24.6 builds OpenBao and the plugin. Debian 12's golang is 1.19, too old and without
# GOTOOLCHAIN; the Go module proxy serves official toolchains as the module
# golang.org/toolchain, so fetch one from there (checked against a pinned SHA-256) when no
# new-enough `go` is on PATH.
go_ok() {
  local v
  v=$("$1" env GOVERSION 2>/dev/null) || return 1
  v=${v#go}
  [[ $(printf '%s\n' 1.24.6 "$v" | sort -V | head -n1) == 1.24.6 ]]
}
go_bin=$(command -v go || true)
[[ -z $go_bin && -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go
if [[ -z $go_bin ]] || ! GOTOOLCHAIN=local go_ok "$go_bin"; then
  bash "$(dirname "${BASH_SOURCE[0]}")/fetch-go-toolchain.sh"
  log "use ${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/toolchain/go1.25.8/bin/go (the scripts add it to PATH)"
fi
