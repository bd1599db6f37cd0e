// A scripted `vault::Transport` for unit tests: a handler answers each request, and every
// batch is recorded with its secret parts revealed for checking.
#pragma once

#include "crunchsecrets/vault/transport.hpp"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cs::test {

using vault::Clock;
using vault::Request;
using vault::Response;

// A request as the fake transport saw it, with its secret parts revealed for checking.
struct Seen {
  std::string method;
  std::string path;
  std::string body;
  std::optional<std::string> token;
};

inline Response resp(long status, std::string_view body = "") {
  Response r;
  r.status = status;
  r.body = util::SecureString(body.data(), body.size());
  return r;
}

inline Response no_connection(std::string why = "Connection refused") {
  Response r;
  r.status = 0;
  r.transport_error = std::move(why);
  return r;
}

// A scripted Transport: `handler` answers each request; every batch is recorded.
class FakeTransport : public vault::Transport {
public:
  using Handler = std::function<Response(const Seen&)>;
  explicit FakeTransport(Handler handler) : m_handler(std::move(handler)) {}

  std::vector<Response> perform(const std::vector<const Request*>& requests,
                                Clock::time_point deadline) override {
    deadlines.push_back(deadline);
    times.push_back(Clock::now());
    batches.emplace_back();
    std::vector<Response> out;
    for (const Request* r : requests) {
      Seen s{r->method, r->path, std::string(r->body.reveal()), std::nullopt};
      if (r->token != nullptr) {
        s.token = std::string(r->token->reveal());
      }
      batches.back().push_back(s);
      out.push_back(m_handler(s));
    }
    m_sent += requests.size();
    return out;
  }
  std::size_t requests_sent() const override { return m_sent; }

  std::vector<std::size_t> batch_sizes() const {
    std::vector<std::size_t> out;
    for (const auto& b : batches) {
      out.push_back(b.size());
    }
    return out;
  }

  std::vector<std::vector<Seen>> batches;
  std::vector<Clock::time_point> deadlines;
  std::vector<Clock::time_point> times; // when each batch was sent

private:
  Handler m_handler;
  std::size_t m_sent = 0;
};

} // namespace cs::test
