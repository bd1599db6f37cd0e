#include "crunchsecrets/vault/config.hpp"

#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/util/duration.hpp"

namespace cs::vault {

using core::Error;
using core::ExitCode;

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

bool parse_bool(const std::string& value, const std::string& var) {
  if (value == "1" || value == "true" || value == "TRUE" || value == "True" || value == "t" ||
      value == "yes") {
    return true;
  }
  if (value == "0" || value == "false" || value == "FALSE" || value == "False" || value == "f" ||
      value == "no") {
    return false;
  }
  throw Error(ExitCode::config, "{}='{}' is not a boolean: use true or false", var, value);
}

} // namespace

Config config_from_env(const EnvLookup& env) {
  Config c;
  if (auto v = lookup(env, "ADDR")) {
    c.address = v->first;
    while (!c.address.empty() && c.address.back() == '/') {
      c.address.pop_back();
    }
    if (c.address.rfind("http://", 0) != 0 && c.address.rfind("https://", 0) != 0) {
      throw Error(ExitCode::config, "{}='{}' must start with http:// or https://", v->second,
                  c.address);
    }
  }
  if (auto v = lookup(env, "CACERT")) {
    c.tls.ca_cert = v->first;
  }
  if (auto v = lookup(env, "CAPATH")) {
    c.tls.ca_path = v->first;
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
    c.vault_namespace = v->first;
  }
  if (auto v = lookup(env, "CLIENT_TIMEOUT")) {
    auto d = util::parse_duration(v->first);
    if (!d || d->count() <= 0) {
      throw Error(ExitCode::config, "{}='{}' is not a positive duration (e.g. 30s)", v->second,
                  v->first);
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
      throw Error(ExitCode::config, "{}='{}' is not a non-negative integer", v->second, v->first);
    }
    c.max_retries = n;
  }
  return c;
}

} // namespace cs::vault
