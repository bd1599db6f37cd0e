#!/usr/bin/env bash
# Builds a real OpenBao server binary (`bao`) from the Go module proxy and prints its path on
# stdout. Everything else goes to stderr.
#
# OpenBao's v2.x tags are not valid Go module versions, so this directory holds a tiny wrapper
# module (main.go) that requires OpenBao at the pseudo-version of the v2.4.0 release commit.
# The sum database does not know every OpenBao module, so integrity comes from the committed
# go.sum (GOSUMDB=off): a module whose hash differs from go.sum fails the build.
#
# The binary is cached in ${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/openbao/<version>/bao,
# keyed by the version and a hash of go.mod, go.sum and main.go (stored beside it in bao.key);
# a second run with the same inputs returns at once. The Go module and build caches are used as
# usual, so a rebuild after a go.sum change only compiles what changed.
#
# Usage: test/openbao/build.sh [--force]
set -euo pipefail

readonly OPENBAO_VERSION=2.4.0
readonly OPENBAO_COMMIT=f9407a27fbee

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/openbao
out_dir=$cache_root/$OPENBAO_VERSION
out=$out_dir/bao

force=0
if [[ ${1:-} == --force ]]; then
  force=1
fi

log() { printf 'openbao/build.sh: %s\n' "$*" >&2; }

key=$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-16)
key="$OPENBAO_VERSION-$key"

if [[ $force == 0 && -x $out && -f $out_dir/bao.key && $(cat "$out_dir/bao.key") == "$key" ]]; then
  log "cached: $out ($key)"
  printf '%s\n' "$out"
  exit 0
fi

go_bin=$(command -v go || true)
if [[ -z $go_bin && -x /usr/local/go/bin/go ]]; then
  go_bin=/usr/local/go/bin/go
fi
if [[ -z $go_bin ]]; then
  log "error: no Go toolchain found (need Go >= 1.25.8 in PATH or /usr/local/go/bin)"
  exit 1
fi

mkdir -p "$out_dir"
# Build from a scratch copy so that -mod=mod can never rewrite the committed go.mod/go.sum.
work=$(mktemp -d "$cache_root/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$here/go.mod" "$here/go.sum" "$here/main.go" "$work/"

log "building OpenBao $OPENBAO_VERSION ($OPENBAO_COMMIT) with $("$go_bin" version) ..."
start=$(date +%s)
(
  cd "$work"
  # GOTOOLCHAIN=auto lets a Go >= 1.21 fetch the toolchain go.mod asks for (1.25.8) from the proxy.
  export GOFLAGS=-mod=mod GOSUMDB=off GOTOOLCHAIN=${GOTOOLCHAIN:-auto} CGO_ENABLED=${CGO_ENABLED:-1}
  "$go_bin" build -trimpath \
    -ldflags "-s -w -X github.com/openbao/openbao/version.fullVersion=$OPENBAO_VERSION -X github.com/openbao/openbao/version.GitCommit=$OPENBAO_COMMIT" \
    -o "$work/bao" .
) >&2
# The wrapper must not have needed a module that go.sum does not pin.
if ! cmp -s "$work/go.sum" "$here/go.sum"; then
  log "warning: go.sum changed during the build; commit test/openbao/go.sum after review:"
  diff "$here/go.sum" "$work/go.sum" >&2 || true
fi
"$work/bao" version >&2
mv -f "$work/bao" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
printf '%s\n' "$key" > "$out_dir/bao.key"
log "built $out in $(( $(date +%s) - start ))s"
printf '%s\n' "$out"
