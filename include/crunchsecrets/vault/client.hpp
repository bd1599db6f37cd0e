// The Vault client: login methods, parallel reads, capability checks, and the retry policy
// (README.md, "Vault connection"). Errors are `util::Error` with the documented exit codes.
#pragma once

#include "crunchsecrets/util/error.hpp"
#include "crunchsecrets/vault/config.hpp"
#include "crunchsecrets/vault/transport.hpp"

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace cs::vault {

// True when an https:// address reached a plain-HTTP server (OpenSSL: "wrong version number").
bool is_https_to_plain_http(const Response& response);

// True when an http:// address reached a TLS server (Go's 400 "Client sent an HTTP request to
// an HTTPS server").
bool is_http_to_https(const Response& response);

// True when a response should be retried: no HTTP response (unless the failure is permanent,
// such as TLS verification), 307 (a standby's redirect, never followed), 412, 429, or 5xx
// except 501.
bool is_retryable(const Response& response);

// Delay before retry number `attempt` (0-based): full jitter, a uniform random wait between 0
// and a ceiling of 100 ms doubling to 2 s.
std::chrono::milliseconds backoff_delay(unsigned attempt, std::mt19937_64& rng);

// The Retry-After honoured in a response: only a 429's (a rate-limit quota) or a 503's (sealed,
// standby, overloaded, or a proxy in front), the statuses that header is defined for here.
std::optional<std::chrono::milliseconds> honoured_retry_after(const Response& response);

// The longest Retry-After honoured among `responses[i]` for each `i` in `which` (the requests
// about to be retried together), or nothing when none asked.
std::optional<std::chrono::milliseconds> longest_retry_after(const std::vector<Response>& responses,
                                                             const std::vector<std::size_t>& which);

// A Retry-After as the server gave it, for messages: whole seconds ("30s"), or tenths ("2.9s")
// for a date's.
std::string retry_after_text(std::chrono::milliseconds delay);

// How long to wait before the next attempt, `remaining` before the --wait deadline.
struct RetryWait {
  std::chrono::milliseconds delay{0};
  // The server's Retry-After, when one was honoured.
  std::optional<std::chrono::milliseconds> asked;
  // The server asked to wait past the deadline: `delay` runs to it, and then the run gives up
  // rather than send a request the server said it would refuse.
  bool past_deadline = false;
};

// The jittered `backoff`, or the server's `asked` when longer, cut 10 ms short of the deadline
// so that one more attempt fits before it.
RetryWait choose_retry_wait(std::chrono::milliseconds backoff,
                            std::optional<std::chrono::milliseconds> asked,
                            std::chrono::milliseconds remaining);

// A number of seconds (lease_duration, ttl) from `object[key]`: 0 when missing or not an
// integer (a string, a float), and INT64_MAX for an unsigned number beyond it, which
// nlohmann::json would otherwise turn negative.
std::int64_t json_seconds(const util::SecretJson& object, const char* key);

// A secret read from Vault. `data` is the object of values (`data.data` for KV v2).
struct Fetched {
  util::SecretJson data;
  bool kv2 = false;
  std::optional<std::uint64_t> version;
  std::string lease_id;
  std::int64_t lease_duration = 0;
  bool renewable = false;
};

// A lease's (or the token's) state after renew or lookup: seconds left and whether it can be
// extended.
struct LeaseInfo {
  std::int64_t ttl = 0;
  bool renewable = false;
};

// What to read: an API path (without query) and an optional KV v2 version.
struct ReadSpec {
  std::string path;
  std::optional<std::uint64_t> version;
  std::string describe;  // the reference as written and who uses it, for messages
  std::string reference; // the reference alone ("vault:secret/data/app#k"), for JSON lines
};

// What sys/wrapping/lookup says of a wrapping token (without unwrapping it).
struct WrapInfo {
  std::string creation_path; // e.g. "auth/token/create" or "auth/approle/role/r/secret-id"
  std::int64_t creation_ttl = 0;
};

class Client {
public:
  Client(Config config, Transport& transport, Clock::time_point deadline);

  // Uses `token` as the client token (no request is made).
  void use_token(util::Secret token);
  // AppRole: POST auth/<mount>/login {"role_id","secret_id"}.
  void login_approle(const std::string& mount, const util::Secret& role_id,
                     const util::Secret& secret_id);
  // Unwraps a response-wrapping token (single use) and takes the wrapped client token; when it
  // wraps an AppRole secret id instead, logs in with it at `approle_mount` with `role_id`.
  void login_wrapped(const util::Secret& wrapping_token,
                     const std::string& approle_mount = "approle",
                     const util::Secret& role_id = util::Secret());
  // Asks sys/wrapping/lookup about a wrapping token without using it up.
  WrapInfo lookup_wrapping(const util::Secret& wrapping_token);
  // Arvados: POST auth/<mount>/login {"role": role, "arvados_token": token}.
  void login_arvados(const std::string& mount, const std::string& role,
                     const util::Secret& arvados_token);

  // True when the token came from a login or unwrap made by this client, not from the caller:
  // only such a token may be revoked (`revoke_self`, below).
  bool owns_token() const { return m_owns_token; }

  // Reads every spec in parallel (one batch, retried as a batch of the failures). Throws on
  // the first failure after all responses are in.
  std::vector<Fetched> read_all(const std::vector<ReadSpec>& specs);

  // Asks sys/capabilities-self for `paths`; returns each path's capabilities.
  std::vector<std::vector<std::string>> capabilities(const std::vector<std::string>& paths);

  // Supervise mode (src/vault/lease.cpp). Each throws `util::Error` like a read: `unavailable`
  // when retrying may help, another code when Vault refused.
  //
  // Reads one spec (a re-fetch of new credentials).
  Fetched read(const ReadSpec& spec);
  // PUT sys/leases/renew: extends `lease_id` by `increment` seconds.
  LeaseInfo renew_lease(const std::string& lease_id, std::int64_t increment);
  // PUT sys/leases/revoke: ends `lease_id` now (the engine drops the credentials).
  void revoke_lease(const std::string& lease_id);
  // GET auth/token/lookup-self: the token's remaining TTL (0 = no expiry) and renewability.
  LeaseInfo lookup_self();
  // POST auth/token/renew-self.
  LeaseInfo renew_self(std::int64_t increment);
  // POST auth/token/revoke-self: the token (and every lease it created) ends now.
  void revoke_self();
  // KV v2: `current_version` from the metadata endpoint `metadata_path` (no value is read).
  std::uint64_t kv2_current_version(const std::string& metadata_path);
  // Retries of later requests stop at `deadline` (supervise mode gives each round its own).
  void set_deadline(Clock::time_point deadline) { m_deadline = deadline; }

  bool logged_in() const { return !m_token.empty(); }
  // The client token in use (for `prepare`, which hands it to `cleanup` to revoke).
  const util::Secret& token() const { return m_token; }
  // The credentials this client sent (its token, a secret id, a wrapping or Arvados token),
  // which it redacts from every server message it reports.
  const std::vector<util::Secret>& credentials() const { return m_credentials; }
  // Redacts `sent` from server messages too: a client that revokes another's token must not
  // report what a hostile server quotes of that client's credentials.
  void redact(const std::vector<util::Secret>& sent) {
    m_credentials.insert(m_credentials.end(), sent.begin(), sent.end());
  }
  const std::string& address() const { return m_config.address; }
  // When retrying stops (--wait); reading a credential from standard input waits no longer.
  Clock::time_point deadline() const { return m_deadline; }

private:
  // Sends `requests` with retries until the deadline; returns final responses. A `single_use`
  // request is retried only when it provably was not sent.
  std::vector<Response> send(const std::vector<Request>& requests, bool single_use = false);
  // Over http://, when an answer was lost after a request was sent, asks once whether the
  // server speaks HTTPS and if so turns the lost answers into its 400 (a scheme mismatch).
  void diagnose_scheme(std::vector<Response>& responses);
  // Logs the info line announcing a retry: what failed, the attempt, the wait chosen, the end.
  void announce_retry(const Response& sample, std::size_t count, unsigned attempt,
                      const RetryWait& wait, std::chrono::milliseconds remaining) const;
  // Throws "outcome unknown" when the single-use request `what` got a retryable answer after
  // it was sent.
  void fail_single_use(const Response& r, const std::string& what) const;
  void take_auth(const Response& response, const std::string& what);
  // Throws the configuration error (78) for an address whose scheme the server does not speak
  // (https:// on plain HTTP, http:// on TLS): every login and read checks this first, since
  // no retry can help and a login's "refused" or "outcome unknown" would mislead.
  void fail_on_scheme_mismatch(const Response& r) const;
  // Throws the `util::Error` that a failed `r` for `what` means.
  [[noreturn]] void fail(const Response& r, const std::string& what, util::ExitCode on_400,
                         const std::string& hint_403) const;
  // Throws the error for a login refused with 403/404/405 (no such login endpoint).
  void fail_login(const Response& r, const std::string& what, const std::string& mount,
                  const std::string& option) const;
  util::Error used_wrapping_token(const Response& r, const std::string& endpoint) const;
  // auth/token/lookup-self: false when Vault refuses it (an invalid token, or one without the
  // `default` policy).
  bool token_is_valid();
  // Logs every cause but the first, one line per cause; returns the first to throw.
  util::Error report_failures(const std::vector<util::Error>& failures,
                              const std::vector<ReadSpec>& specs) const;
  Fetched parse_read(const ReadSpec& spec, const Response& r) const;

  Config m_config;
  Transport& m_transport;
  Clock::time_point m_deadline;
  util::Secret m_token;
  bool m_owns_token = false;
  std::mt19937_64 m_rng;
  std::vector<util::Secret> m_credentials; // copies, redacted from server messages
  Clock::time_point m_start;
  // Set by read_all after a 403 when auth/token/lookup-self was refused too: the token is
  // invalid, or lacks the `default` policy (Vault's answer does not say which).
  bool m_token_refused = false;
  bool m_scheme_checked = false; // diagnose_scheme asked sys/health already
};

// The first message of a Vault error body (`{"errors":[...]}`), cleaned to one printable line
// of at most 200 characters, with any of `credentials` replaced by "[redacted]".
std::string server_message(const util::SecureString& body,
                           const std::vector<util::Secret>& credentials = {});

} // namespace cs::vault
