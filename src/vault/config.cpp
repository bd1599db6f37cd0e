#include "crunchsecrets/vault/config.hpp"

#include "crunchsecrets/util/duration.hpp"
#include "crunchsecrets/util/error.hpp"
#include "crunchsecrets/util/text.hpp"

namespace cs::vault {

using util::Error;
using util::ExitCode;

namespace {

// `BAO_<name>` wins over `VAULT_<name>`; returns the value and the variable it came from.
std::optional<std::pair<std::string, std::string>> lookup(const EnvLookup& env,
                                                          const std::string& name) {
  for (const char* prefix : {"BAO_", "VAULT_"}) {
    const std::string var = prefix + name;
    if (auto v = env(var); v && !v->empty()) {
      return std::make_pair(*v, var);
    }
  }
  return std::nullopt;
}

// Accepts exactly what Go's strconv.ParseBool accepts, as Vault's own client does for
// VAULT_SKIP_VERIFY, so one value means the same to both.
bool parse_bool(const std::string& value, const std::string& var) {
  for (const char* t : {"1", "t", "T", "TRUE", "true", "True"}) {
    if (value == t) {
      return true;
    }
  }
  for (const char* f : {"0", "f", "F", "FALSE", "false", "False"}) {
    if (value == f) {
      return false;
    }
  }
  throw Error(ExitCode::config, "{}='{}' is not a boolean: use true or false", var,
              util::excerpt(value));
}

} // namespace

std::string normalize_address(const std::string& value, const std::string& source) {
  std::string address = value;
  while (!address.empty() && address.back() == '/') {
    address.pop_back();
  }
  const std::size_t scheme_end = address.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : address.substr(0, scheme_end);
  // The authority ends at the first '/', '?' or '#'; userinfo is whatever precedes an '@' in it.
  const std::size_t host_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const std::size_t authority_end = address.find_first_of("/?#", host_start);
  const std::string authority =
      address.substr(host_start, authority_end == std::string::npos ? std::string::npos
                                                                    : authority_end - host_start);
  if (authority.find('@') != std::string::npos) {
    // Never echo the value: the part before '@' is a password.
    throw Error(ExitCode::config,
                "{} holds credentials before an '@' (userinfo), which Vault does not use and which "
                "would end up in logs: remove them from the address",
                source);
  }
  if (scheme != "http" && scheme != "https") {
    throw Error(ExitCode::config, "{}='{}' must start with http:// or https://", source,
                util::excerpt(address));
  }
  if (authority.empty()) {
    throw Error(ExitCode::config, "{}='{}' has no host", source, util::excerpt(address));
  }
  return address;
}

Config config_from_env(const EnvLookup& env) {
  Config c;
  if (auto v = lookup(env, "ADDR")) {
    c.address = normalize_address(v->first, v->second);
  }
  if (auto v = lookup(env, "CACERT")) {
    c.tls.ca_cert = v->first;
    c.tls.ca_cert_source = v->second;
  }
  if (auto v = lookup(env, "CAPATH")) {
    c.tls.ca_path = v->first;
    c.tls.ca_path_source = v->second;
  }
  if (auto v = lookup(env, "CLIENT_CERT")) {
    c.tls.client_cert = v->first;
  }
  if (auto v = lookup(env, "CLIENT_KEY")) {
    c.tls.client_key = v->first;
  }
  if (auto v = lookup(env, "TLS_SERVER_NAME")) {
    c.tls.server_name = v->first;
  }
  if (auto v = lookup(env, "SKIP_VERIFY")) {
    c.tls.skip_verify = parse_bool(v->first, v->second);
  }
  if (auto v = lookup(env, "NAMESPACE")) {
    // Sent as the X-Vault-Namespace header: a line break would add headers of its own.
    if (auto problem = util::credential_problem(v->first)) {
      throw Error(ExitCode::config, "{} {}: a namespace is one line of printable characters",
                  v->second, *problem);
    }
    c.vault_namespace = v->first;
  }
  if (auto v = lookup(env, "CLIENT_TIMEOUT")) {
    auto d = util::parse_duration(v->first);
    if (!d || d->count() <= 0) {
      throw Error(ExitCode::config, "{}='{}' is not a positive duration (e.g. 30s)", v->second,
                  util::excerpt(v->first));
    }
    c.client_timeout = *d;
  }
  if (auto v = lookup(env, "MAX_RETRIES")) {
    int n = -1;
    try {
      std::size_t used = 0;
      n = std::stoi(v->first, &used);
      if (used != v->first.size()) {
        n = -1;
      }
    } catch (const std::exception&) {
      n = -1;
    }
    if (n < 0) {
      throw Error(ExitCode::config, "{}='{}' is not a non-negative integer", v->second,
                  util::excerpt(v->first));
    }
    c.max_retries = n;
  }
  return c;
}

} // namespace cs::vault
