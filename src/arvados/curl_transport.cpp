#include "crunchsecrets/arvados/curl_transport.hpp"

#include "crunchsecrets/util/curl_library.hpp"
#include "crunchsecrets/util/error.hpp"
#include "crunchsecrets/vault/curl_transport.hpp"

#include <algorithm>
#include <curl/curl.h>
#include <fmt/format.h>
#include <mutex>

namespace cs::arvados {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

} // namespace

struct CurlTransport::Impl {
  Config config;
  CURLM* multi = nullptr;
  std::size_t sent = 0;
};

CurlTransport::CurlTransport(const Config& config) : m_impl(std::make_unique<Impl>()) {
  // libcurl is loaded here, on first use (util/curl_library.hpp).
  util::curl::load_or_throw();
  global_init();
  m_impl->config = config;
  m_impl->multi = curl_multi_init();
  if (m_impl->multi == nullptr) {
    throw util::Error(util::ExitCode::internal, "cannot initialise libcurl");
  }
  curl_multi_setopt(m_impl->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  curl_multi_setopt(m_impl->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
}

CurlTransport::~CurlTransport() {
  if (m_impl->multi != nullptr) {
    curl_multi_cleanup(m_impl->multi);
  }
}

std::size_t CurlTransport::requests_sent() const {
  return m_impl->sent;
}

namespace {

using vault::CurlTransfer;

// Prepares `t` for GET `url` with `token`, its answer going to `response`. Returns false (with the
// response's transport_error set) when libcurl cannot create a handle.
bool make_transfer(CurlTransfer& t, std::string url, const util::Secret& token, Response& response,
                   std::size_t index, const Config& config, long timeout_ms) {
  // Arvados is always spoken over https; never follow a redirect elsewhere.
  if (!t.open(std::move(url), "https", timeout_ms, true, index)) {
    response.transport_error = "cannot create a libcurl handle";
    return false;
  }
  t.receive_into(response);
  if (!config.ca_file.empty()) {
    curl_easy_setopt(t.easy, CURLOPT_CAINFO, config.ca_file.c_str());
  }
  if (config.insecure) {
    curl_easy_setopt(t.easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(t.easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  util::SecureString h = "Authorization: Bearer ";
  h.append(token.reveal().data(), token.size());
  t.add_header(h.c_str());
  util::wipe_string(h);
  t.add_header("Accept: application/json");
  return true;
}

// Moves every finished transfer's outcome into `responses`.
void collect_done(CURLM* multi, std::vector<CurlTransfer>& transfers,
                  std::vector<Response>& responses) {
  vault::collect_finished(multi, transfers, [&](std::size_t i, CURLcode result, CURL* easy) {
    if (result == CURLE_OK) {
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &responses[i].status);
      return;
    }
    vault::transfer_failed(transfers[i], result, responses[i]);
  });
}

} // namespace

std::vector<Response> CurlTransport::get_all(const std::vector<std::string>& paths,
                                             const util::Secret& token,
                                             Clock::time_point deadline) {
  std::vector<Response> responses(paths.size());
  std::vector<CurlTransfer> transfers(paths.size());
  const long remaining_ms = std::max<long>(
      1,
      static_cast<long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
  const long timeout_ms =
      std::min<long>(remaining_ms, static_cast<long>(m_impl->config.client_timeout.count()));
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (make_transfer(transfers[i],
                      fmt::format("{}/arvados/v1/{}", m_impl->config.base_url, paths[i]), token,
                      responses[i], i, m_impl->config, timeout_ms)) {
      transfers[i].start(m_impl->multi);
      ++m_impl->sent;
    } else {
      transfers[i].done = true;
    }
  }
  // An Arvados fetch is a handful of requests: all are in flight at once, none started later.
  vault::run_transfers(m_impl->multi, transfers, responses, [&] {
    collect_done(m_impl->multi, transfers, responses);
    return false;
  });
  return responses;
}

} // namespace cs::arvados
