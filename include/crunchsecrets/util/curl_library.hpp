// libcurl, loaded on first use rather than at start-up. Linked, libcurl makes the dynamic loader
// map and relocate about 30 shared libraries (OpenSSL, GnuTLS, Kerberos, LDAP, SSH, ...) before
// `main`: ~5 ms of CPU on every run, including the runs that fetch nothing and only exec their
// command (docs/bench/README.md, "Where the start-up time goes").
//
// So crunch-secrets does not link libcurl. src/util/curl_library.cpp defines the libcurl
// functions that the transports call, under their own names; the first call loads
// `libcurl.so.4` with `dlopen` and each function forwards to the library's. A transport includes
// <curl/curl.h> and calls libcurl as usual. A libcurl function that has no forwarder here fails
// the link (crunch-secrets has no libcurl to resolve it from): add it to the file.
#pragma once

#include "crunchsecrets/util/result.hpp"

namespace cs::util::curl {

// Loads libcurl (`LIBCURL_SONAME`, found the way the dynamic loader finds a linked library),
// checks its version and runs `curl_global_init`, once per process. Later calls return the first
// call's outcome; the error names the library and what to install.
Status load();

// `load()`, throwing its error as `Error(ExitCode::config, ...)` (exit code 78: the host lacks a
// usable libcurl, which installing one fixes). The transports call it when they are created,
// so a run with nothing to fetch never needs libcurl.
void load_or_throw();

} // namespace cs::util::curl
