// The libcurl implementation of `Transport`: one multi handle whose connection cache is reused
// across batches, HTTP/2 multiplexing over TLS where the server offers it.
#pragma once

#include "crunchsecrets/vault/config.hpp"
#include "crunchsecrets/vault/transport.hpp"

#include <curl/curl.h>
#include <memory>
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

// True when a transfer that ended with `code` cannot succeed by retrying: a TLS certificate
// that fails verification, an unusable CA or client certificate file, a malformed URL.
bool is_permanent(CURLcode code);

// Gives every response whose request is not `done` and has no outcome yet the transport
// error `reason` (used when curl_multi_perform fails with requests still in flight).
void fail_unfinished(std::vector<Response>& responses, const std::vector<bool>& done,
                     std::string_view reason);

} // namespace cs::vault
