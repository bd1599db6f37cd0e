// Choosing the login method (README.md, "Authentication") and logging in once.
#pragma once

#include "crunchsecrets/core/manifest.hpp"
#include "crunchsecrets/vault/client.hpp"

#include <string>

namespace cs::core {

struct AuthOptions {
  std::string method = "auto"; // auto | token | approle | wrapped | arvados
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

// Picks the method (`auto` resolves to the first that applies) without reading files.
std::string choose_method(const AuthOptions& options, const vault::EnvLookup& env);

// Logs `client` in with the chosen method. Throws `core::Error`.
void login(vault::Client& client, const AuthOptions& options, const vault::EnvLookup& env);

} // namespace cs::core
