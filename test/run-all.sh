#!/usr/bin/env bash
# Runs every test of crunch-secrets: the C++ unit tests, the Go plugin's tests, and the
# integration suite against real OpenBao dev servers and the Arvados API stand-in.
# This is the test command README.md gives; .ci/run calls it.
#
# Environment: BUILD_DIR (default build), MESON_ARGS (extra `meson setup` arguments),
# PYTEST_ARGS (extra pytest arguments), RUN_GO_TESTS=0 (skip the plugin's Go tests),
# RUN_NETWORK_TESTS=1 (also the tests that download from the Go module proxy; .ci/run sets it).
#
# Options: --ha also runs the HA suite (test/integration/test_ha.py: a real 3-node OpenBao Raft
# cluster, non-dev mode, with failover, sealing and unsealing while crunch-secrets runs).
set -euo pipefail

ha=0
for arg in "$@"; do
  case $arg in
  --ha) ha=1 ;;
  *)
    echo "usage: bash test/run-all.sh [--ha]" >&2
    exit 64
    ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export PATH=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/toolchain/go1.25.8/bin:$PATH:/usr/local/go/bin
export GOFLAGS=${GOFLAGS:--mod=mod} GOSUMDB=${GOSUMDB:-off} GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
build=${BUILD_DIR:-build}
step() { printf '\n=== %s\n' "$*"; }
failed=()

step "dependencies"
bash packaging/install-deps.sh

step "PostgreSQL 15 (Debian) for the dynamic-secrets tests"
bash test/postgres/pg.sh install

step "OpenBao (real server, built from the Go module proxy, cached)"
BAO_BIN=$(bash test/openbao/build.sh)
export BAO_BIN
"$BAO_BIN" version

step "cwltool (PyPI, pinned, cached venv) for the CWL tests"
bash packaging/install-cwltool.sh

step "crunch-secrets (meson, $build)"
if [[ ! -f $build/build.ninja ]]; then
  # shellcheck disable=SC2086
  meson setup "$build" -Dtests=true ${MESON_ARGS:-}
fi
ninja -C "$build"
export CRUNCH_SECRETS_BIN=$repo/$build/crunch-secrets PROBE_BIN=$repo/$build/test/probe/probe ARVADOS_FETCH_BIN=$repo/$build/arvados-fetch

step "C++ unit tests (doctest)"
"$build/test/unit/unit-tests" || failed+=("unit tests")
"$build/unit-tests-supervise" || failed+=("supervise unit tests")
"$build/unit-tests-arvados" || failed+=("arvados unit tests")

if [[ ${RUN_GO_TESTS:-1} == 1 ]]; then
  step "vault-plugin-auth-arvados: go vet, go test"
  bash test/tools/suite.sh go || failed+=("plugin go tests")
fi

step "plugin binary for the end-to-end tests"
plugin_dir=$repo/$build/plugins
mkdir -p "$plugin_dir"
bash vault-plugin-auth-arvados/build.sh "$plugin_dir/vault-plugin-auth-arvados"
export ARVADOS_PLUGIN_BIN=$plugin_dir/vault-plugin-auth-arvados

step "integration tests (pytest, real OpenBao)"
# shellcheck disable=SC2086
bash test/tools/suite.sh integration "$build" ${PYTEST_ARGS:-} || failed+=("integration tests")

if ((ha)); then
  step "HA: 3-node OpenBao Raft cluster (pytest, CS_HA=1)"
  ha_start=$(date +%s)
  # shellcheck disable=SC2086
  CS_HA=1 python3 -m pytest -s test/integration/test_ha.py ${PYTEST_ARGS:-} || failed+=("HA tests")
  echo "HA suite took $(($(date +%s) - ha_start))s"
fi

if ((${#failed[@]})); then
  printf '\nFAILED: %s\n' "${failed[*]}"
  exit 1
fi
printf '\nall test suites passed\n'
