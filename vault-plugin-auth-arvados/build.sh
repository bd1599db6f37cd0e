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
# The plugin reports the project's version (meson.build) as its RunningVersion, with the "v" of a
# Go/OpenBao semantic version; PLUGIN_VERSION overrides it.
version=${PLUGIN_VERSION:-v$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" ../meson.build | head -n 1)}
if [[ ! $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?$ ]]; then
  echo "build.sh: the plugin version '$version' is not a semantic version (from meson.build or PLUGIN_VERSION)" >&2
  exit 1
fi
export GOFLAGS=${GOFLAGS:--mod=mod} GOSUMDB=${GOSUMDB:-off}
go build -trimpath -ldflags "-X crunch-secrets/vault-plugin-auth-arvados.pluginVersion=$version" \
  -o "$out" ./cmd/vault-plugin-auth-arvados
