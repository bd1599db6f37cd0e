#include "crunchsecrets/core/credentials.hpp"

#include "crunchsecrets/arvados/curl_transport.hpp"
#include "crunchsecrets/core/auth.hpp"
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/util/fs.hpp"
#include "crunchsecrets/util/log.hpp"

#include <ctime>
#include <future>
#include <string>

namespace cs::core {

CredentialValues fetch_credentials(const Plan& plan, const vault::EnvLookup& env,
                                   const std::string& token_file,
                                   std::chrono::steady_clock::time_point deadline) {
  if (plan.credentials.empty()) {
    return {};
  }
  std::vector<std::string> names;
  for (const auto& c : plan.credentials) {
    names.push_back(c.credential);
  }
  const arvados::Config config =
      arvados::config_from_env([&](const std::string& n) { return env(n); }, file_exists);
  util::Secret token;
  if (!token_file.empty()) {
    // "-" is standard input here too; refuse_second_stdin_reader made sure that the Vault
    // login does not read it as well.
    token = read_credential(token_file, "--arvados-token-file", deadline);
  } else if (auto t = env("ARVADOS_API_TOKEN"); t && !t->empty()) {
    token = util::Secret(*t);
    util::wipe(t->data(), t->size());
    require_credential(token, "ARVADOS_API_TOKEN");
  }
  arvados::CurlTransport transport(config);
  arvados::Client client(config, transport, deadline, static_cast<long long>(std::time(nullptr)));
  const auto start = std::chrono::steady_clock::now();
  CredentialValues out = client.fetch(names, token);
  util::log::debug("fetched {} Arvados credential(s) with {} request(s) in {} ms", out.size(),
                   transport.requests_sent(),
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - start)
                       .count());
  return out;
}

CredentialValues with_credentials(const Plan& plan, const vault::EnvLookup& env,
                                  const std::string& token_file,
                                  std::chrono::steady_clock::time_point deadline,
                                  const std::function<void()>& vault_part) {
  if (plan.credentials.empty()) {
    vault_part();
    return {};
  }
  auto arvados_part = std::async(
      std::launch::async, [&] { return fetch_credentials(plan, env, token_file, deadline); });
  try {
    vault_part();
  } catch (...) {
    std::string vault_error;
    try {
      throw;
    } catch (const std::exception& e) {
      vault_error = e.what();
    } catch (...) {
    }
    try {
      arvados_part.get();
    } catch (const Error& e) {
      // One failure both sides share (libcurl that cannot be loaded, on both threads) is said
      // once, by the Vault error below.
      if (vault_error != e.what()) {
        util::log::write(util::log::Level::error, e.what(), static_cast<int>(e.code()));
      }
    } catch (const std::exception&) {
      // The Vault error below is the one reported.
    }
    throw;
  }
  return arvados_part.get();
}

} // namespace cs::core
