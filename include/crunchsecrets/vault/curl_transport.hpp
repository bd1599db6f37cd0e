// The libcurl implementation of `Transport`: one multi handle whose connection cache is reused
// across batches, HTTP/2 multiplexing over TLS where the server offers it.
#pragma once

#include "crunchsecrets/vault/config.hpp"
#include "crunchsecrets/vault/transport.hpp"

#include <memory>

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

} // namespace cs::vault
