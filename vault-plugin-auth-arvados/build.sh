#!/usr/bin/env bash
# Builds the plugin binary: bash vault-plugin-auth-arvados/build.sh OUTPUT
# The one place that knows how the plugin is built (package, flags), so that test/run-all.sh,
# examples/demo.sh and the integration tests all get the same binary.
set -euo pipefail
if [[ $# -ne 1 || -z $1 ]]; then
  echo "usage: bash vault-plugin-auth-arvados/build.sh OUTPUT" >&2
  exit 64
fi
out=$1
# The output path is the caller's, so make it absolute before changing directory.
[[ $out == /* ]] || out=$PWD/$out
cd "$(dirname "${BASH_SOURCE[0]}")"
export GOFLAGS=${GOFLAGS:--mod=mod} GOSUMDB=${GOSUMDB:-off}
go build -trimpath -o "$out" ./cmd/vault-plugin-auth-arvados
