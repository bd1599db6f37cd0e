// A test tool for the Arvados client end to end (test/integration/test_arvados_client.py):
// reads the Arvados client environment like crunch-secrets does, fetches the credentials named
// on the command line with ARVADOS_API_TOKEN, and prints for each one its uuid, name, class and
// the SHA-256 of its secret and external id — never a value. Errors: one line, the exit code.
#include "crunchsecrets/arvados/config.hpp"
#include "crunchsecrets/arvados/credential.hpp"
#include "crunchsecrets/arvados/curl_transport.hpp"
#include "crunchsecrets/core/error.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <openssl/sha.h>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace {

std::string sha256(std::string_view v) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(v.data()), v.size(), d);
  std::string out;
  char buf[3];
  for (unsigned char c : d) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  using namespace cs;
  try {
    auto env = [](const std::string& k) -> std::optional<std::string> {
      const char* v = std::getenv(k.c_str());
      return v ? std::optional<std::string>(v) : std::nullopt;
    };
    auto exists = [](const std::string& p) {
      struct stat st {};
      return ::stat(p.c_str(), &st) == 0;
    };
    const arvados::Config config = arvados::config_from_env(env, exists);
    arvados::CurlTransport transport(config);
    arvados::Client client(config, transport, arvados::Clock::now() + std::chrono::seconds(5),
                           static_cast<long long>(std::time(nullptr)));
    std::vector<std::string> names(argv + 1, argv + argc);
    const util::Secret token(env("ARVADOS_API_TOKEN").value_or(""));
    for (const auto& [text, c] : client.fetch(names, token)) {
      std::printf("%s %s %s %s secret=%s external_id=%s\n", text.c_str(), c.info.uuid.c_str(),
                  c.info.name.c_str(), c.info.credential_class.c_str(),
                  sha256(c.secret.reveal()).c_str(), sha256(c.external_id.reveal()).c_str());
    }
    std::printf("requests=%zu\n", transport.requests_sent());
    return 0;
  } catch (const core::Error& e) {
    std::fprintf(stderr, "arvados-fetch: error: %s\n", e.what());
    return static_cast<int>(e.code());
  }
}
