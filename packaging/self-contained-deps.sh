#!/usr/bin/env bash
# Prepares what `meson setup -Dself_contained=true` links, and prints its prefix on stdout (all
# else goes to stderr). meson.build runs it; it can also be run by hand.
#
# The self-contained crunch-secrets is one static executable (static-pie, glibc) that needs
# nothing from the host but the kernel. Two libraries are built here from Debian source packages
# (with Debian's patches), each with only what a TLS client of Vault needs, and two with one
# section per function (-Os) so the linker keeps only what is referenced; yaml-cpp is Debian's
# static archive (fmt is used header-only).
#
# - OpenSSL from Debian 13's source package (3.5, an upstream LTS release supported until
#   2030-04-08; 3.0, Debian 12's, reached its upstream end of life on 2026-09-07), static,
#   without the algorithms, protocols and subsystems a TLS 1.2/1.3 client never uses (legacy
#   ciphers and digests, SSLv3/TLS 1.0/1.1, DTLS, QUIC, engines, dynamic loading, CMS, CMP, OCSP,
#   CT, SRP, PSK, finite-field DH, ChaCha20-Poly1305, GOST/SM, ...); AES-GCM is the cipher every
#   TLS 1.2/1.3 server offers (TLS 1.3 mandates it). The AVX-512 AES-GCM and AES-XTS assembly
#   (0.7 MB of unrolled code) is left out: the generators then emit the stubs they emit for an
#   assembler without AVX-512, and AES-GCM runs on the AES-NI/PCLMULQDQ code, constant-time as
#   well. The NIST curves use OpenSSL's generic code (a constant-time ladder for secret scalars)
#   instead of the P-256 assembly with its 150 KB table: a client does a few point
#   multiplications per run. No OpenSSL configuration file is read (no-autoload-config, and
#   libcurl does not ask for one): the binary behaves the same in every image, whatever its
#   openssl.cnf or $OPENSSL_CONF say. Debian's own libcrypto.a brings every algorithm of the
#   default provider (about 4 MB linked); this one about 1.7 MB (README, "Building").
# - libcurl from the build machine's release (Debian's libcurl.a is built with GSS-API, LDAP,
#   libssh2, librtmp, libpsl and IDN, most of which have no static form) with only what
#   crunch-secrets uses: HTTP and HTTPS over the OpenSSL above, HTTP/2 (nghttp2), and the c-ares
#   resolver, which reads /etc/resolv.conf and /etc/hosts itself, so name resolution never loads
#   the host's NSS modules (a static glibc's getaddrinfo would try to). No CA path is compiled
#   in: crunch-secrets chooses the CA bundle itself (src/util/ca_bundle.cpp). Also left out:
#   HSTS, DNS-over-HTTPS, MIME, Digest/Kerberos/SPNEGO/AWS auth, Unix sockets, date parsing, the
#   progress meter, the header and option APIs, and verbose strings (crunch-secrets uses none of
#   these; error messages stay; proxies from the environment, with Basic auth, still work).
# - nghttp2 and c-ares from the build machine's release, static, as they are.
#
# The C libraries are built without unwind tables: none calls into C++ code that can throw
# (libcurl's callbacks in crunch-secrets are noexcept), so no exception unwinds through them.
#
# The result is cached in ${XDG_CACHE_HOME:-~/.cache}/crunch-secrets/self-contained/<key>, where
# the key is this script's SHA-256, so a changed recipe rebuilds. A fresh machine needs Debian's
# package archive (binary and source); building takes about 5 minutes on 2 busy cores.
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

# The release whose OpenSSL source package is built (see above).
readonly OPENSSL_SUITE=trixie

# Static archives and the tools to unpack and build Debian source packages.
debs=(libyaml-cpp-dev libfmt-dev dpkg-dev gcc make cmake perl pkg-config)
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

# fetch PACKAGE SUITE: downloads the newest source package of PACKAGE in SUITE and its security
# suite through a private source list (the system's apt configuration is left as it is) into
# $work/PACKAGE-src and prints its version. A version the archive lists but does not serve (a
# mirror caught mid-update) is reported and the next older one tried.
fetch() {
  local pkg=$1 suite=$2 dir=$work/$1-src
  mkdir -p "$dir/lists/partial"
  printf 'deb-src http://deb.debian.org/debian %s main\ndeb-src http://deb.debian.org/debian-security %s-security main\n' \
    "$suite" "$suite" >"$dir/sources.list"
  local apt=(-o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::State::Lists="$dir/lists" -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update -qq >&2
  local versions=() v i
  while read -r v; do
    # Newest first, in Debian's version order.
    for ((i = 0; i < ${#versions[@]}; i++)); do
      dpkg --compare-versions "$v" gt "${versions[i]}" && break
    done
    versions=("${versions[@]:0:i}" "$v" "${versions[@]:i}")
  done < <(apt-cache "${apt[@]}" showsrc "$pkg" | sed -n 's/^Version: //p' | sort -u)
  ((${#versions[@]})) || { log "no source package $pkg in $suite"; return 1; }
  local skipped=()
  for v in "${versions[@]}"; do
    if (cd "$dir" && apt-get "${apt[@]}" source --download-only "$pkg=$v" >/dev/null 2>&1); then
      ((${#skipped[@]} == 0)) ||
        log "WARNING: $pkg ${skipped[*]} listed but not served by the archive; using $v"
      echo "$v"
      return 0
    fi
    skipped+=("$v")
    rm -f "$dir"/*.dsc "$dir"/*.tar.* "$dir"/*.diff.gz
  done
  log "no version of source package $pkg could be downloaded from $suite"
  return 1
}

# Hardening as for crunch-secrets itself (meson.build), and only what is referenced is linked.
hardening=(-fstack-protector-strong -fstack-clash-protection -fcf-protection -D_FORTIFY_SOURCE=2)
small=(-Os -ffunction-sections -fdata-sections)
no_unwind=(-fno-asynchronous-unwind-tables -fno-unwind-tables)
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")

rm -rf "$prefix"

log "fetching openssl's source package from $OPENSSL_SUITE"
openssl_version=$(fetch openssl "$OPENSSL_SUITE")
dpkg-source -x "$work"/openssl-src/openssl_*.dsc "$work/openssl" >/dev/null 2>&1 ||
  { log "dpkg-source could not unpack openssl $openssl_version"; exit 1; }
log "building OpenSSL $openssl_version (static, TLS client essentials) into $prefix"
(
  cd "$work/openssl"
  for f in crypto/modes/asm/aes-gcm-avx512.pl crypto/aes/asm/aesni-xts-avx512.pl; do
    grep -q '^open OUT' "$f" || { log "$f changed: no 'open OUT' line to put the switch before"; exit 1; }
    sed -i 's/^open OUT/$avx512vaes = 0;  # crunch-secrets: the fallback stubs only\nopen OUT/' "$f"
  done
  grep -q '^  \$ECASM_x86_64=ecp_nistz256.c ecp_nistz256-x86_64.s$' crypto/ec/build.info ||
    { log "crypto/ec/build.info changed: no x86_64 P-256 assembly line"; exit 1; }
  sed -i 's/^  \$ECASM_x86_64=ecp_nistz256.c ecp_nistz256-x86_64.s$/  $ECASM_x86_64=/;
    s/^  \$ECDEF_x86_64=ECP_NISTZ256_ASM$/  $ECDEF_x86_64=/' crypto/ec/build.info
  options=(no-shared no-module no-dso no-engine no-legacy no-deprecated no-comp no-zlib
    no-ssl3 no-tls1 no-tls1_1 no-dtls no-dgram no-quic no-srtp no-sctp no-nextprotoneg no-ktls
    no-multiblock no-chacha no-poly1305 no-dh no-srp no-psk no-gost no-idea no-camellia no-seed no-sm2
    no-sm3 no-sm4 no-aria no-bf no-cast no-rc2 no-rc4 no-rc5 no-md2 no-md4 no-mdc2 no-whirlpool no-des no-rmd160
    no-siphash no-scrypt no-argon2 no-ocb no-siv no-blake2 no-ml-dsa no-slh-dsa no-dsa no-ec2m
    no-tls-deprecated-ec no-integrity-only-ciphers no-rfc3779 no-ct no-cms no-ts no-cmp no-http
    no-ocsp no-ui-console no-async no-thread-pool no-default-thread-pool no-apps no-tests
    no-docs no-fips no-egd no-ssl-trace no-unit-test no-autoload-config)
  ./Configure linux-x86_64 --prefix="$prefix" --libdir=lib --openssldir=/usr/lib/ssl \
    "${options[@]}" "${small[@]}" "${hardening[@]}" "${no_unwind[@]}" \
    >"$work/openssl-configure.log" 2>&1 ||
    { tail -n 30 "$work/openssl-configure.log" >&2; exit 1; }
  nice -n 10 make -j2 build_libs >"$work/openssl-make.log" 2>&1 ||
    { tail -n 30 "$work/openssl-make.log" >&2; exit 1; }
  make install_dev >"$work/openssl-install.log" 2>&1 ||
    { tail -n 30 "$work/openssl-install.log" >&2; exit 1; }
  stub=$(ar p "$prefix/lib/libcrypto.a" libcrypto-lib-aes-gcm-avx512.o | wc -c)
  ((stub < 20000)) || { log "the AVX-512 AES-GCM code is still built ($stub bytes)"; exit 1; }
  ! ar t "$prefix/lib/libcrypto.a" | grep -q nistz256 || { log "P-256 assembly still built"; exit 1; }
)

log "fetching nghttp2's and c-ares' source packages from $codename"
nghttp2_version=$(fetch nghttp2 "$codename")
dpkg-source -x "$work"/nghttp2-src/nghttp2_*.dsc "$work/nghttp2" >/dev/null 2>&1 ||
  { log "dpkg-source could not unpack nghttp2 $nghttp2_version"; exit 1; }
cares_version=$(fetch c-ares "$codename")
dpkg-source -x "$work"/c-ares-src/c-ares_*.dsc "$work/c-ares" >/dev/null 2>&1 ||
  { log "dpkg-source could not unpack c-ares $cares_version"; exit 1; }
log "building nghttp2 $nghttp2_version and c-ares $cares_version (static) into $prefix"
(
  cd "$work/nghttp2"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=None -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DCMAKE_INSTALL_LIBDIR=lib -DENABLE_LIB_ONLY=ON -DENABLE_STATIC_LIB=ON -DENABLE_SHARED_LIB=OFF \
    -DENABLE_DOC=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DCMAKE_C_FLAGS="${small[*]} ${hardening[*]} ${no_unwind[*]}" >"$work/nghttp2.log" 2>&1 &&
    nice -n 10 cmake --build build -j 2 >>"$work/nghttp2.log" 2>&1 &&
    cmake --install build >>"$work/nghttp2.log" 2>&1 ||
    { tail -n 30 "$work/nghttp2.log" >&2; exit 1; }
  [[ -f $prefix/lib/libnghttp2.a ]] || { log "nghttp2 installed no libnghttp2.a"; exit 1; }
)
(
  cd "$work/c-ares"
  ./configure --prefix="$prefix" --libdir="$prefix/lib" --disable-shared --enable-static \
    --with-pic --disable-tests CFLAGS="${small[*]} ${hardening[*]} ${no_unwind[*]}" \
    >"$work/c-ares.log" 2>&1 && nice -n 10 make -j2 >>"$work/c-ares.log" 2>&1 &&
    make install >>"$work/c-ares.log" 2>&1 || { tail -n 30 "$work/c-ares.log" >&2; exit 1; }
)
printf 'nghttp2 %s\nc-ares %s\n' "$nghttp2_version" "$cares_version" >"$prefix/versions"

log "fetching curl's source package from $codename"
curl_version=$(fetch curl "$codename")
# Debian's patches, up to the ones its series marks as producing the GnuTLS and NSS flavours.
dpkg-source --skip-patches -x "$work"/curl-src/curl_*.dsc "$work/curl" >&2
while read -r patch; do
  [[ $patch == "# Do not add patches below."* ]] && break
  [[ -z $patch || $patch == \#* ]] && continue
  patch -s -p1 -d "$work/curl" <"$work/curl/debian/patches/${patch%% *}" >&2
done <"$work/curl/debian/patches/series"

log "building libcurl $curl_version (static, HTTP(S) only, OpenSSL, nghttp2, c-ares) into $prefix"
(
  cd "$work/curl"
  PKG_CONFIG_PATH=$prefix/lib/pkgconfig ./configure --prefix="$prefix" --disable-shared \
    --enable-static --with-pic --with-openssl="$prefix" --with-nghttp2="$prefix" \
    --enable-ares="$prefix" --disable-hsts --disable-doh --disable-mime --disable-verbose \
    --disable-kerberos-auth --disable-negotiate-auth --disable-aws --disable-unix-sockets \
    --disable-crypto-auth --disable-dateparse --disable-progress-meter --disable-dnsshuffle \
    --disable-get-easy-options --disable-headers-api --disable-openssl-auto-load-config \
    --without-zlib --disable-ldap --disable-ldaps --disable-rtsp --disable-dict --disable-telnet \
    --disable-tftp --disable-pop3 --disable-imap --disable-smb --disable-smtp --disable-gopher \
    --disable-mqtt --disable-ftp --disable-file --disable-manual --disable-ntlm \
    --disable-ntlm-wb --disable-alt-svc --disable-docs --disable-cookies --disable-netrc \
    --without-libpsl --without-brotli --without-zstd --without-libidn2 --without-librtmp \
    --without-libssh2 --without-libssh --without-gssapi --without-ngtcp2 --without-nghttp3 \
    --without-quiche --without-hyper --without-ca-bundle --without-ca-path --without-ca-fallback \
    CFLAGS="${small[*]} ${hardening[*]} ${no_unwind[*]}" LIBS=-pthread >"$work/configure.log" 2>&1 ||
    { tail -n 30 "$work/configure.log" >&2; exit 1; }
  grep -q 'SSL:              enabled (OpenSSL v3+)' "$work/configure.log" ||
    { log "OpenSSL not enabled"; exit 1; }
  grep -q 'resolver:         c-ares' "$work/configure.log" || { log "c-ares not enabled"; exit 1; }
  grep -q 'HTTP2:            enabled' "$work/configure.log" || { log "HTTP/2 not enabled"; exit 1; }
  nice -n 10 make -j2 -C lib >"$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
  make -C lib install >/dev/null
  make -C include install >/dev/null
)
echo "openssl $openssl_version" >>"$prefix/versions"
echo "curl $curl_version" >>"$prefix/versions"
touch "$prefix/.complete"
log "done: $prefix"
echo "$prefix"
