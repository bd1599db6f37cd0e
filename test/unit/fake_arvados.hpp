// A scripted `arvados::Transport` for unit tests: a handler answers each GET path; every
// round trip is recorded with the token revealed for checking.
#pragma once

#include "crunchsecrets/arvados/transport.hpp"

#include <functional>
#include <string>
#include <vector>

namespace cs::test {

class FakeArvados : public arvados::Transport {
public:
  using Handler = std::function<arvados::Response(const std::string& path)>;
  explicit FakeArvados(Handler handler) : m_handler(std::move(handler)) {}

  std::vector<arvados::Response> get_all(const std::vector<std::string>& paths,
                                         const util::Secret& token,
                                         arvados::Clock::time_point /*deadline*/) override {
    rounds.push_back(paths);
    tokens.emplace_back(token.reveal());
    std::vector<arvados::Response> out;
    for (const auto& p : paths) {
      out.push_back(m_handler(p));
    }
    m_sent += paths.size();
    return out;
  }
  std::size_t requests_sent() const override { return m_sent; }

  std::vector<std::vector<std::string>> rounds;
  std::vector<std::string> tokens;

private:
  Handler m_handler;
  std::size_t m_sent = 0;
};

} // namespace cs::test
