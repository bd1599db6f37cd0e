// Arvados credentials (Arvados 3.2+, the `credentials` API): references to them, and the
// client that resolves names to uuids and fetches secrets with a running container's token.
#pragma once

#include "crunchsecrets/arvados/config.hpp"
#include "crunchsecrets/arvados/transport.hpp"
#include "crunchsecrets/util/result.hpp"
#include "crunchsecrets/util/secret.hpp"

#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace cs::arvados {

// Which part of a credential a reference wants.
enum class Field { secret, external_id };

// `arvados:credential/<uuid-or-name>#secret|#external_id`, parsed.
struct CredentialRef {
  std::string credential; // a credential uuid (zzzzz-oss07-...) or a name
  Field field = Field::secret;
  bool by_uuid() const;
  // The reference as written, for messages.
  std::string describe() const;
  bool operator==(const CredentialRef&) const = default;
};

// True when `s` looks like an Arvados credential uuid (`xxxxx-oss07-<15 [a-z0-9]>`).
bool is_credential_uuid(std::string_view s);

// Parses the text after `arvados:` (e.g. `credential/lab-aws#secret`). A name is 1-255
// characters other than `#`, `}`, `/`, NUL and newline. The error names what is wrong.
util::Result<CredentialRef> parse_credential_ref(std::string_view text);

// A credential's public fields, as `credentials` list/get answer them.
struct CredentialInfo {
  std::string uuid;
  std::string name;
  std::string credential_class;
  std::string expires_at; // RFC 3339, or empty when it never expires
};

// What `credentials/{uuid}/secret` answered, with the public fields beside it.
struct CredentialSecret {
  CredentialInfo info;
  util::Secret external_id;
  util::Secret secret;
};

// Parses an RFC 3339 UTC time ("2025-01-01T00:00:00Z", fractional seconds allowed) into
// seconds since the epoch; nullopt when it is not one.
std::optional<long long> parse_rfc3339(std::string_view text);

class Client {
public:
  // `now_epoch` is the wall clock in seconds, injectable so that expiry is unit testable.
  Client(Config config, Transport& transport, Clock::time_point deadline, long long now_epoch);

  // Resolves every credential named in `credentials` (uuids or names, duplicates allowed)
  // with `token` and fetches each distinct one's secret. Requests: one round trip of
  // `containers/current` plus one list per kind (uuids, names), then one of parallel `secret`
  // GETs. Returns one entry per distinct credential, keyed by the text in `credentials`.
  // Throws `util::Error` with one line per problem: token refused (80), not a container token
  // or container not Running (77), unknown or unreadable (79), two credentials with one name
  // (65), expired (77), Arvados unreachable until the deadline (69), unexpected answer (76).
  std::vector<std::pair<std::string, CredentialSecret>>
  fetch(const std::vector<std::string>& credentials, const util::Secret& token);

private:
  std::vector<Response> send(const std::vector<std::string>& paths, const util::Secret& token);
  [[noreturn]] void fail(const Response& r, const std::string& what,
                         const util::Secret& token) const;

  Config m_config;
  Transport& m_transport;
  Clock::time_point m_deadline;
  long long m_now;
  std::mt19937_64 m_rng;
};

} // namespace cs::arvados
