#!/usr/bin/env bash
# Builds and tests what users install: the self-contained binary (meson -Dself_contained=true in
# build-sc; libcurl prepared by packaging/self-contained-deps.sh, cached) in a rootfs holding only
# it, a CA file and the probe, and in a Debian 11 rootfs (packaging/debian-rootfs.sh, cached);
# its size and start time next to the dynamic build's; and the Debian packages
# (packaging/build-deb.sh, lintian) installed on this machine, running the demo's Arvados part.
# Needs root (chroot, mount namespaces, dpkg). .ci/run calls it.
#
# Environment: DYN_BIN (default build-release/crunch-secrets, else build/crunch-secrets), the
# dynamic build to compare with.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
export PATH=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/toolchain/go1.25.8/bin:$PATH:/usr/local/go/bin
export GOFLAGS=${GOFLAGS:--mod=mod} GOSUMDB=${GOSUMDB:-off} GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
step() { printf '\n=== %s\n' "$*"; }

step "dependencies, OpenBao"
bash packaging/install-deps.sh
BAO_BIN=$(bash test/openbao/build.sh)
export BAO_BIN

step "self-contained build (build-sc)"
[[ -f build-sc/build.ninja ]] || meson setup build-sc -Dself_contained=true --buildtype=minsize -Db_lto=true
ninja -C build-sc crunch-secrets test/probe/probe
export SC_BIN=$repo/build-sc/crunch-secrets SC_PROBE=$repo/build-sc/test/probe/probe
if [[ -z ${DYN_BIN:-} ]]; then
  DYN_BIN=$repo/build-release/crunch-secrets
  [[ -x $DYN_BIN ]] || DYN_BIN=$repo/build/crunch-secrets
fi
[[ -x $DYN_BIN ]] || { echo "no dynamic build at $DYN_BIN: build it first (ninja -C build)" >&2; exit 1; }
export DYN_BIN

step "Debian 11 rootfs (debootstrap, cached)"
BULLSEYE_TAR=$(bash packaging/debian-rootfs.sh bullseye)
export BULLSEYE_TAR

step "Debian packages (dpkg-buildpackage -b, lintian)"
bash packaging/build-deb.sh build-deb
export DEB_DIR=$repo/build-deb

step "packaging tests (pytest)"
export FIGURES_FILE=$repo/build-sc/figures.txt
python3 -m pytest -q test/packaging
cat "$FIGURES_FILE"
