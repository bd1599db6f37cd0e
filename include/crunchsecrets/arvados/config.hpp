// Connection settings from the Arvados client environment conventions.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace cs::arvados {

// The CA bundle crunch-run bind-mounts into a container that has `API: true`.
inline constexpr const char* k_container_ca_bundle = "/etc/arvados/ca-certificates.crt";

struct Config {
  std::string base_url;  // https://host[:port], no trailing slash
  bool insecure = false; // ARVADOS_API_HOST_INSECURE: do not verify the server certificate
  std::string ca_file;   // empty: the system's trust store
  std::chrono::milliseconds client_timeout{60000};
};

// Looks up a variable; returns nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
// Says whether a file exists (so that tests need no real /etc/arvados).
using FileExists = std::function<bool(const std::string&)>;

// True for the values the Arvados SDKs treat as "yes": 1, true, yes (any case).
bool flag_is_true(const std::string& value);

// Reads ARVADOS_API_HOST (host[:port], meaning https; a leading "https://" is tolerated),
// ARVADOS_API_HOST_INSECURE and the CA bundle: $CRUNCH_SECRETS_ARVADOS_CACERT, else
// the first existing file of `util::ca_bundle_candidates()` (crunch-run's bundle first). Throws
// `util::Error` (config, 78) naming the variable when ARVADOS_API_HOST is missing or malformed.
Config config_from_env(const EnvLookup& env, const FileExists& exists);

} // namespace cs::arvados
