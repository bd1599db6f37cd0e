// Choosing the login method (README.md, "Authentication") and logging in once.
#pragma once

#include "crunchsecrets/core/manifest.hpp"
#include "crunchsecrets/vault/client.hpp"

#include <string>

namespace cs::core {

struct AuthOptions {
  AuthMethod method = AuthMethod::automatic;
  std::string token_file;
  std::string role_id;
  std::string role_id_file;
  std::string secret_id_file;
  std::string approle_mount = "approle";
  std::string wrapped_token_file;
  std::string arvados_role;
  std::string arvados_mount = "arvados";
  std::string arvados_token_file;
};

// Fills unset options from the manifest's `auth:` block and the environment.
AuthOptions merge_auth(AuthOptions options, const Manifest* manifest, const vault::EnvLookup& env);

// The Vault CLI's token file, `$HOME/.vault-token`, if it exists; else empty.
std::string vault_token_helper_file(const vault::EnvLookup& env);

// Picks the method (`automatic` resolves to the first that applies) without reading files;
// never returns `automatic`.
AuthMethod choose_method(const AuthOptions& options, const vault::EnvLookup& env);

// For `check --online` without --consume-credentials: validates a single-use credential
// without using it up (a wrapping token through sys/wrapping/lookup) and returns a line saying
// so, refuses an AppRole login (its secret id may be single use), or returns "" when the
// method's login uses nothing up and `login` may be called.
std::string check_without_login(vault::Client& client, const AuthOptions& options,
                                const vault::EnvLookup& env);

// Logs `client` in with the chosen method. Throws `core::Error`.
void login(vault::Client& client, const AuthOptions& options, const vault::EnvLookup& env);

} // namespace cs::core
