#!/usr/bin/env bash
# Prints the path of a tarball of a minimal rootfs of an older Debian release (debootstrap
# --variant=minbase from Debian's package archive), cached in
# ${XDG_CACHE_HOME:-~/.cache}/crunch-secrets/rootfs. test/packaging runs the self-contained
# binary inside it to show that it needs nothing of the userland it lands in.
#   bash packaging/debian-rootfs.sh [SUITE]      (default: bullseye, Debian 11, glibc 2.31)
set -euo pipefail
suite=${1:-bullseye}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/rootfs
tarball=$cache/debian-$suite-minbase.tar
if [[ -s $tarball ]]; then
  echo "$tarball"
  exit 0
fi
log() { printf 'debian-rootfs: %s\n' "$*" >&2; }
if ! command -v debootstrap >/dev/null; then
  log "apt-get install debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
fi
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "debootstrap --variant=minbase $suite (about 2 minutes, once)"
nice -n 10 debootstrap --variant=minbase "$suite" "$work/root" http://deb.debian.org/debian >"$work/log" 2>&1 || {
  tail -n 20 "$work/log" >&2
  exit 1
}
rm -rf "$work/root/var/cache/apt/archives"/*.deb
tar --numeric-owner -C "$work/root" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
log "cached $tarball ($(du -h "$tarball" | cut -f1))"
echo "$tarball"
