// The HTTP boundary to the Arvados API server, behind an interface so that the credential
// lookup logic is unit tested with a scripted double (as `vault::Transport` is).
#pragma once

#include "crunchsecrets/util/secret.hpp"
#include "crunchsecrets/vault/transport.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace cs::arvados {

using Clock = std::chrono::steady_clock;
// A response has the same shape as Vault's: status (0 when no HTTP answer arrived), body, and
// the transport error with its permanence.
using Response = vault::Response;

class Transport {
public:
  virtual ~Transport() = default;
  // GETs every path (relative to `/arvados/v1/`, with its query string) concurrently with
  // `Authorization: Bearer <token>` and returns the responses in the same order. No request
  // may outlive `deadline`.
  virtual std::vector<Response> get_all(const std::vector<std::string>& paths,
                                        const util::Secret& token, Clock::time_point deadline) = 0;
  // Counts HTTP requests sent so far (for tests and --verbose lines).
  virtual std::size_t requests_sent() const = 0;
};

} // namespace cs::arvados
