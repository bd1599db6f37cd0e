// The libcurl implementation of `Transport`: one multi handle whose connection cache is reused
// across batches, HTTP/2 multiplexing over TLS where the server offers it.
#pragma once

#include "crunchsecrets/vault/config.hpp"
#include "crunchsecrets/vault/transport.hpp"

#include <curl/curl.h>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cs::vault {

class CurlTransport : public Transport {
public:
  explicit CurlTransport(const Config& config);
  ~CurlTransport() override;
  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  std::vector<Response> perform(const std::vector<const Request*>& requests,
                                Clock::time_point deadline) override;
  std::size_t requests_sent() const override;
  std::size_t connections_opened() const override;
  std::string protocol() const override;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// How many requests one `perform` keeps in flight: 64 concurrent HTTP/2 streams on the one
// connection (OpenBao allows 250 per connection; with all of a batch in flight libcurl opened
// up to 8 connections) fetch a batch as fast, in memory that does not grow with its size
// (docs/bench/README.md, "Memory").
inline constexpr std::size_t k_max_in_flight = 64;

// How many connections libcurl may open to the server. Over HTTP/1.x each request in flight needs
// a connection of its own, so there the window is this wide: a request waiting in libcurl's queue
// for a connection has its timeout running, and a healthy server answering in 0.3 s failed (or
// got twice) reads of a batch of 100 with a 2 s VAULT_CLIENT_TIMEOUT when 64 were in flight.
inline constexpr std::size_t k_max_connections = 8;

// The largest answer accepted. Neither Vault's answers nor the Arvados API's come near it:
// anything this large is a misconfiguration or an attack, refused at once rather than retried.
inline constexpr std::size_t k_max_body = 32 * 1024 * 1024;

// One request of a batch on a libcurl multi handle, used by this transport and Arvados'. The
// destructor removes the easy handle from the multi handle it was started on, frees it, and
// wipes the headers (one carries a token).
struct CurlTransfer {
  CurlTransfer() = default;
  CurlTransfer(const CurlTransfer&) = delete;
  CurlTransfer& operator=(const CurlTransfer&) = delete;
  ~CurlTransfer();

  // Creates the easy handle for `url` with the options every request shares: the protocols
  // allowed (`protocols`, e.g. "https"), no redirects or signals, `timeout_ms` for connecting
  // and for the whole transfer, HTTP/2 over TLS (waiting for a multiplexed connection when
  // `pipewait`), the user agent, the error buffer, sockets closed on exec, and `index` as
  // CURLINFO_PRIVATE. False when libcurl cannot create a handle.
  bool open(std::string url, const char* protocols, long timeout_ms, bool pipewait,
            std::size_t index);
  // Appends a header line; the line is wiped when the transfer ends.
  void add_header(const char* line);
  // Sends the answer's body to `response.body` (a body over k_max_body ends the transfer with a
  // write error and sets `response.too_large`) and its Retry-After, parsed, to
  // `response.retry_after`; no other header is kept.
  void receive_into(Response& response);
  // Sets the headers and adds the handle to `multi`.
  void start(CURLM* multi);
  // What went wrong, for a transfer that ended with `code`: the error buffer, else libcurl's
  // text for the code.
  const char* error_text(CURLcode code) const;
  // Ends the transfer now rather than at destruction (the destructor calls it): the handle
  // leaves the multi handle and is freed, the headers are wiped and freed. A batch releases
  // each transfer as it finishes, so its memory is that of the transfers in flight.
  void release();

  CURLM* multi = nullptr; // set once started
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
  std::string url;
  bool done = false;
};

// Reads libcurl's messages on `multi` for the transfers that finished since the last call:
// marks each one done and calls `on_done(index, result, easy)`.
void collect_finished(CURLM* multi, std::vector<CurlTransfer>& transfers,
                      const std::function<void(std::size_t, CURLcode, CURL*)>& on_done);

// Drives `multi` until no transfer is running and `collect`, called after each step to take the
// finished ones, starts no other (it returns true when it started some: a batch that keeps a
// bounded number in flight starts the next ones there). When curl_multi_perform fails, the
// requests in flight or not yet started get the reason (fail_unfinished), so a retry or the
// final message says why.
void run_transfers(CURLM* multi, const std::vector<CurlTransfer>& transfers,
                   std::vector<Response>& responses, const std::function<bool()>& collect);

// The `done` flags of `transfers`, in order.
std::vector<bool> done_flags(const std::vector<CurlTransfer>& transfers);

// Fills `response` for transfer `t` that ended with `code` (not CURLE_OK), for both transports:
// no status, no Retry-After, the reason (classify_failure, or "the response is too large" when
// the body passed k_max_body, which is permanent), `not_sent` when no connection was made, and
// the partial body wiped.
void transfer_failed(const CurlTransfer& t, CURLcode code, Response& response);

// True when a transfer that ended with `code` cannot succeed by retrying: a TLS certificate
// that fails verification, an unusable CA or client certificate file, a malformed URL.
bool is_permanent(CURLcode code);

// What a failed transfer means: whether retrying can help, and the text to report.
struct TransferFailure {
  bool permanent = false;
  std::string text;
};

// Classifies a transfer that ended with `code`, libcurl's `error_text` saying why. Beyond
// is_permanent's codes, a handshake that failed (CURLE_SSL_CONNECT_ERROR, which is also what a
// connection reset during the handshake gives) is permanent only when OpenSSL names a
// negotiation failure: no TLS version in common (the server offers nothing from TLS 1.2 on), no
// cipher suite, group or signature algorithm in common, or the server refusing the client
// certificate. Those get a text saying so; anything else keeps libcurl's text and is retried.
TransferFailure classify_failure(CURLcode code, std::string_view error_text);

// Checks the CA settings of `tls` before any request, as Vault's client reads them: a CA file
// (`ca_cert`) must be a readable file; a CA directory (`ca_path`) must be a directory, and is
// ignored when a CA file is set (Vault's client uses the file alone). Throws `util::Error`
// (config) naming the variable (`tls.ca_cert_source`, `tls.ca_path_source`) and the path.
void check_ca_settings(const TlsConfig& tls);

// Gives every response whose request is not `done` and has no outcome yet the transport
// error `reason` (used when curl_multi_perform fails with requests still in flight).
void fail_unfinished(std::vector<Response>& responses, const std::vector<bool>& done,
                     std::string_view reason);

} // namespace cs::vault
