// Arvados credentials as a second source beside Vault: fetching the credentials a plan needs
// with the container's token, concurrently with the Vault reads.
#pragma once

#include "crunchsecrets/core/markers.hpp"
#include "crunchsecrets/core/resolve.hpp"

#include <functional>
#include <string>

namespace cs::core {

// Fetches every credential in `plan.credentials` from the Arvados API named by `env`
// (ARVADOS_API_HOST, ARVADOS_API_HOST_INSECURE, the CA bundle) with ARVADOS_API_TOKEN, or the
// token in `token_file` when it is not empty. Throws `core::Error`, one line per problem.
CredentialValues fetch_credentials(const Plan& plan, const vault::EnvLookup& env,
                                   const std::string& token_file,
                                   std::chrono::steady_clock::time_point deadline);

// Runs `vault_part` on this thread while the plan's credentials are fetched on another, and
// returns the credentials. When both fail, the Arvados error is logged and the Vault error
// thrown; when one fails, its error is thrown.
CredentialValues with_credentials(const Plan& plan, const vault::EnvLookup& env,
                                  const std::string& token_file,
                                  std::chrono::steady_clock::time_point deadline,
                                  const std::function<void()>& vault_part);

} // namespace cs::core
