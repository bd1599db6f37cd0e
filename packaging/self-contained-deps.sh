#!/usr/bin/env bash
# Prepares what `meson setup -Dself_contained=true` links, and prints its prefix on stdout (all
# else goes to stderr). meson.build runs it; it can also be run by hand.
#
# The self-contained crunch-secrets is one static executable (static-pie, glibc) that needs
# nothing from the host but the kernel. Debian 12 ships static archives of everything it uses
# (OpenSSL, nghttp2, c-ares, zlib, yaml-cpp; fmt is used header-only) except a usable libcurl:
# Debian's libcurl.a is built with GSS-API, LDAP, libssh2, librtmp, libpsl and IDN, most of which
# have no static form. So libcurl is built here from Debian's own source package (with Debian's
# patches) with only what crunch-secrets uses: HTTP and HTTPS, OpenSSL, HTTP/2 (nghttp2), and the
# c-ares resolver, which reads /etc/resolv.conf and /etc/hosts itself, so name resolution never
# loads the host's NSS modules (a static glibc's getaddrinfo would try to). No CA path is
# compiled in: crunch-secrets chooses the CA bundle itself (src/util/ca_bundle.cpp).
#
# The result is cached in ${XDG_CACHE_HOME:-~/.cache}/crunch-secrets/self-contained/<key>, where
# the key is this script's SHA-256, so a changed recipe rebuilds. A fresh machine needs Debian's
# package archive (binary and source); building takes about 3 minutes on 2 cores.
set -euo pipefail

log() { printf 'self-contained-deps: %s\n' "$*" >&2; }
script=$(readlink -f "${BASH_SOURCE[0]}")
key=$(sha256sum "$script" | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/self-contained
prefix=$cache/$key
if [[ -f $prefix/.complete ]]; then
  echo "$prefix"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ -f $prefix/.complete ]]; then
  echo "$prefix"
  exit 0
fi

# Static archives and the tools to unpack a Debian source package.
debs=(libssl-dev libnghttp2-dev libc-ares-dev zlib1g-dev libyaml-cpp-dev libfmt-dev dpkg-dev
  gcc make pkg-config)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# curl's source from Debian, through a private source list so the system's apt configuration is
# left as it is.
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
cat >"$work/sources.list" <<SOURCES
deb-src http://deb.debian.org/debian $codename main
deb-src http://deb.debian.org/debian-security $codename-security main
SOURCES
mkdir -p "$work/lists/partial"
apt_src=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o Dir::State::Lists="$work/lists" -o APT::Sandbox::User=root)
log "fetching curl's Debian source package"
apt-get "${apt_src[@]}" update -qq >&2
(cd "$work" && apt-get "${apt_src[@]}" source --download-only curl >&2)
# Debian's patches, up to the ones its series marks as producing the GnuTLS and NSS flavours.
dpkg-source --skip-patches -x "$work"/curl_*.dsc "$work/curl" >&2
while read -r patch; do
  [[ $patch == "# Do not add patches below."* ]] && break
  [[ -z $patch || $patch == \#* ]] && continue
  patch -s -p1 -d "$work/curl" <"$work/curl/debian/patches/${patch%% *}" >&2
done <"$work/curl/debian/patches/series"
version=$(cd "$work" && ls curl_*.dsc | sed 's/^curl_//; s/\.dsc$//')

log "building libcurl $version (static, HTTP(S) only, OpenSSL, nghttp2, c-ares) into $prefix"
rm -rf "$prefix"
(
  cd "$work/curl"
  ./configure --prefix="$prefix" --disable-shared --enable-static --with-pic \
    --with-openssl --with-nghttp2 --enable-ares --with-zlib \
    --disable-ldap --disable-ldaps --disable-rtsp --disable-dict --disable-telnet \
    --disable-tftp --disable-pop3 --disable-imap --disable-smb --disable-smtp --disable-gopher \
    --disable-mqtt --disable-ftp --disable-file --disable-manual --disable-ntlm \
    --disable-ntlm-wb --disable-alt-svc --disable-docs --disable-cookies --disable-netrc \
    --without-libpsl --without-brotli --without-zstd --without-libidn2 --without-librtmp \
    --without-libssh2 --without-libssh --without-gssapi --without-ngtcp2 --without-nghttp3 \
    --without-quiche --without-hyper --without-ca-bundle --without-ca-path --without-ca-fallback \
    CFLAGS="-O2 -ffunction-sections -fdata-sections -fstack-protector-strong" >"$work/configure.log" 2>&1 ||
    { tail -n 30 "$work/configure.log" >&2; exit 1; }
  grep -q 'resolver:         c-ares' "$work/configure.log" || { log "c-ares not enabled"; exit 1; }
  grep -q 'HTTP2:            enabled' "$work/configure.log" || { log "HTTP/2 not enabled"; exit 1; }
  nice -n 10 make -j2 -C lib >"$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
  make -C lib install >/dev/null
  make -C include install >/dev/null
)
echo "$version" >"$prefix/curl-version"
touch "$prefix/.complete"
log "done: $prefix"
echo "$prefix"
