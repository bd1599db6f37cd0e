#include "crunchsecrets/util/ca_bundle.hpp"

#include <sys/stat.h>
#include <unistd.h>

namespace cs::util {

const std::vector<std::string>& ca_bundle_candidates() {
  static const std::vector<std::string> candidates = {
      "/etc/arvados/ca-certificates.crt",                  // crunch-run's bind mount
      "/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Alpine, Gentoo
      "/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
      "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // RHEL 7 and later, CentOS
      "/etc/ssl/ca-bundle.pem",                            // openSUSE
      "/etc/ssl/cert.pem",                                 // Alpine, OpenSSL's default file
  };
  return candidates;
}

bool readable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), R_OK) == 0;
}

std::optional<std::string> find_ca_bundle(const std::function<bool(const std::string&)>& usable) {
  for (const auto& path : ca_bundle_candidates()) {
    if (usable(path)) {
      return path;
    }
  }
  return std::nullopt;
}

} // namespace cs::util
