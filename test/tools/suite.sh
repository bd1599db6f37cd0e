#!/usr/bin/env bash
# Runs one suite of crunch-secrets' tests that is not a doctest binary, the same way for
# `meson test` (meson.build registers these) and for test/run-all.sh:
#   bash test/tools/suite.sh go                                the plugin's go vet and go test
#   bash test/tools/suite.sh integration BUILD_DIR [PYTEST...]  the pytest suite, real OpenBao
# A missing component (go, OpenBao's build) fails the suite; nothing is skipped.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/toolchain/go1.25.8/bin:$PATH:/usr/local/go/bin
export GOFLAGS=${GOFLAGS:--mod=mod} GOSUMDB=${GOSUMDB:-off} GOTOOLCHAIN=${GOTOOLCHAIN:-auto}

case ${1:-} in
go)
  if ! command -v go >/dev/null; then
    echo "suite.sh: no go on PATH: run bash packaging/install-deps.sh" >&2
    exit 1
  fi
  cd "$repo/vault-plugin-auth-arvados"
  go vet ./...
  go test -count=1 ./...
  ;;
integration)
  if [[ $# -lt 2 ]]; then
    echo "usage: bash test/tools/suite.sh integration BUILD_DIR [PYTEST_ARGS...]" >&2
    exit 64
  fi
  build=$(cd "$2" && pwd)
  shift 2
  # run-all.sh has these already; `meson test` starts from nothing (both are cached).
  if [[ -z ${BAO_BIN:-} ]]; then
    BAO_BIN=$(bash "$repo/test/openbao/build.sh")
    export BAO_BIN
  fi
  if [[ -z ${ARVADOS_PLUGIN_BIN:-} ]]; then
    mkdir -p "$build/plugins"
    bash "$repo/vault-plugin-auth-arvados/build.sh" "$build/plugins/vault-plugin-auth-arvados"
    export ARVADOS_PLUGIN_BIN=$build/plugins/vault-plugin-auth-arvados
  fi
  export CRUNCH_SECRETS_BIN=$build/crunch-secrets PROBE_BIN=$build/test/probe/probe \
    ARVADOS_FETCH_BIN=$build/arvados-fetch
  cd "$repo"
  exec python3 -m pytest test/integration "$@"
  ;;
*)
  echo "usage: bash test/tools/suite.sh go | integration BUILD_DIR [PYTEST_ARGS...]" >&2
  exit 64
  ;;
esac
