// What the Vault transport runs on, for `crunch-secrets --version` and bug reports.
#pragma once

#include <string>

namespace cs::vault {

// One line naming the libcurl in use at run time (which may differ from the one built
// against), its TLS library, HTTP/2 library and resolver, e.g.
// "libcurl 7.88.1, TLS OpenSSL/3.0.16, HTTP/2 nghttp2/1.52.0, resolver c-ares 1.18.1".
std::string curl_version_line();

} // namespace cs::vault
