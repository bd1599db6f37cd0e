#!/usr/bin/env bash
# Builds the Debian packages crunch-secrets and vault-plugin-auth-arvados with
# `dpkg-buildpackage -b` from packaging/debian/, then runs lintian on them.
#   bash packaging/build-deb.sh [OUTDIR]     (default: build-deb)
# The source tree (tracked and untracked files that git does not ignore, so uncommitted work is
# packaged too) is copied to a scratch directory with packaging/debian/ as debian/ and its git
# revision recorded for `crunch-secrets --version`. Needs the build dependencies of
# packaging/debian/control (installed here when missing) and Go >= 1.24.6 on PATH
# (packaging/install-deps.sh fetches one).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-build-deb}
[[ $out == /* ]] || out=$PWD/$out
log() { printf 'build-deb: %s\n' "$*" >&2; }

export PATH=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/toolchain/go1.25.8/bin:$PATH:/usr/local/go/bin
export GOFLAGS=${GOFLAGS:--mod=mod} GOSUMDB=${GOSUMDB:-off} GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
command -v go >/dev/null || { log "no go on PATH: run bash packaging/install-deps.sh"; exit 1; }

debs=(dpkg-dev debhelper lintian fakeroot)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The package version is the project's (meson.build); debian/changelog must agree.
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$repo/meson.build" | head -n 1)
changelog=$(dpkg-parsechangelog -l "$repo/packaging/debian/changelog" -S Version)
if [[ ${changelog%-*} != "$version" ]]; then
  log "packaging/debian/changelog is at $changelog but meson.build at $version: add a changelog entry"
  exit 1
fi

# A fixed scratch path (with CCACHE_BASEDIR) lets ccache reuse the last package build's objects.
scratch=${TMPDIR:-/tmp}/crunch-secrets-deb
rm -rf "$scratch"
mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT
export CCACHE_BASEDIR=$scratch
src=$scratch/crunch-secrets-$version
mkdir -p "$src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
  tar --null -T - --ignore-failed-read -cf -) | tar -xf - -C "$src"
bash "$repo/packaging/git-revision.sh" >"$src/.git-revision"
cp -a "$repo/packaging/debian" "$src/debian"

log "dpkg-buildpackage -b in $src"
(cd "$src" && nice -n 10 dpkg-buildpackage -b -us -uc -j2 >"$scratch/build.log" 2>&1) || {
  tail -n 60 "$scratch/build.log" >&2
  log "dpkg-buildpackage failed (the log's last lines are above)"
  exit 1
}
mkdir -p "$out"
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
mv "$scratch"/*.deb "$scratch"/*.changes "$scratch"/*.buildinfo "$out/"
ls -l "$out"/*.deb >&2

log "lintian"
lintian --fail-on error --info "$out"/*.changes | tee "$out/lintian.txt" >&2
log "lintian: $(grep -c '^E:' "$out/lintian.txt" || true) errors, $(grep -c '^W:' "$out/lintian.txt" || true) warnings (in $out/lintian.txt)"
