// libFuzzer target for the Vault response parser: whatever a server (or something between it
// and us) sends back for a read or a login must become a value or a core::Error with a message,
// never a crash, an unbounded recursion or another exception type. The first input byte picks
// the HTTP status and the shape of the request (KV v2 with or without a version, KV v1 or
// generic); the rest is the response body.
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/vault/client.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

using cs::vault::Clock;

// A transport that answers every request with the fuzz input (no network).
class ReplayTransport : public cs::vault::Transport {
public:
  ReplayTransport(long status, std::string_view body) : m_status(status), m_body(body) {}
  std::vector<cs::vault::Response> perform(const std::vector<const cs::vault::Request*>& requests,
                                           Clock::time_point /*deadline*/) override {
    std::vector<cs::vault::Response> out(requests.size());
    for (auto& r : out) {
      r.status = m_status;
      r.body.assign(m_body.data(), m_body.size());
    }
    m_sent += requests.size();
    return out;
  }
  std::size_t requests_sent() const override { return m_sent; }

private:
  long m_status;
  std::string_view m_body;
  std::size_t m_sent = 0;
};

constexpr std::array<long, 8> k_statuses{200, 200, 200, 404, 400, 403, 500, 204};

// Every error says something; the log layer (util::log) makes it one printable line.
void must_have_message(const cs::core::Error& e) {
  if (std::string_view(e.what()).empty()) {
    std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::uint8_t selector = data[0];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const long status = k_statuses[selector & 7U];
  cs::vault::Config config;
  config.address = "http://127.0.0.1:1";
  config.max_retries = 0;
  ReplayTransport transport(status, body);
  // A deadline in the past: a retryable status ends at once instead of sleeping.
  cs::vault::Client client(config, transport, Clock::now());
  try {
    if ((selector & 0x40U) != 0) {
      client.login_approle("approle", cs::util::Secret("role"), cs::util::Secret("secret-id"));
      (void)client.logged_in();
    } else {
      client.use_token(cs::util::Secret("s.token"));
      cs::vault::ReadSpec spec;
      switch ((selector >> 3) & 3U) {
      case 0:
        spec.path = "secret/data/app";
        break;
      case 1:
        spec.path = "secret/data/app";
        spec.version = 3;
        break;
      case 2:
        spec.path = "kv/app";
        break;
      default:
        spec.path = "database/creds/app";
        break;
      }
      spec.describe = "vault:" + spec.path + "#key";
      auto fetched = client.read_all({spec});
      if (fetched.size() != 1 || !fetched[0].data.is_object()) {
        std::abort(); // a successful read always yields one object of values
      }
      cs::util::wipe_json(fetched[0].data);
    }
  } catch (const cs::core::Error& e) {
    must_have_message(e);
  }
  (void)cs::vault::server_message(cs::util::SecureString(body.data(), body.size()),
                                  {cs::util::Secret("s.token")});
  return 0;
}
