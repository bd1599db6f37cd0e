#include "crunchsecrets/vault/curl_version.hpp"

#include <curl/curl.h>
#include <fmt/format.h>

namespace cs::vault {

std::string curl_version_line() {
  const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
  if (info == nullptr) {
    // libcurl is loaded on first use (util/curl_library.hpp) and could not be.
    return "libcurl: cannot be loaded (libcurl.so.4): install libcurl 7.85 or later";
  }
  std::string line = fmt::format("libcurl {}", info->version);
  line += fmt::format(", TLS {}", info->ssl_version != nullptr ? info->ssl_version : "none");
  if ((info->features & CURL_VERSION_HTTP2) != 0 && info->nghttp2_version != nullptr) {
    line += fmt::format(", HTTP/2 nghttp2/{}", info->nghttp2_version);
  } else {
    line += ", HTTP/2 unavailable";
  }
  // c-ares and the threaded resolver are the two asynchronous resolvers libcurl offers; only
  // c-ares reports a version.
  if (info->ares != nullptr) {
    line += fmt::format(", resolver c-ares {}", info->ares);
  } else if ((info->features & CURL_VERSION_ASYNCHDNS) != 0) {
    line += ", resolver threaded getaddrinfo";
  } else {
    line += ", resolver getaddrinfo";
  }
  return line;
}

} // namespace cs::vault
