// The libcurl implementation of `arvados::Transport`: one multi handle, requests in parallel,
// connections reused between round trips.
#pragma once

#include "crunchsecrets/arvados/config.hpp"
#include "crunchsecrets/arvados/transport.hpp"

#include <memory>

namespace cs::arvados {

class CurlTransport : public Transport {
public:
  explicit CurlTransport(const Config& config);
  ~CurlTransport() override;
  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  std::vector<Response> get_all(const std::vector<std::string>& paths, const util::Secret& token,
                                Clock::time_point deadline) override;
  std::size_t requests_sent() const override;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

} // namespace cs::arvados
