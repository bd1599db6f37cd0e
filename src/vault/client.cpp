#include "crunchsecrets/vault/client.hpp"

#include "crunchsecrets/util/error.hpp"
#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/util/stop.hpp"
#include "crunchsecrets/util/text.hpp"

#include <algorithm>
#include <limits>
#include <thread>

namespace cs::vault {

using util::Error;
using util::ExitCode;
using util::Secret;
using util::SecretJson;

namespace {

// Vault's answers nest a few levels deep; the parsed value is later walked recursively (dump,
// wipe), so a hostile answer nested deeper than this is refused before parsing.
constexpr std::size_t k_max_nesting = 100;

// Parses a body; a body nested too deeply is treated as not JSON (discarded).
SecretJson parse_body(const util::SecureString& body) {
  if (util::json_nests_deeper_than(body, k_max_nesting)) {
    return SecretJson(SecretJson::value_t::discarded);
  }
  return SecretJson::parse(body.begin(), body.end(), nullptr, false);
}

// Parses the body of a successful answer for `what`; throws a protocol error for one nested
// too deeply.
SecretJson parse_answer(const util::SecureString& body, const std::string& what) {
  if (util::json_nests_deeper_than(body, k_max_nesting)) {
    throw Error(ExitCode::protocol,
                "{}: Vault's answer is nested more than {} levels deep, which no Vault endpoint "
                "answers: check VAULT_ADDR and what is between crunch-secrets and Vault",
                what, k_max_nesting);
  }
  return SecretJson::parse(body.begin(), body.end(), nullptr, false);
}

// True when any string in `j` equals `token`.
bool holds_string(const SecretJson& j, std::string_view token) {
  if (j.is_string()) {
    const auto& s = j.get_ref<const SecretJson::string_t&>();
    return std::string_view(s.data(), s.size()) == token;
  }
  if (j.is_structured()) {
    for (const auto& child : j) {
      if (holds_string(child, token)) {
        return true;
      }
    }
  }
  return false;
}

// Builds a JSON request body from string fields, held as a Secret.
Secret json_body(std::initializer_list<std::pair<const char*, std::string_view>> fields) {
  SecretJson j = SecretJson::object();
  for (const auto& [k, v] : fields) {
    j[k] = util::SecureString(v.data(), v.size());
  }
  Secret out(j.dump());
  util::wipe_json(j);
  return out;
}

std::string seconds_text(Clock::duration d) {
  return fmt::format("{:.1f}s", std::chrono::duration<double>(d).count());
}

std::string body_text(const util::SecureString& body) {
  return std::string(body.data(), std::min<std::size_t>(body.size(), 512));
}

// True when a 404 body carries KV v2's warning about a path without data/ or metadata/.
bool is_kv2_path_without_data(const SecretJson& j) {
  if (!j.is_object() || !j.contains("warnings") || !j["warnings"].is_array()) {
    return false;
  }
  for (const auto& w : j["warnings"]) {
    if (w.is_string()) {
      const auto& t = w.get_ref<const SecretJson::string_t&>();
      if (std::string_view(t.data(), t.size()).find("versioned K/V") != std::string_view::npos) {
        return true;
      }
    }
  }
  return false;
}

// How many references a grouped error line names before "and N more".
constexpr std::size_t k_listed_references = 3;

// `address` with its scheme `from` replaced by `to` (unchanged when it has another scheme), for
// the hint when the scheme does not match the server.
std::string with_scheme(const std::string& address, std::string_view from, std::string_view to) {
  if (address.rfind(from, 0) != 0) {
    return address;
  }
  return std::string(to) + address.substr(from.size());
}

// The metadata of a KV v2 read answer (`data.metadata` beside `data.data`), or null.
const SecretJson* kv2_metadata(const SecretJson& j) {
  if (j.is_object() && j.contains("data") && j["data"].is_object() &&
      j["data"].contains("metadata") && j["data"]["metadata"].is_object() &&
      j["data"].contains("data")) {
    return &j["data"]["metadata"];
  }
  return nullptr;
}

// Throws the specific error for a 404 that KV v2 explains (a deleted or destroyed version, a
// path without data/); returns for a plain 404.
void explain_not_found(const ReadSpec& spec, const SecretJson& j) {
  const std::string& what = spec.describe;
  if (const SecretJson* meta = kv2_metadata(j)) {
    const bool destroyed = meta->contains("destroyed") && (*meta)["destroyed"].is_boolean() &&
                           (*meta)["destroyed"].get<bool>();
    throw Error(ExitCode::not_found,
                "{}: this version was {} (KV v2 answered 404 with its metadata): pin another "
                "version or undelete it",
                what, destroyed ? "destroyed" : "deleted");
  }
  if (is_kv2_path_without_data(j)) {
    // KV v2 says so in a warning; the mount is guessed as the first segment, as it usually is.
    const std::size_t slash = spec.path.find('/');
    const std::string mount = spec.path.substr(0, slash);
    const std::string rest = slash == std::string::npos ? "" : spec.path.substr(slash + 1);
    throw Error(ExitCode::not_found,
                "{}: not found (HTTP 404): {}/ is a KV v2 mount, whose secrets are read at "
                "<mount>/data/<path>: did you mean {}/data/{}?",
                what, mount, mount, rest);
  }
}

} // namespace

std::int64_t json_seconds(const SecretJson& object, const char* key) {
  if (!object.is_object() || !object.contains(key)) {
    return 0;
  }
  const SecretJson& v = object[key];
  if (v.is_number_unsigned()) {
    return static_cast<std::int64_t>(
        std::min<std::uint64_t>(v.get<std::uint64_t>(), std::numeric_limits<std::int64_t>::max()));
  }
  return v.is_number_integer() ? v.get<std::int64_t>() : 0;
}

bool is_https_to_plain_http(const Response& r) {
  // OpenSSL's words when the first bytes back are not a TLS record, e.g. an HTTP answer.
  return r.status == 0 && r.transport_error.find("wrong version number") != std::string::npos;
}

bool is_http_to_https(const Response& r) {
  // Go's HTTP server (Vault, OpenBao) answers a plain request on a TLS port with this body.
  return r.status == 400 &&
         body_text(r.body).find("Client sent an HTTP request to an HTTPS server") !=
             std::string::npos;
}

bool is_retryable(const Response& r) {
  if (r.status == 0) {
    return !r.permanent && !is_https_to_plain_http(r);
  }
  // 307 is a standby's redirect to the active node: it is never followed (that would send the
  // token to whatever host it names), only retried at the configured address until the
  // standby forwards again, as during a leader election.
  return r.status == 307 || r.status == 412 || r.status == 429 ||
         (r.status >= 500 && r.status != 501);
}

std::chrono::milliseconds backoff_delay(unsigned attempt, std::mt19937_64& rng) {
  const long base = 100;
  const long cap = 2000;
  const long ceiling = std::min(cap, base << std::min(attempt, 10u));
  // Full jitter (anywhere from 0 to the ceiling): processes turned away at the same moment, as
  // the containers of a workflow fanning out are, spread their retries over the whole range
  // instead of coming back together.
  std::uniform_int_distribution<long> dist(0, ceiling);
  return std::chrono::milliseconds(dist(rng));
}

std::optional<std::chrono::milliseconds> honoured_retry_after(const Response& r) {
  if (r.status == 429 || r.status == 503) {
    return r.retry_after;
  }
  return std::nullopt;
}

std::string retry_after_text(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{}s", d.count() / 1000) : seconds_text(d);
}

std::optional<std::chrono::milliseconds>
longest_retry_after(const std::vector<Response>& responses, const std::vector<std::size_t>& which) {
  std::optional<std::chrono::milliseconds> asked;
  for (std::size_t i : which) {
    if (const auto a = honoured_retry_after(responses[i])) {
      asked = std::max(asked.value_or(*a), *a);
    }
  }
  return asked;
}

RetryWait choose_retry_wait(std::chrono::milliseconds backoff,
                            std::optional<std::chrono::milliseconds> asked,
                            std::chrono::milliseconds remaining) {
  const auto room = remaining - std::chrono::milliseconds(10);
  RetryWait w;
  w.asked = asked;
  if (asked && *asked > room) {
    w.delay = remaining;
    w.past_deadline = true;
    return w;
  }
  // Full jitter stays when the server asks for less: it is what spreads clients apart.
  w.delay = std::min(std::max(backoff, asked.value_or(std::chrono::milliseconds(0))), room);
  return w;
}

std::string server_message(const util::SecureString& body, const std::vector<Secret>& credentials) {
  SecretJson j = parse_body(body);
  std::string msg;
  if (j.is_object() && j.contains("errors") && j["errors"].is_array()) {
    for (const auto& e : j["errors"]) {
      if (e.is_string()) {
        const auto& s = e.get_ref<const SecretJson::string_t&>();
        if (!s.empty()) {
          msg.assign(s.data(), s.size());
          break;
        }
      }
    }
  }
  util::wipe_json(j);
  for (const Secret& c : credentials) {
    if (c.size() < 4) {
      continue;
    }
    // Continue after each replacement: the credential may itself occur in "[redacted]".
    for (std::size_t pos = msg.find(c.reveal()); pos != std::string::npos;
         pos = msg.find(c.reveal(), pos + util::k_redacted.size())) {
      msg.replace(pos, c.size(), util::k_redacted);
    }
  }
  std::string clean;
  for (char ch : msg) {
    const auto u = static_cast<unsigned char>(ch);
    clean += (u < 0x20 || u == 0x7f) ? ' ' : ch;
  }
  if (clean.size() > 200) {
    clean.resize(197);
    clean += "...";
  }
  return clean;
}

Client::Client(Config config, Transport& transport, Clock::time_point deadline)
    : m_config(std::move(config)), m_transport(transport), m_deadline(deadline),
      m_rng(std::random_device{}()), m_start(Clock::now()) {
  if (m_config.address.empty()) {
    throw Error(ExitCode::config, "no Vault address: set VAULT_ADDR (or BAO_ADDR) or pass "
                                  "--vault-addr");
  }
}

std::vector<Response> Client::send(const std::vector<Request>& requests, bool single_use) {
  std::vector<Response> results(requests.size());
  std::vector<std::size_t> pending(requests.size());
  for (std::size_t i = 0; i < pending.size(); ++i) {
    pending[i] = i;
  }
  for (unsigned attempt = 0;; ++attempt) {
    std::vector<const Request*> batch;
    batch.reserve(pending.size());
    for (std::size_t i : pending) {
      batch.push_back(&requests[i]);
    }
    auto responses = m_transport.perform(batch, m_deadline);
    // A stop signal cut the transfers short (util/stop.hpp): revoke and die, not retry.
    util::stop::act_if_requested();
    diagnose_scheme(responses);
    std::vector<std::size_t> retry;
    for (std::size_t k = 0; k < pending.size(); ++k) {
      results[pending[k]] = std::move(responses[k]);
      const Response& got = results[pending[k]];
      // A single-use request (an unwrap, a login with a secret id) is sent again only when it
      // provably never left: otherwise it may have been used, and a second try would fail.
      if (is_retryable(got) && (!single_use || (got.status == 0 && got.not_sent))) {
        retry.push_back(pending[k]);
      }
    }
    if (retry.empty()) {
      return results;
    }
    if (m_config.max_retries && attempt >= static_cast<unsigned>(*m_config.max_retries)) {
      return results;
    }
    // Retry until the deadline itself: the last wait is cut short so that one more attempt
    // happens right before it.
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(m_deadline - Clock::now());
    if (remaining < std::chrono::milliseconds(20)) {
      return results;
    }
    const RetryWait wait = choose_retry_wait(backoff_delay(attempt, m_rng),
                                             longest_retry_after(results, retry), remaining);
    const auto delay = wait.delay;
    announce_retry(results[retry.front()], retry.size(), attempt, wait, remaining);
    util::stop::sleep_for(delay);
    util::stop::act_if_requested();
    if (wait.past_deadline) {
      return results;
    }
    pending = std::move(retry);
  }
}

void Client::announce_retry(const Response& sample, std::size_t count, unsigned attempt,
                            const RetryWait& wait, std::chrono::milliseconds remaining) const {
  // One line per attempt group: what is unavailable, the attempt, the next try, the end.
  util::log::Fields fields;
  fields.attempt = attempt + 1;
  fields.status = sample.status;
  const std::string status =
      sample.status == 0 ? sample.transport_error : fmt::format("HTTP {}", sample.status);
  const std::string ends =
      m_config.max_retries
          ? fmt::format("after {} retries (VAULT_MAX_RETRIES)", *m_config.max_retries)
          : fmt::format("in {} (--wait)", seconds_text(remaining));
  std::string next;
  if (wait.past_deadline) {
    next = fmt::format("the server asked to retry after {}, past --wait: gives up in {}",
                       retry_after_text(*wait.asked), seconds_text(wait.delay));
  } else {
    const std::string why = wait.asked && *wait.asked >= wait.delay
                                ? fmt::format(" (Retry-After: {})", retry_after_text(*wait.asked))
                                : "";
    next = fmt::format("next try in {}{}, gives up {}", seconds_text(wait.delay), why, ends);
  }
  util::log::write(util::log::Level::info,
                   fmt::format("Vault at {} unavailable ({}) for {} request(s): attempt {} "
                               "failed, {}",
                               m_config.address, status, count, attempt + 1, next),
                   fields);
}

void Client::diagnose_scheme(std::vector<Response>& responses) {
  // Over http:// to a TLS port, Go's server (Vault, OpenBao) answers 400 "Client sent an HTTP
  // request to an HTTPS server" and closes the connection; a request with a body (a login) is
  // usually reset before that answer is read, so it looks like an answer lost after the request
  // was sent: retried until --wait, or "outcome unknown" for a single-use login. One bodiless
  // GET of sys/health (no token), made once and only after such a failure, tells them apart; the
  // lost answers then become that 400, which every caller reports as the scheme mismatch (78).
  if (m_scheme_checked || m_config.address.rfind("http://", 0) != 0) {
    return;
  }
  const auto lost = [](const Response& r) {
    return r.status == 0 && !r.not_sent && !r.permanent && !r.too_large &&
           !is_https_to_plain_http(r);
  };
  if (std::none_of(responses.begin(), responses.end(), lost)) {
    return;
  }
  m_scheme_checked = true;
  Request probe;
  probe.path = "sys/health";
  auto answer = m_transport.perform({&probe}, m_deadline);
  if (answer.empty() || !is_http_to_https(answer[0])) {
    return;
  }
  for (Response& r : responses) {
    if (lost(r)) {
      r = answer[0];
    }
  }
}

void Client::fail_on_scheme_mismatch(const Response& r) const {
  // The scheme does not match the server: no retry can help, the address must change.
  if (r.status == 0 && is_https_to_plain_http(r)) {
    throw Error(ExitCode::config,
                "Vault at {} speaks plain HTTP, not TLS (the TLS handshake failed: {}): use {} "
                "in VAULT_ADDR, or enable TLS on the server",
                m_config.address, r.transport_error,
                with_scheme(m_config.address, "https://", "http://"));
  }
  if (r.status == 400 && is_http_to_https(r)) {
    throw Error(ExitCode::config,
                "Vault at {} speaks HTTPS (it answered 400 \"Client sent an HTTP request to an "
                "HTTPS server\"): use {} in VAULT_ADDR, with VAULT_CACERT for its CA",
                m_config.address, with_scheme(m_config.address, "http://", "https://"));
  }
}

void Client::fail(const Response& r, const std::string& what, ExitCode on_400,
                  const std::string& hint_403) const {
  const std::string elapsed = seconds_text(Clock::now() - m_start);
  if (r.status == 0 && r.too_large) {
    throw Error(ExitCode::protocol,
                "Vault at {} answered {} with a response too large: {}: check VAULT_ADDR and "
                "the path",
                m_config.address, what, r.transport_error);
  }
  fail_on_scheme_mismatch(r);
  if (r.status == 0 && r.permanent) {
    throw Error(ExitCode::config,
                "cannot connect to Vault at {} for {}: {}: check VAULT_ADDR, VAULT_CACERT, "
                "VAULT_CAPATH, VAULT_CLIENT_CERT/KEY and VAULT_TLS_SERVER_NAME",
                m_config.address, what, r.transport_error);
  }
  if (r.status == 0) {
    throw Error(ExitCode::unavailable,
                "Vault at {} unavailable for {}: {} (gave up after {}): check VAULT_ADDR and "
                "that Vault is running, or raise --wait",
                m_config.address, what, r.transport_error, elapsed);
  }
  const std::string server = server_message(r.body, m_credentials);
  const std::string said = server.empty() ? "" : fmt::format(": \"{}\"", server);
  if (is_retryable(r)) {
    const auto asked = honoured_retry_after(r);
    const std::string asked_text =
        asked ? fmt::format("; the server asked to retry after {}", retry_after_text(*asked)) : "";
    throw Error(ExitCode::unavailable,
                "Vault at {} unavailable for {}: HTTP {}{} (gave up after {}{}): Vault (or a "
                "service it depends on) is not ready, e.g. sealed or starting; check its status "
                "or raise --wait",
                m_config.address, what, r.status, said, elapsed, asked_text);
  }
  switch (r.status) {
  case 403:
    if (m_token_refused) {
      // auth/token/lookup-self is granted by the `default` policy, not by the token's validity
      // alone: its refusal cannot tell an invalid token from one created without `default`.
      throw Error(ExitCode::auth_failed,
                  "{}: permission denied (HTTP 403{}): Vault refused the token for "
                  "auth/token/lookup-self as well, so crunch-secrets cannot tell whether it is "
                  "invalid or expired, or valid but without the default policy that lets a "
                  "token look itself up: check it with `bao token lookup` (or `vault token "
                  "lookup`), then VAULT_TOKEN, the login or the token's policies",
                  what, said);
    }
    throw Error(ExitCode::permission_denied, "{}: permission denied (HTTP 403{}): {}", what, said,
                hint_403);
  case 404:
    throw Error(ExitCode::not_found, "{}: not found (HTTP 404{}): check the path and mount", what,
                said);
  case 400:
    throw Error(on_400, "{}: Vault refused the request (HTTP 400{})", what, said);
  case 401:
    throw Error(ExitCode::auth_failed,
                "{}: Vault refused the request (HTTP 401{}): check the "
                "credentials",
                what, said);
  default:
    throw Error(ExitCode::protocol, "{}: unexpected HTTP {} from Vault{}", what, r.status, said);
  }
}

void Client::fail_single_use(const Response& r, const std::string& what) const {
  if (is_retryable(r) && !(r.status == 0 && r.not_sent)) {
    const std::string got = r.status == 0 ? r.transport_error : fmt::format("HTTP {}", r.status);
    throw Error(ExitCode::unavailable,
                "{}: the outcome is unknown ({} after the request was sent to {}); it is not "
                "retried because the credential may be single use and already consumed: check "
                "Vault's status, then retry with the same credential or issue a new one",
                what, got, m_config.address);
  }
}

void Client::take_auth(const Response& r, const std::string& what) {
  SecretJson j = parse_answer(r.body, what);
  const SecretJson* token = nullptr;
  if (j.is_object() && j.contains("auth") && j["auth"].is_object() &&
      j["auth"].contains("client_token") && j["auth"]["client_token"].is_string()) {
    token = &j["auth"]["client_token"];
  }
  if (token == nullptr || token->get_ref<const SecretJson::string_t&>().empty()) {
    util::wipe_json(j);
    throw Error(ExitCode::protocol, "{}: Vault's answer has no auth.client_token", what);
  }
  m_token = Secret(token->get<SecretJson::string_t>());
  // The token goes into the X-Vault-Token header of every later request: an answer whose token
  // would break that header (a hostile or broken server) is refused.
  if (auto problem = util::credential_problem(m_token.reveal())) {
    util::wipe_json(j);
    m_token = Secret();
    throw Error(ExitCode::protocol, "{}: the client_token in Vault's answer {}", what, *problem);
  }
  if (j["auth"].contains("policies") && j["auth"]["policies"].is_array()) {
    std::string policies;
    for (const auto& p : j["auth"]["policies"]) {
      if (p.is_string()) {
        const auto& s = p.get_ref<const SecretJson::string_t&>();
        policies += (policies.empty() ? "" : ",") + std::string(s.data(), s.size());
      }
    }
    util::log::debug("{}: logged in with policies [{}]", what, policies);
  }
  util::wipe_json(j);
}

void Client::use_token(Secret token) {
  if (token.empty()) {
    throw Error(ExitCode::config, "the Vault token is empty");
  }
  // Core checks every credential where it reads it, naming the source; this is the last line
  // before the token becomes an X-Vault-Token header.
  if (auto problem = util::credential_problem(token.reveal())) {
    throw Error(ExitCode::config, "the Vault token {}", *problem);
  }
  m_token = std::move(token);
  m_credentials.push_back(m_token);
}

void Client::login_approle(const std::string& mount, const Secret& role_id,
                           const Secret& secret_id) {
  m_credentials.push_back(secret_id);
  std::vector<Request> req(1);
  req[0].method = "POST";
  req[0].path = fmt::format("auth/{}/login", mount);
  req[0].body = json_body({{"role_id", role_id.reveal()}, {"secret_id", secret_id.reveal()}});
  const std::string what = fmt::format("AppRole login at auth/{}", mount);
  auto r = send(req, true);
  fail_on_scheme_mismatch(r[0]);
  fail_single_use(r[0], what);
  if (!r[0].http_ok()) {
    fail_login(r[0], what, mount, "--approle-mount");
    if (r[0].status == 400 && !is_http_to_https(r[0])) {
      throw Error(ExitCode::auth_failed,
                  "{} refused (HTTP 400: \"{}\"): the role id or secret id is wrong or expired, "
                  "or the secret id may have been used up: secret ids can be single use, and "
                  "another process, an earlier run, or check --online --consume-credentials may "
                  "have used it; ask for a new secret id",
                  what, server_message(r[0].body, m_credentials));
    }
    fail(r[0], what, ExitCode::auth_failed, "check the AppRole's configuration");
  }
  take_auth(r[0], what);
  m_credentials.push_back(m_token);
  m_owns_token = true;
}

void Client::login_wrapped(const Secret& wrapping_token, const std::string& approle_mount,
                           const Secret& role_id) {
  if (auto problem = util::credential_problem(wrapping_token.reveal())) {
    throw Error(ExitCode::config, "the response-wrapping token {}", *problem);
  }
  m_credentials.push_back(wrapping_token);
  std::vector<Request> req(1);
  req[0].method = "POST";
  req[0].path = "sys/wrapping/unwrap";
  req[0].token = &wrapping_token;
  auto r = send(req, true);
  fail_on_scheme_mismatch(r[0]);
  fail_single_use(r[0], "unwrapping the response-wrapping token");
  if (r[0].status == 400 && !is_http_to_https(r[0])) {
    throw used_wrapping_token(r[0], "sys/wrapping/unwrap");
  }
  if (!r[0].http_ok()) {
    fail(r[0], "unwrapping the response-wrapping token", ExitCode::auth_failed, "");
  }
  // A wrapped AppRole secret id (as Vault Agent's secret_id_response_wrapping_path expects):
  // the answer has data.secret_id instead of auth; log in with it.
  SecretJson j = parse_body(r[0].body);
  const bool secret_id = j.is_object() && !(j.contains("auth") && j["auth"].is_object()) &&
                         j.contains("data") && j["data"].is_object() &&
                         j["data"].contains("secret_id") && j["data"]["secret_id"].is_string();
  if (secret_id) {
    Secret sid(j["data"]["secret_id"].get<SecretJson::string_t>());
    util::wipe_json(j);
    util::wipe_string(r[0].body);
    if (role_id.empty()) {
      throw Error(ExitCode::config,
                  "the response-wrapping token held an AppRole secret id (now unwrapped, so it "
                  "cannot be used again): give the role id too (--role-id, --role-id-file or "
                  "CRUNCH_SECRETS_ROLE_ID) with a new wrapped secret id");
    }
    util::log::debug("the wrapping token held an AppRole secret id: logging in at auth/{}",
                     approle_mount);
    login_approle(approle_mount, role_id, sid);
    return;
  }
  util::wipe_json(j);
  take_auth(r[0], "unwrapping the response-wrapping token");
  m_credentials.push_back(m_token);
  m_owns_token = true;
}

Error Client::used_wrapping_token(const Response& r, const std::string& endpoint) const {
  return Error(ExitCode::auth_failed,
               "the response-wrapping token was refused by {} (\"{}\"): it is single use and "
               "short-lived: another process, an earlier run, or check --online "
               "--consume-credentials may have unwrapped it, or it expired; if none of these "
               "did, treat it as a possible compromise and issue a new one",
               endpoint, server_message(r.body, m_credentials));
}

WrapInfo Client::lookup_wrapping(const Secret& wrapping_token) {
  m_credentials.push_back(wrapping_token);
  std::vector<Request> req(1);
  req[0].method = "POST";
  req[0].path = "sys/wrapping/lookup";
  req[0].body = json_body({{"token", wrapping_token.reveal()}});
  auto r = send(req);
  if (r[0].status == 400 && !is_http_to_https(r[0])) {
    throw used_wrapping_token(r[0], "sys/wrapping/lookup");
  }
  if (!r[0].http_ok()) {
    fail(r[0], "looking up the response-wrapping token", ExitCode::auth_failed, "");
  }
  SecretJson j = parse_body(r[0].body);
  WrapInfo info;
  if (j.is_object() && j.contains("data") && j["data"].is_object()) {
    const SecretJson& d = j["data"];
    if (d.contains("creation_path") && d["creation_path"].is_string()) {
      const auto& v = d["creation_path"].get_ref<const SecretJson::string_t&>();
      info.creation_path.assign(v.data(), v.size());
    }
    if (d.contains("creation_ttl") && d["creation_ttl"].is_number_integer()) {
      info.creation_ttl = d["creation_ttl"].get<std::int64_t>();
    }
  }
  util::wipe_json(j);
  return info;
}

void Client::fail_login(const Response& r, const std::string& what, const std::string& mount,
                        const std::string& option) const {
  // Login paths need no token, so Vault answers 403/404/405 there only when it finds no login
  // endpoint: nothing, or a method of another type, is mounted at auth/<mount>. (Without a
  // token Vault does not say which: sys/internal/ui/mounts answers 403 too.)
  if (r.status == 403 || r.status == 404 || r.status == 405) {
    const std::string server = server_message(r.body, m_credentials);
    throw Error(ExitCode::auth_failed,
                "{} refused (HTTP {}{}): no auth method of that type is mounted at auth/{} (Vault "
                "answers a login with {} when it finds no login endpoint there): check {} "
                "against `bao auth list` / `vault auth list`",
                what, r.status, server.empty() ? "" : fmt::format(": \"{}\"", server), mount,
                r.status, option);
  }
}

void Client::login_arvados(const std::string& mount, const std::string& role,
                           const Secret& arvados_token) {
  m_credentials.push_back(arvados_token);
  std::vector<Request> req(1);
  req[0].method = "POST";
  req[0].path = fmt::format("auth/{}/login", mount);
  req[0].body = json_body({{"role", role}, {"arvados_token", arvados_token.reveal()}});
  const std::string what = fmt::format("Arvados login at auth/{} (role '{}')", mount, role);
  auto r = send(req);
  fail_on_scheme_mismatch(r[0]);
  if (r[0].status == 404 || r[0].status == 405) {
    fail_login(r[0], what, mount, "--arvados-mount");
  }
  if (r[0].status == 403 || r[0].status == 400 || r[0].status == 401) {
    throw Error(ExitCode::auth_failed,
                "{} refused (HTTP {}: \"{}\"): check that the container is running, its user is "
                "bound to the role, the role exists, and the plugin is mounted at that path",
                what, r[0].status, server_message(r[0].body, m_credentials));
  }
  if (!r[0].http_ok()) {
    fail(r[0], what, ExitCode::auth_failed, "");
  }
  take_auth(r[0], what);
  m_credentials.push_back(m_token);
  m_owns_token = true;
}

std::vector<Fetched> Client::read_all(const std::vector<ReadSpec>& specs) {
  std::vector<Request> reqs(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    reqs[i].path = specs[i].path;
    if (specs[i].version) {
      reqs[i].path += fmt::format("?version={}", *specs[i].version);
    }
    reqs[i].token = &m_token;
  }
  auto responses = send(reqs);
  // A 403 means an invalid or expired token, or a valid one without a policy: one more
  // request, made only after such a failure, tells them apart for every reference at once.
  m_token_refused = false;
  if (std::any_of(responses.begin(), responses.end(),
                  [](const Response& r) { return r.status == 403; })) {
    m_token_refused = !token_is_valid();
  }
  std::vector<Fetched> out(specs.size());
  std::vector<Error> failures;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    try {
      out[i] = parse_read(specs[i], responses[i]);
    } catch (Error& e) {
      util::log::Fields fields;
      fields.reference = specs[i].reference;
      fields.path = specs[i].path;
      fields.status = responses[i].status;
      e.with_fields(std::move(fields));
      failures.push_back(e);
    }
    util::wipe_string(responses[i].body);
  }
  if (!failures.empty()) {
    throw report_failures(failures, specs);
  }
  return out;
}

bool Client::token_is_valid() {
  std::vector<Request> req(1);
  req[0].path = "auth/token/lookup-self";
  req[0].token = &m_token;
  auto r = send(req);
  util::wipe_string(r[0].body);
  // Only a refusal says the token is bad; any other outcome leaves "valid, no policy" standing.
  return r[0].status != 403 && r[0].status != 401;
}

Error Client::report_failures(const std::vector<Error>& failures,
                              const std::vector<ReadSpec>& specs) const {
  // Vault unavailable or misconfigured is one cause whatever the references: say it once.
  for (const Error& e : failures) {
    if (e.code() == ExitCode::unavailable || e.code() == ExitCode::config) {
      return e;
    }
  }
  // Failures whose messages differ only in the reference are one cause: one line each.
  struct Group {
    ExitCode code;
    std::string cause; // the message after "<reference>: "
    std::vector<std::size_t> members;
  };
  std::vector<Group> groups;
  for (std::size_t k = 0; k < failures.size(); ++k) {
    const std::string message = failures[k].what();
    std::string cause = message;
    for (const ReadSpec& spec : specs) {
      if (!spec.describe.empty() && message.rfind(spec.describe + ": ", 0) == 0) {
        cause = message.substr(spec.describe.size() + 2);
        break;
      }
    }
    auto it = std::find_if(groups.begin(), groups.end(), [&](const Group& g) {
      return g.code == failures[k].code() && g.cause == cause;
    });
    if (it == groups.end()) {
      groups.push_back(Group{failures[k].code(), cause, {}});
      it = groups.end() - 1;
    }
    it->members.push_back(k);
  }
  std::vector<Error> lines;
  for (const Group& g : groups) {
    const Error& first = failures[g.members.front()];
    if (g.members.size() == 1) {
      lines.push_back(first);
      continue;
    }
    std::string refs;
    for (std::size_t m = 0; m < std::min(g.members.size(), k_listed_references); ++m) {
      const auto& f = failures[g.members[m]].fields();
      refs += (refs.empty() ? "" : ", ") + (f.reference.empty() ? f.path : f.reference);
    }
    if (g.members.size() > k_listed_references) {
      refs += fmt::format(" and {} more", g.members.size() - k_listed_references);
    }
    Error grouped(g.code, "{} references: {}: {}", g.members.size(), g.cause, refs);
    grouped.with_fields(first.fields());
    lines.push_back(std::move(grouped));
  }
  // All but the first cause are logged here; the first is thrown for main() to report, and
  // its exit code is the process's.
  for (std::size_t k = 1; k < lines.size(); ++k) {
    util::log::Fields fields = lines[k].fields();
    fields.exit_code = static_cast<int>(lines[k].code());
    util::log::write(util::log::Level::error, lines[k].what(), fields);
  }
  return lines.front();
}

Fetched Client::parse_read(const ReadSpec& spec, const Response& r) const {
  const std::string what = spec.describe;
  SecretJson j = r.http_ok() ? parse_answer(r.body, what) : parse_body(r.body);
  struct Wiper {
    SecretJson& j;
    ~Wiper() { util::wipe_json(j); }
  } wiper{j};
  if (r.status == 404) {
    explain_not_found(spec, j);
  }
  if (!r.http_ok()) {
    fail(r, what, ExitCode::protocol,
         "the token is valid but no policy grants read on this path: ask the Vault admin for "
         "one");
  }
  if (!j.is_object() || !j.contains("data") || !j["data"].is_object()) {
    throw Error(ExitCode::protocol, "{}: Vault's answer has no 'data' object", what);
  }
  // A token is never delivered (SECURITY.md, "Tokens are never delivered"): an answer with a
  // login or wrapping block, or holding crunch-secrets' own token anywhere, is refused whatever
  // its path (a namespace prefix can hide a path that the reference rules would refuse).
  const bool has_auth = j.contains("auth") && !j["auth"].is_null();
  const bool has_wrap = j.contains("wrap_info") && !j["wrap_info"].is_null();
  if (has_auth || has_wrap || (!m_token.empty() && holds_string(j, m_token.reveal()))) {
    throw Error(ExitCode::protocol,
                "{}: Vault's answer carries a Vault token ({}), which crunch-secrets never "
                "delivers: reference a secret, not a login, token or wrapping endpoint",
                what,
                has_auth   ? "an 'auth' block"
                : has_wrap ? "a 'wrap_info' block"
                           : "its own token");
  }
  Fetched f;
  if (const SecretJson* meta = kv2_metadata(j); meta != nullptr && j["data"]["data"].is_object()) {
    f.kv2 = true;
    if (meta->contains("version") && (*meta)["version"].is_number_unsigned()) {
      f.version = (*meta)["version"].get<std::uint64_t>();
    }
    f.data = std::move(j["data"]["data"]);
  } else if (kv2_metadata(j) != nullptr && j["data"]["data"].is_null()) {
    throw Error(ExitCode::not_found, "{}: this version was deleted (no data)", what);
  } else {
    f.data = std::move(j["data"]);
  }
  if (spec.version && !f.kv2) {
    throw Error(ExitCode::protocol,
                "{}: a version was asked for but the answer is not a KV v2 read; versions apply "
                "only to KV v2 data paths (<mount>/data/<path>)",
                what);
  }
  if (j.contains("lease_id") && j["lease_id"].is_string()) {
    const auto& s = j["lease_id"].get_ref<const SecretJson::string_t&>();
    f.lease_id.assign(s.data(), s.size());
  }
  f.lease_duration = json_seconds(j, "lease_duration");
  if (j.contains("renewable") && j["renewable"].is_boolean()) {
    f.renewable = j["renewable"].get<bool>();
  }
  return f;
}

std::vector<std::vector<std::string>> Client::capabilities(const std::vector<std::string>& paths) {
  std::vector<Request> req(1);
  req[0].method = "POST";
  req[0].path = "sys/capabilities-self";
  req[0].token = &m_token;
  SecretJson body = SecretJson::object();
  body["paths"] = SecretJson::array();
  for (const auto& p : paths) {
    body["paths"].push_back(util::SecureString(p.data(), p.size()));
  }
  req[0].body = Secret(body.dump());
  auto r = send(req);
  if (r[0].status == 403) {
    // The `default` policy grants sys/capabilities-self (and auth/token/lookup-self) to every
    // token that has it: a refusal here means an invalid token or one without `default`.
    const std::string server = server_message(r[0].body, m_credentials);
    throw Error(ExitCode::auth_failed,
                "sys/capabilities-self: permission denied (HTTP 403{}): Vault refused the token, "
                "so crunch-secrets cannot tell whether it is invalid or expired, or valid but "
                "without the default policy that lets a token ask for its own capabilities: "
                "check it with `bao token lookup` (or `vault token lookup`), then VAULT_TOKEN, "
                "the login or the token's policies",
                server.empty() ? "" : fmt::format(": \"{}\"", server));
  }
  if (!r[0].http_ok()) {
    fail(r[0], "sys/capabilities-self", ExitCode::protocol, "the token may not use this endpoint");
  }
  SecretJson j = parse_answer(r[0].body, "sys/capabilities-self");
  std::vector<std::vector<std::string>> out;
  for (const auto& p : paths) {
    std::vector<std::string> caps;
    const util::SecureString key(p.data(), p.size());
    const SecretJson* list = nullptr;
    if (j.is_object() && j.contains("data") && j["data"].is_object() && j["data"].contains(key)) {
      list = &j["data"][key];
    } else if (j.is_object() && j.contains(key)) {
      list = &j[key];
    }
    if (list != nullptr && list->is_array()) {
      for (const auto& c : *list) {
        if (c.is_string()) {
          const auto& s = c.get_ref<const SecretJson::string_t&>();
          caps.emplace_back(s.data(), s.size());
        }
      }
    }
    out.push_back(std::move(caps));
  }
  util::wipe_json(j);
  return out;
}

} // namespace cs::vault
