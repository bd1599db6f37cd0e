#include "crunchsecrets/vault/curl_transport.hpp"

#include "crunchsecrets/util/ca_bundle.hpp"
#include "crunchsecrets/util/curl_library.hpp"
#include "crunchsecrets/util/error.hpp"
#include "crunchsecrets/util/stop.hpp"
#include "cs_version.h"

#include <algorithm>
#include <cstring>
#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <mutex>
#include <new>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

namespace cs::vault {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Wipes header strings (one carries the token) before freeing them.
void free_headers(curl_slist* list) {
  for (curl_slist* p = list; p != nullptr; p = p->next) {
    if (p->data != nullptr) {
      util::wipe(p->data, std::strlen(p->data));
    }
  }
  curl_slist_free_all(list);
}

// libcurl 7.88 opens its sockets without close-on-exec: a supervised COMMAND would inherit the
// live connection to Vault and could read its answers (a renewal's names the token).
int close_on_exec(void* /*clientp*/, curl_socket_t fd, curlsocktype /*purpose*/) noexcept {
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return CURL_SOCKOPT_OK;
}

// Host and port of an http(s) URL, for VAULT_TLS_SERVER_NAME's connect-to mapping.
struct UrlParts {
  std::string scheme, host, port, rest;
};

UrlParts split_url(const std::string& url) {
  UrlParts u;
  const std::size_t colon = url.find("://");
  u.scheme = url.substr(0, colon);
  std::string hostport = url.substr(colon + 3);
  const std::size_t slash = hostport.find('/');
  if (slash != std::string::npos) {
    u.rest = hostport.substr(slash);
    hostport.resize(slash);
  }
  const std::size_t pc = hostport.rfind(':');
  if (pc != std::string::npos && hostport.find(']', pc) == std::string::npos) {
    u.host = hostport.substr(0, pc);
    u.port = hostport.substr(pc + 1);
  } else {
    u.host = hostport;
    u.port = u.scheme == "https" ? "443" : "80";
  }
  return u;
}

} // namespace

struct CurlTransport::Impl {
  Config config;
  CURLM* multi = nullptr;
  std::size_t sent = 0;
  std::size_t connections = 0;
  long http_version = 0;
  bool https = false;
  // How many transfers may be in flight: k_max_in_flight streams once the server has answered
  // over HTTP/2 (they share one connection), else one per connection libcurl may open (until the
  // first answer of a run, the protocol is not known).
  std::size_t window_limit() const {
    return http_version >= CURL_HTTP_VERSION_2_0 ? k_max_in_flight : k_max_connections;
  }
  std::string base_url;
  std::string connect_to;
  curl_slist* connect_to_list = nullptr;

  // Prepares `t` for `rq`, its answer going to `response`. False (with the response's
  // transport_error set) when libcurl cannot create a handle.
  bool make_transfer(CurlTransfer& t, const Request& rq, Response& response, std::size_t index,
                     long timeout_ms) const;
  // The Vault headers (request marker, namespace, token) and the method with its body.
  void add_headers(CurlTransfer& t, const Request& rq) const;
  // Moves every finished transfer's outcome into `responses`; counts connections.
  // Releases each, and tells `window` it finished.
  void collect_done(std::vector<CurlTransfer>& transfers, std::vector<Response>& responses,
                    TransferWindow& window);
};

CurlTransport::CurlTransport(const Config& config) : m_impl(std::make_unique<Impl>()) {
  // libcurl is loaded here, on first use (util/curl_library.hpp); say why if it cannot be.
  util::curl::load_or_throw();
  global_init();
  check_ca_settings(config.tls);
  m_impl->config = config;
  if (config.tls.ca_cert.empty() && config.tls.ca_path.empty()) {
    // No CA configured: use the first bundle of the documented lookup order (README, "Vault
    // connection") rather than whatever path the linked libcurl was built with.
    m_impl->config.tls.ca_cert = util::find_ca_bundle().value_or("");
  }
  m_impl->multi = curl_multi_init();
  if (m_impl->multi == nullptr) {
    throw util::Error(util::ExitCode::internal, "cannot initialise libcurl");
  }
  curl_multi_setopt(m_impl->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  curl_multi_setopt(m_impl->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(k_max_connections));
  m_impl->base_url = config.address;
  m_impl->https = config.address.rfind("https://", 0) == 0;
  if (!config.tls.server_name.empty()) {
    // Talk to the configured address but verify (and send SNI for) the given server name.
    const UrlParts u = split_url(config.address);
    m_impl->connect_to = fmt::format("{}:{}:{}:{}", config.tls.server_name, u.port, u.host, u.port);
    m_impl->connect_to_list = curl_slist_append(nullptr, m_impl->connect_to.c_str());
    m_impl->base_url =
        fmt::format("{}://{}:{}{}", u.scheme, config.tls.server_name, u.port, u.rest);
  }
}

CurlTransport::~CurlTransport() {
  if (m_impl->multi != nullptr) {
    curl_multi_cleanup(m_impl->multi);
  }
  curl_slist_free_all(m_impl->connect_to_list);
}

std::size_t CurlTransport::requests_sent() const {
  return m_impl->sent;
}

std::size_t CurlTransport::connections_opened() const {
  return m_impl->connections;
}

std::string CurlTransport::protocol() const {
  switch (m_impl->http_version) {
  case CURL_HTTP_VERSION_1_0:
    return "HTTP/1.0";
  case CURL_HTTP_VERSION_1_1:
    return "HTTP/1.1";
  case CURL_HTTP_VERSION_2_0:
    return "HTTP/2";
  case CURL_HTTP_VERSION_3:
    return "HTTP/3";
  default:
    return "none";
  }
}

bool is_permanent(CURLcode code) {
  switch (code) {
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_CIPHER:
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL:
    return true;
  default:
    return false;
  }
}

namespace {

bool mentions(std::string_view text, std::initializer_list<std::string_view> phrases) {
  return std::any_of(phrases.begin(), phrases.end(),
                     [&](std::string_view p) { return text.find(p) != std::string_view::npos; });
}

} // namespace

TransferFailure classify_failure(CURLcode code, std::string_view error_text) {
  TransferFailure f{is_permanent(code), std::string(error_text)};
  if (code != CURLE_SSL_CONNECT_ERROR) {
    return f;
  }
  // OpenSSL's reasons, as libcurl passes them on. The server's protocol_version alert, or a
  // server choosing a version below the floor set in CurlTransfer::open.
  if (mentions(error_text,
               {"alert protocol version", "unsupported protocol", "no protocols available"})) {
    f.permanent = true;
    f.text = fmt::format("the server speaks no TLS version from 1.2 on, and TLS >= 1.2 is "
                         "required (as by Vault's own client) ({})",
                         error_text);
  } else if (mentions(error_text,
                      {"alert handshake failure", "alert insufficient security", "no shared cipher",
                       "no cipher", "no suitable", "alert bad certificate", "alert unknown ca",
                       "alert certificate required", "alert certificate expired",
                       "alert certificate revoked", "alert unsupported certificate",
                       "alert access denied"})) {
    // A reset or a server going away mid-handshake reads "unexpected eof" or "reset by peer"
    // instead, and stays retryable.
    f.permanent = true;
    f.text = fmt::format("the TLS handshake was refused: the server and crunch-secrets share no "
                         "cipher suite, group or signature algorithm, or the server refused the "
                         "client certificate ({})",
                         error_text);
  }
  return f;
}

void check_ca_settings(const TlsConfig& tls) {
  struct stat st {};
  if (!tls.ca_cert.empty()) {
    if (::stat(tls.ca_cert.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        ::access(tls.ca_cert.c_str(), R_OK) != 0) {
      throw util::Error(util::ExitCode::config,
                        "{}={} is not a readable file: set it to the PEM file of the CA that "
                        "signed Vault's certificate",
                        tls.ca_cert_source, tls.ca_cert);
    }
    // Vault's client uses the CA file alone when both are set; a CA directory is not looked at.
    return;
  }
  if (!tls.ca_path.empty() && (::stat(tls.ca_path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
    throw util::Error(util::ExitCode::config,
                      "{}={} is not a directory: set it to a directory of hashed CA "
                      "certificates (c_rehash), or set VAULT_CACERT to a CA file instead",
                      tls.ca_path_source, tls.ca_path);
  }
}

void fail_unfinished(std::vector<Response>& responses, const std::vector<bool>& done,
                     std::string_view reason) {
  for (std::size_t i = 0; i < responses.size(); ++i) {
    if (!done[i] && responses[i].status == 0 && responses[i].transport_error.empty()) {
      util::wipe_string(responses[i].body);
      responses[i].transport_error = std::string(reason);
    }
  }
}

CurlTransfer::~CurlTransfer() {
  release();
}

void CurlTransfer::release() {
  if (easy != nullptr) {
    if (multi != nullptr) {
      curl_multi_remove_handle(multi, easy);
    }
    curl_easy_cleanup(easy);
  }
  free_headers(headers);
  easy = nullptr;
  multi = nullptr;
  headers = nullptr;
}

bool CurlTransfer::open(std::string transfer_url, const char* protocols, long timeout_ms,
                        bool pipewait, std::size_t index) {
  easy = curl_easy_init();
  if (easy == nullptr) {
    return false;
  }
  url = std::move(transfer_url);
  static const std::string user_agent = fmt::format("crunch-secrets/{}", CS_VERSION);
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, protocols);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(easy, CURLOPT_PIPEWAIT, pipewait ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, user_agent.c_str());
  // TLS 1.2 at least, as Vault's Go client and the self-contained build's OpenSSL require:
  // without it, the dynamic build completed a TLS 1.0 handshake (RSA key exchange) and sent
  // the token over it. A libcurl that cannot set the floor gets no request.
  if (curl_easy_setopt(easy, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2)) !=
      CURLE_OK) {
    return false;
  }
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, close_on_exec);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, reinterpret_cast<char*>(index));
  return true;
}

void CurlTransfer::add_header(const char* line) {
  headers = curl_slist_append(headers, line);
}

namespace {

// No exception may leave a libcurl callback: none can unwind through libcurl's C frames (the
// self-contained build compiles libcurl without unwind tables), so running out of memory is a
// write error, as an absurd answer is.
size_t on_body(char* data, size_t size, size_t nmemb, void* user) noexcept {
  auto* out = static_cast<Response*>(user);
  const size_t n = size * nmemb;
  if (out->body.size() + n > k_max_body) {
    out->too_large = true;
    return 0; // refuse absurd answers; curl reports a write error
  }
  try {
    out->body.append(data, n);
  } catch (const std::bad_alloc&) {
    return 0;
  }
  return n;
}

// Keeps the Retry-After of an answer and no other header: any header may carry something
// secret, so none is stored; this one is parsed at once into a duration. Each header line is
// looked at in place (no copy), so a huge one costs nothing; a value longer than any valid one
// is ignored.
size_t on_header(char* data, size_t size, size_t nitems, void* user) noexcept {
  auto* out = static_cast<Response*>(user);
  const size_t n = size * nitems;
  const std::string_view line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A status line starts the headers of another answer (after a 100 Continue): forget the
    // previous one's.
    out->retry_after.reset();
    return n;
  }
  constexpr std::string_view name = "retry-after:";
  constexpr size_t k_max_line = 128;
  if (n <= name.size() || n > k_max_line) {
    return n;
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = line[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != name[i]) {
      return n;
    }
  }
  out->retry_after = parse_retry_after(line.substr(name.size()), std::chrono::system_clock::now());
  return n;
}

} // namespace

void CurlTransfer::receive_into(Response& response) {
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &response);
}

void CurlTransfer::start(CURLM* m) {
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_multi_add_handle(m, easy);
  multi = m;
}

const char* CurlTransfer::error_text(CURLcode code) const {
  return errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code);
}

std::vector<bool> done_flags(const std::vector<CurlTransfer>& transfers) {
  std::vector<bool> done(transfers.size());
  for (std::size_t i = 0; i < transfers.size(); ++i) {
    done[i] = transfers[i].done;
  }
  return done;
}

void transfer_failed(const CurlTransfer& t, CURLcode code, Response& response) {
  response.status = 0;
  response.retry_after.reset();
  TransferFailure failure = classify_failure(code, t.error_text(code));
  response.transport_error = std::move(failure.text);
  response.permanent = failure.permanent;
  if (response.too_large) {
    response.transport_error =
        fmt::format("the response is too large (over {} MiB)", k_max_body / (1024 * 1024));
    response.permanent = true;
  }
  switch (code) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
  case CURLE_SSL_CONNECT_ERROR:
    // No connection (or no TLS session over it), so no byte of the request was sent.
    response.not_sent = true;
    break;
  default:
    break;
  }
  util::wipe_string(response.body);
}

bool CurlTransport::Impl::make_transfer(CurlTransfer& t, const Request& rq, Response& response,
                                        std::size_t index, long timeout_ms) const {
  // Over TLS, wait for the first connection to learn whether it multiplexes (HTTP/2); plain
  // HTTP/1.1 has no multiplexing, so there parallel reads use parallel connections.
  if (!t.open(fmt::format("{}/v1/{}", base_url, rq.path), "http,https", timeout_ms, https, index)) {
    response.transport_error = "cannot create a libcurl handle";
    return false;
  }
  t.receive_into(response);
  const TlsConfig& tls = config.tls;
  if (!tls.ca_cert.empty()) {
    curl_easy_setopt(t.easy, CURLOPT_CAINFO, tls.ca_cert.c_str());
  }
  if (tls.ca_cert.empty() && !tls.ca_path.empty()) {
    // Only the directory, as Vault's client: not the bundle libcurl was built with as well.
    curl_easy_setopt(t.easy, CURLOPT_CAINFO, nullptr);
    curl_easy_setopt(t.easy, CURLOPT_CAPATH, tls.ca_path.c_str());
  }
  if (!tls.client_cert.empty()) {
    curl_easy_setopt(t.easy, CURLOPT_SSLCERT, tls.client_cert.c_str());
  }
  if (!tls.client_key.empty()) {
    curl_easy_setopt(t.easy, CURLOPT_SSLKEY, tls.client_key.c_str());
  }
  if (tls.skip_verify) {
    curl_easy_setopt(t.easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(t.easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (connect_to_list != nullptr) {
    curl_easy_setopt(t.easy, CURLOPT_CONNECT_TO, connect_to_list);
  }
  add_headers(t, rq);
  return true;
}

void CurlTransport::Impl::add_headers(CurlTransfer& t, const Request& rq) const {
  t.add_header("X-Vault-Request: true");
  if (!config.vault_namespace.empty()) {
    t.add_header(fmt::format("X-Vault-Namespace: {}", config.vault_namespace).c_str());
  }
  if (rq.token != nullptr) {
    util::SecureString h = "X-Vault-Token: ";
    h.append(rq.token->reveal().data(), rq.token->size());
    t.add_header(h.c_str());
    util::wipe_string(h);
  }
  if (rq.method == "POST" || rq.method == "PUT") {
    t.add_header("Content-Type: application/json");
    curl_easy_setopt(t.easy, CURLOPT_CUSTOMREQUEST, rq.method.c_str());
    curl_easy_setopt(t.easy, CURLOPT_POSTFIELDS, rq.body.reveal().data());
    curl_easy_setopt(t.easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(rq.body.size()));
  } else if (rq.method != "GET") {
    curl_easy_setopt(t.easy, CURLOPT_CUSTOMREQUEST, rq.method.c_str());
  }
}

void run_transfers(CURLM* multi, const std::vector<CurlTransfer>& transfers,
                   std::vector<Response>& responses, const std::function<bool()>& collect) {
  int running = 0;
  bool started = false;
  do {
    const CURLMcode mc = curl_multi_perform(multi, &running);
    if (mc != CURLM_OK) {
      fail_unfinished(responses, done_flags(transfers),
                      fmt::format("libcurl failed: {}", curl_multi_strerror(mc)));
      return;
    }
    started = collect();
    // A stop signal (util/stop.hpp) ends the transfers in flight at once; their handles are
    // removed with the transfers.
    const int stop_fd = util::stop::fd();
    if (stop_fd >= 0 && util::stop::requested() != 0) {
      fail_unfinished(responses, done_flags(transfers), "stopped by a signal");
      return;
    }
    // New transfers are driven by the next curl_multi_perform at once, without waiting.
    if (running > 0 && !started) {
      curl_waitfd stop{stop_fd, CURL_WAIT_POLLIN, 0};
      curl_multi_poll(multi, stop_fd >= 0 ? &stop : nullptr, stop_fd >= 0 ? 1 : 0, 200, nullptr);
    }
  } while (running > 0 || started);
}

void collect_finished(CURLM* multi, std::vector<CurlTransfer>& transfers,
                      const std::function<void(std::size_t, CURLcode, CURL*)>& on_done) {
  int msgs = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &msgs)) {
    if (msg->msg != CURLMSG_DONE) {
      continue;
    }
    char* priv = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
    const auto i = reinterpret_cast<std::size_t>(priv);
    transfers[i].done = true;
    on_done(i, msg->data.result, msg->easy_handle);
  }
}

void CurlTransport::Impl::collect_done(std::vector<CurlTransfer>& transfers,
                                       std::vector<Response>& responses, TransferWindow& window) {
  collect_finished(multi, transfers, [&](std::size_t i, CURLcode result, CURL* easy) {
    long new_connections = 0;
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &new_connections);
    connections += static_cast<std::size_t>(new_connections);
    if (result == CURLE_OK) {
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &responses[i].status);
      curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &http_version);
      window.set_limit(window_limit());
    } else {
      transfer_failed(transfers[i], result, responses[i]);
    }
    // Its handle, buffers and headers go now, and its place in the window to the next request.
    transfers[i].release();
    window.finish(i);
  });
}

std::vector<Response> CurlTransport::perform(const std::vector<const Request*>& requests,
                                             Clock::time_point /*deadline*/) {
  std::vector<Response> responses(requests.size());
  std::vector<CurlTransfer> transfers(requests.size());
  // Every attempt gets the whole client timeout, as Vault's client gives it: cutting it to what
  // is left of --wait would fail a healthy but distant Vault (--wait bounds retrying only).
  const long timeout_ms =
      std::max<long>(1, static_cast<long>(m_impl->config.client_timeout.count()));
  // At most window_limit() transfers at once; each finished one makes room for the next.
  TransferWindow window(requests.size(), m_impl->window_limit());
  const auto start_more = [&] {
    bool started = false;
    while (const std::optional<std::size_t> i = window.next()) {
      if (m_impl->make_transfer(transfers[*i], *requests[*i], responses[*i], *i, timeout_ms)) {
        transfers[*i].start(m_impl->multi);
        ++m_impl->sent;
        started = true;
      } else {
        transfers[*i].done = true; // its response says why
        window.finish(*i);
      }
    }
    return started;
  };
  start_more();
  run_transfers(m_impl->multi, transfers, responses, [&] {
    m_impl->collect_done(transfers, responses, window);
    return start_more();
  });
  return responses;
}

} // namespace cs::vault
