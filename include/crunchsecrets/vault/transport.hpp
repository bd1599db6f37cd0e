// The HTTP boundary to Vault, behind an interface so the client's retry and parsing logic can
// be tested with a scripted double (ninja's DiskInterface pattern).
#pragma once

#include "crunchsecrets/util/secret.hpp"

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cs::vault {

using Clock = std::chrono::steady_clock;

// One Vault API request. `path` is relative to `/v1/` and may carry a query string.
struct Request {
  std::string method = "GET";
  std::string path;
  util::Secret body;                   // JSON, or empty
  const util::Secret* token = nullptr; // sent as X-Vault-Token when not null
};

// One response. `status` is 0 when no HTTP response arrived; `transport_error` then says why.
struct Response {
  long status = 0;
  util::SecureString body;
  std::string transport_error;
  // Set with `transport_error` when retrying cannot help: a TLS certificate that fails
  // verification, a CA or client certificate file that cannot be used, a malformed URL.
  bool permanent = false;
  // Set with `transport_error` when the request provably never left this process (the
  // connection could not be made): only then may a single-use request be sent again.
  bool not_sent = false;
  // Set with `transport_error` (and `permanent`) when the body exceeded the size cap.
  bool too_large = false;
  // How long the server asked to wait before the next request (its Retry-After header, the
  // only header kept), parsed when the answer arrived; nothing when absent or malformed.
  std::optional<std::chrono::milliseconds> retry_after;
  bool http_ok() const { return status >= 200 && status < 300; }
};

// The longest Retry-After honoured: a server asking for more is asked again no sooner than this.
constexpr std::chrono::milliseconds k_max_retry_after = std::chrono::hours(24);

// Parses a Retry-After value (RFC 9110, section 10.2.3), surrounding blanks allowed: either
// delta-seconds (a non-negative integer) or an HTTP-date in the IMF-fixdate form ("Sun, 06 Nov
// 1994 08:49:37 GMT"), taken relative to `now`. A date already past is 0; anything above a day
// (a huge number, a date years ahead) is a day. Nothing for any other text: a negative or
// fractional number, another date form, a date that does not exist.
std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) noexcept;

// Which requests of a batch are in flight: they start in order, at most `limit` at once, and the
// next one starts as soon as another finishes. Each transfer in flight holds a libcurl handle, its
// buffers and an HTTP/2 stream, so a batch of 1000 reads started at once took twice the memory
// of one kept to 64 (docs/bench/README.md); bounded, memory does not grow with the batch.
class TransferWindow {
public:
  TransferWindow(std::size_t total, std::size_t limit);
  // The next request to start, or nothing when `limit` are in flight or all have started.
  std::optional<std::size_t> next();
  // Records that request `i`, started by `next()`, finished (answered or failed).
  void finish(std::size_t i);
  // Changes how many may be in flight from now on (transfers already started keep going).
  void set_limit(std::size_t limit);
  std::size_t in_flight() const { return m_in_flight; }
  // True when every request has started and finished.
  bool done() const { return m_finished == m_started.size(); }

private:
  std::size_t m_limit;
  std::size_t m_next = 0;
  std::size_t m_in_flight = 0;
  std::size_t m_finished = 0;
  std::vector<bool> m_started;
  std::vector<bool> m_ended;
};

class Transport {
public:
  virtual ~Transport() = default;
  // Performs all `requests` concurrently and returns their responses in the same order. Each
  // request gets one full attempt of the configured client timeout (VAULT_CLIENT_TIMEOUT):
  // `deadline` bounds retrying (the caller's business), not an attempt that has started.
  virtual std::vector<Response> perform(const std::vector<const Request*>& requests,
                                        Clock::time_point deadline) = 0;
  // Counts HTTP requests sent so far (for tests and --verbose timing lines).
  virtual std::size_t requests_sent() const = 0;
  // Counts connections opened so far; fewer than requests means connections were reused.
  virtual std::size_t connections_opened() const { return 0; }
  // The HTTP version of the last response ("HTTP/1.1", "HTTP/2"), for --verbose lines.
  virtual std::string protocol() const { return "unknown"; }
};

} // namespace cs::vault
