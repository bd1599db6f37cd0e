#!/usr/bin/env bash
# Fetches the official Go toolchain go1.25.8 for linux-amd64 from the Go module proxy (where Go
# publishes its toolchains as the module golang.org/toolchain) into
# ${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/toolchain/go1.25.8, and does nothing when it is
# there already. install-deps.sh runs it when no new-enough `go` is installed.
#
# The archive is checked against a pinned SHA-256 before anything in it is extracted: a proxy
# (GOPROXY may name any mirror) or a network path that serves a different file is refused, and
# nothing is left in the cache. Exit status: 0 installed or already there, 1 refused or failed.
set -euo pipefail

tc=go1.25.8
platform=linux-amd64
# SHA-256 of the proxy's golang.org/toolchain/@v/v0.0.1-go1.25.8.linux-amd64.zip. Computed from
# the download that `go mod download` had verified against the Go checksum database
# (sum.golang.org: h1:MkNvPo+gHdMv6KJDtF7Ut6u/EG5iJRIfJv5eKmh7bNM=). Changing the toolchain
# version means computing this again the same way.
sha256=8e788d62e01f4f22037f2d59c751a08b4fa5ca9c1baab8f1caee8612bc3e46d1

log() { printf 'install-deps: %s\n' "$*" >&2; }

dest=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/toolchain/$tc
if [[ -x $dest/bin/go ]]; then
  exit 0
fi
if [[ $(uname -s)-$(uname -m) != Linux-x86_64 ]]; then
  log "no pinned Go toolchain for $(uname -s) $(uname -m); install Go >= 1.24.6 and put it on PATH"
  exit 1
fi

proxy=${GOPROXY:-https://proxy.golang.org}
proxy=${proxy%%,*}
if [[ $proxy == direct || $proxy == off ]]; then
  proxy=https://proxy.golang.org
fi
url=$proxy/golang.org/toolchain/@v/v0.0.1-$tc.$platform.zip

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log "fetching the Go toolchain $tc from $url"
if ! curl -fsSL "$url" -o "$tmp/go.zip"; then
  log "cannot download the Go toolchain from $url; check the network or GOPROXY, or install Go >= 1.24.6"
  exit 1
fi
got=$(sha256sum "$tmp/go.zip" | cut -d' ' -f1)
if [[ $got != "$sha256" ]]; then
  log "refusing the Go toolchain archive from $url: its SHA-256 is $got, not the pinned $sha256" \
    "(packaging/fetch-go-toolchain.sh); the proxy or the network served a different file." \
    "Check GOPROXY, or install Go >= 1.24.6 yourself"
  exit 1
fi

python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$tmp/go.zip" "$tmp/x"
root=$tmp/x/golang.org/toolchain@v0.0.1-$tc.$platform
if [[ ! -f $root/bin/go ]]; then
  log "the Go toolchain archive from $url has no bin/go; not installing it"
  exit 1
fi
# Zip archives carry no Unix modes that Python restores: make the tools executable again.
chmod +x "$root"/bin/* "$root"/pkg/tool/*/* 2>/dev/null || true
mkdir -p "$(dirname "$dest")"
# Move into place under a temporary name first, so that a half-copied toolchain (the cache may be
# on another file system than $TMPDIR) is never taken for a complete one.
rm -rf "$dest.partial" "$dest"
mv "$root" "$dest.partial"
mv "$dest.partial" "$dest"
log "installed the Go toolchain $tc (SHA-256 verified) in $dest"
