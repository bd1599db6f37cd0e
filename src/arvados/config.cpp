#include "crunchsecrets/arvados/config.hpp"

#include "crunchsecrets/util/ca_bundle.hpp"
#include "crunchsecrets/util/error.hpp"

#include <algorithm>
#include <cctype>

namespace cs::arvados {

using util::Error;
using util::ExitCode;

bool flag_is_true(const std::string& value) {
  std::string v;
  for (char c : value) {
    v += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return v == "1" || v == "true" || v == "yes";
}

namespace {

// A host name, IPv4 address or bracketed IPv6 address, then an optional port.
bool valid_host_port(const std::string& hp) {
  if (hp.empty()) {
    return false;
  }
  std::string host = hp;
  std::string port;
  if (hp.front() == '[') {
    const std::size_t close = hp.find(']');
    if (close == std::string::npos) {
      return false;
    }
    host = hp.substr(1, close - 1);
    const std::string rest = hp.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return false;
      }
      port = rest.substr(1);
      if (port.empty()) {
        return false;
      }
    }
    if (host.empty() || !std::all_of(host.begin(), host.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
        })) {
      return false;
    }
  } else {
    const std::size_t colon = hp.rfind(':');
    if (colon != std::string::npos) {
      host = hp.substr(0, colon);
      port = hp.substr(colon + 1);
      if (port.empty()) {
        return false;
      }
    }
    if (host.empty() || !std::all_of(host.begin(), host.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.';
        })) {
      return false;
    }
  }
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c)) != 0;
        })) {
      return false;
    }
    const long p = std::stol(port);
    if (p < 1 || p > 65535) {
      return false;
    }
  }
  return true;
}

} // namespace

Config config_from_env(const EnvLookup& env, const FileExists& exists) {
  Config c;
  std::string host = env("ARVADOS_API_HOST").value_or("");
  if (host.empty()) {
    throw Error(ExitCode::config,
                "ARVADOS_API_HOST is not set: an Arvados credential reference needs the API "
                "host (crunch-run sets it when the container has runtime_constraints API: true)");
  }
  // Arvados clients take host[:port] and always speak https; tolerate a pasted https:// URL.
  if (host.rfind("https://", 0) == 0) {
    host = host.substr(8);
  }
  while (!host.empty() && host.back() == '/') {
    host.pop_back();
  }
  if (!valid_host_port(host)) {
    throw Error(ExitCode::config,
                "ARVADOS_API_HOST is not host[:port] (e.g. zzzzz.example.org or 10.0.0.1:8000): "
                "fix the variable");
  }
  c.base_url = "https://" + host;
  c.insecure = flag_is_true(env("ARVADOS_API_HOST_INSECURE").value_or(""));
  if (auto ca = env("CRUNCH_SECRETS_ARVADOS_CACERT"); ca && !ca->empty()) {
    if (!exists(*ca)) {
      throw Error(ExitCode::config,
                  "CRUNCH_SECRETS_ARVADOS_CACERT: {} does not exist: fix the path", *ca);
    }
    c.ca_file = *ca;
  } else if (auto bundle = util::find_ca_bundle(exists)) {
    c.ca_file = *bundle; // crunch-run's bundle first, then the system bundles
  }
  return c;
}

} // namespace cs::arvados
