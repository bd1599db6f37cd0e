// Connection settings from the Vault/OpenBao client environment conventions.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace cs::vault {

struct TlsConfig {
  std::string ca_cert;
  std::string ca_path;
  // The variables `ca_cert` and `ca_path` came from (BAO_ or VAULT_), for error messages.
  std::string ca_cert_source = "VAULT_CACERT";
  std::string ca_path_source = "VAULT_CAPATH";
  std::string client_cert;
  std::string client_key;
  std::string server_name;
  bool skip_verify = false;
};

struct Config {
  std::string address; // scheme://host[:port], no trailing slash
  TlsConfig tls;
  std::string vault_namespace;
  std::chrono::milliseconds client_timeout{60000};
  std::optional<int> max_retries; // nullopt = until the deadline
};

// Looks up a variable; returns nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// Validates a Vault address from any source (`source` names it in errors: a variable or an
// option): http:// or https://, a host, no userinfo (never echoed); trailing slashes dropped.
// Throws `util::Error` (config).
std::string normalize_address(const std::string& value, const std::string& source);

// Reads `BAO_<NAME>` then `VAULT_<NAME>` for each setting. Throws `util::Error` (config) on a
// malformed value, naming the variable.
Config config_from_env(const EnvLookup& env);

} // namespace cs::vault
