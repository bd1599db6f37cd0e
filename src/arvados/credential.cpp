#include "crunchsecrets/arvados/credential.hpp"

#include "crunchsecrets/util/error.hpp"
#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/util/stop.hpp"
#include "crunchsecrets/util/text.hpp"
#include "crunchsecrets/vault/client.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <fmt/format.h>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

namespace cs::arvados {

using util::Error;
using util::ExitCode;
using util::Secret;
using util::SecretJson;

bool is_credential_uuid(std::string_view s) {
  if (s.size() != 27 || s[5] != '-' || s[11] != '-' || s.substr(6, 5) != "oss07") {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == 5 || i == 11) {
      continue;
    }
    const char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
      return false;
    }
  }
  return true;
}

bool CredentialRef::by_uuid() const {
  return is_credential_uuid(credential);
}

std::string CredentialRef::describe() const {
  return fmt::format("arvados:credential/{}#{}", credential,
                     field == Field::secret ? "secret" : "external_id");
}

util::Result<CredentialRef> parse_credential_ref(std::string_view text) {
  constexpr std::string_view prefix = "credential/";
  if (text.substr(0, prefix.size()) != prefix) {
    return util::err("an arvados: reference is arvados:credential/<uuid-or-name>#secret or "
                     "#external_id");
  }
  text.remove_prefix(prefix.size());
  const std::size_t hash = text.find('#');
  if (hash == std::string_view::npos) {
    return util::err("add #secret or #external_id after the credential name or uuid");
  }
  CredentialRef ref;
  ref.credential = std::string(text.substr(0, hash));
  const std::string_view field = text.substr(hash + 1);
  if (field == "secret") {
    ref.field = Field::secret;
  } else if (field == "external_id") {
    ref.field = Field::external_id;
  } else {
    return util::err("the part after '#' must be 'secret' or 'external_id'");
  }
  if (ref.credential.empty() || ref.credential.size() > 255) {
    return util::err("the credential name or uuid must be 1 to 255 characters");
  }
  for (char c : ref.credential) {
    if (c == '/' || c == '}' || c == '\0' || c == '\n' || c == '\r') {
      return util::err("a credential name cannot contain '/', '}' or a line break");
    }
  }
  return ref;
}

std::optional<long long> parse_rfc3339(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00)
  if (t.size() < 20 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != ' ') ||
      t[13] != ':' || t[16] != ':') {
    return std::nullopt;
  }
  auto num = [&](std::size_t pos, std::size_t len) -> std::optional<int> {
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (std::isdigit(static_cast<unsigned char>(t[i])) == 0) {
        return std::nullopt;
      }
      v = v * 10 + (t[i] - '0');
    }
    return v;
  };
  const auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2),
             s = num(17, 2);
  if (!y || !mo || !d || !h || !mi || !s || *mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 ||
      *mi > 59 || *s > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    while (pos < t.size() && std::isdigit(static_cast<unsigned char>(t[pos])) != 0) {
      ++pos;
    }
  }
  const std::string_view zone = t.substr(pos);
  if (zone != "Z" && zone != "+00:00") {
    return std::nullopt;
  }
  // Days from civil (proleptic Gregorian), so that no time zone database is involved.
  const long long yy = *y - (*mo <= 2 ? 1 : 0);
  const long long era = (yy >= 0 ? yy : yy - 399) / 400;
  const long long yoe = yy - era * 400;
  const long long mp = (*mo + 9) % 12;
  const long long doy = (153 * mp + 2) / 5 + *d - 1;
  const long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const long long days = era * 146097 + doe - 719468;
  return days * 86400 + *h * 3600 + *mi * 60 + *s;
}

namespace {

// Arvados' answers nest a few levels; deeper is a hostile server, refused as "not JSON" (the
// parsed value would be walked recursively).
constexpr std::size_t k_max_nesting = 100;

SecretJson parse_body(const util::SecureString& body) {
  if (util::json_nests_deeper_than(body, k_max_nesting)) {
    return SecretJson(SecretJson::value_t::discarded);
  }
  return SecretJson::parse(body.begin(), body.end(), nullptr, false);
}

// True when `j[key]` is there and neither null nor a string: a field of the wrong type.
bool wrong_type(const SecretJson& j, const char* key) {
  return j.contains(key) && !j[key].is_null() && !j[key].is_string();
}

std::string percent_encode(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += ch;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned>(c));
    }
  }
  return out;
}

// `credentials?filters=[[attr,"in",[values...]]]`, with a limit above any sane count.
std::string list_path(const char* attr, const std::vector<std::string>& values) {
  nlohmann::json filters = nlohmann::json::array();
  filters.push_back(nlohmann::json::array({attr, "in", values}));
  return fmt::format("credentials?filters={}&limit=1000", percent_encode(filters.dump()));
}

std::string string_field(const SecretJson& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string()) {
    return {};
  }
  const auto& s = j[key].get_ref<const SecretJson::string_t&>();
  return std::string(s.data(), s.size());
}

std::string ref_text(const std::string& credential) {
  return fmt::format("arvados:credential/{}", credential);
}

} // namespace

Client::Client(Config config, Transport& transport, Clock::time_point deadline, long long now_epoch)
    : m_config(std::move(config)), m_transport(transport), m_deadline(deadline), m_now(now_epoch),
      m_rng(std::random_device{}()) {}

std::vector<Response> Client::send(const std::vector<std::string>& paths, const Secret& token) {
  std::vector<Response> results(paths.size());
  std::vector<std::size_t> pending(paths.size());
  for (std::size_t i = 0; i < pending.size(); ++i) {
    pending[i] = i;
  }
  for (unsigned attempt = 0;; ++attempt) {
    std::vector<std::string> batch;
    for (std::size_t i : pending) {
      batch.push_back(paths[i]);
    }
    auto responses = m_transport.get_all(batch, token, m_deadline);
    std::vector<std::size_t> retry;
    for (std::size_t k = 0; k < pending.size(); ++k) {
      results[pending[k]] = std::move(responses[k]);
      if (vault::is_retryable(results[pending[k]])) {
        retry.push_back(pending[k]);
      }
    }
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(m_deadline - Clock::now());
    // After a stop signal (util/stop.hpp) no retry: the thread that holds the Vault token acts
    // on it.
    if (retry.empty() || remaining < std::chrono::milliseconds(20) ||
        util::stop::requested() != 0) {
      return results;
    }
    // The same rule as Vault's (README, "Vault connection"): the jittered backoff, or the
    // Retry-After of a 429 or 503 when longer; one pointing past the deadline is not retried.
    const vault::RetryWait wait =
        vault::choose_retry_wait(vault::backoff_delay(attempt, m_rng),
                                 vault::longest_retry_after(results, retry), remaining);
    util::log::debug(
        "Arvados API not ready; {} {} request(s) in {} ms{}",
        wait.past_deadline ? "giving up on" : "retrying", retry.size(), wait.delay.count(),
        wait.asked ? fmt::format(" (Retry-After: {})", vault::retry_after_text(*wait.asked)) : "");
    util::stop::sleep_for(wait.delay);
    if (wait.past_deadline) {
      return results;
    }
    pending = std::move(retry);
  }
}

void Client::fail(const Response& r, const std::string& what, const Secret& token) const {
  if (r.status == 0 && r.too_large) {
    throw Error(ExitCode::protocol,
                "{}: the Arvados API at {} answered with {}: check ARVADOS_API_HOST", what,
                m_config.base_url, r.transport_error);
  }
  if (r.status == 0) {
    throw Error(r.permanent ? ExitCode::config : ExitCode::unavailable,
                "{}: cannot reach the Arvados API at {} ({}): check ARVADOS_API_HOST{}", what,
                m_config.base_url, r.transport_error,
                r.permanent ? " and the CA bundle (or ARVADOS_API_HOST_INSECURE)" : "");
  }
  const std::string msg = vault::server_message(r.body, {token});
  const std::string said = msg.empty() ? "" : fmt::format(": {}", msg);
  switch (r.status) {
  case 401:
    throw Error(ExitCode::auth_failed,
                "{}: Arvados refused ARVADOS_API_TOKEN (401{}): the token is wrong or expired, "
                "or its container is no longer Running",
                what, said);
  case 403:
    throw Error(ExitCode::permission_denied,
                "{}: Arvados denied access (403{}): credential secrets are given only to a "
                "Running container of a user who can read the credential",
                what, said);
  case 404:
    throw Error(ExitCode::not_found,
                "{}: unknown, or not readable by this container's user (404{}): check the uuid "
                "or ask the credential's owner to share it (can_read)",
                what, said);
  default:
    break;
  }
  // A 429 is a rate limit that outlasted --wait, as a 5xx is an outage that did.
  if (r.status >= 500 || r.status == 429) {
    const auto asked = vault::honoured_retry_after(r);
    const std::string asked_text =
        asked ? fmt::format("; the server asked to retry after {}", vault::retry_after_text(*asked))
              : "";
    throw Error(ExitCode::unavailable, "{}: Arvados API unavailable (HTTP {}{}{}): try again later",
                what, r.status, said, asked_text);
  }
  throw Error(ExitCode::protocol, "{}: unexpected answer from Arvados (HTTP {}{})", what, r.status,
              said);
}

namespace {

// Splits the credentials named into distinct uuids and distinct names.
void split_credentials(const std::vector<std::string>& credentials, std::vector<std::string>& uuids,
                       std::vector<std::string>& names) {
  for (const auto& c : credentials) {
    auto& into = is_credential_uuid(c) ? uuids : names;
    if (std::find(into.begin(), into.end(), c) == into.end()) {
      into.push_back(c);
    }
  }
}

// Checks the answer of containers/current (already HTTP 2xx): the container must be Running.
void check_running(const Response& current, const std::string& all_refs) {
  SecretJson c = parse_body(current.body);
  const std::string state = c.is_object() ? string_field(c, "state") : std::string();
  const std::string uuid = c.is_object() ? string_field(c, "uuid") : std::string();
  util::wipe_json(c);
  if (state.empty()) {
    throw Error(ExitCode::protocol, "{}: containers/current answered no container state", all_refs);
  }
  if (state != "Running") {
    throw Error(ExitCode::permission_denied,
                "{}: container {} is {}, not Running: Arvados gives credential secrets only "
                "to a Running container",
                all_refs, uuid, state);
  }
}

// The credentials the list answers made visible, by uuid and by name.
struct Listing {
  std::map<std::string, CredentialInfo> by_uuid;
  std::map<std::string, std::vector<CredentialInfo>> by_name;
};

// Adds the items of one list answer (already HTTP 2xx) to `listing`.
void add_listed(Listing& listing, const Response& answer, bool names_list,
                const std::string& what) {
  SecretJson j = parse_body(answer.body);
  if (!j.is_object() || !j.contains("items") || !j["items"].is_array()) {
    util::wipe_json(j);
    throw Error(ExitCode::protocol, "{}: the credentials list has no items array", what);
  }
  for (const auto& item : j["items"]) {
    if (!item.is_object()) {
      continue;
    }
    CredentialInfo info{string_field(item, "uuid"), string_field(item, "name"),
                        string_field(item, "credential_class"), string_field(item, "expires_at")};
    // An expiry crunch-secrets cannot read must not pass for "never expires".
    if (wrong_type(item, "expires_at") ||
        (!info.expires_at.empty() && !parse_rfc3339(info.expires_at))) {
      util::wipe_json(j);
      throw Error(ExitCode::protocol,
                  "{}: credential {} has an expires_at that is not an RFC 3339 time: not an "
                  "answer of the Arvados credentials API",
                  what, info.uuid);
    }
    if (names_list) {
      listing.by_name[info.name].push_back(info);
    } else {
      listing.by_uuid[info.uuid] = info;
    }
  }
  util::wipe_json(j);
}

// Every name must match exactly one credential; every uuid must be visible.
std::vector<std::pair<std::string, CredentialInfo>>
match_wanted(const std::vector<std::string>& uuids, const std::vector<std::string>& names,
             const Listing& listing) {
  std::vector<std::pair<std::string, CredentialInfo>> wanted;
  for (const auto& u : uuids) {
    auto it = listing.by_uuid.find(u);
    if (it == listing.by_uuid.end()) {
      throw Error(ExitCode::not_found,
                  "{}: no such credential, or not readable by this container's user: check the "
                  "uuid or ask the credential's owner to share it (can_read)",
                  ref_text(u));
    }
    wanted.emplace_back(u, it->second);
  }
  for (const auto& n : names) {
    auto it = listing.by_name.find(n);
    if (it == listing.by_name.end() || it->second.empty()) {
      throw Error(ExitCode::not_found,
                  "{}: no credential with this name is readable by this container's user: check "
                  "the name (arv credential list) or ask its owner to share it (can_read)",
                  ref_text(n));
    }
    if (it->second.size() > 1) {
      std::string list;
      for (const auto& c : it->second) {
        list += (list.empty() ? "" : ", ") + c.uuid;
      }
      throw Error(ExitCode::invalid_input,
                  "{}: {} credentials have this name ({}): refer to one by its uuid", ref_text(n),
                  it->second.size(), list);
    }
    wanted.emplace_back(n, it->second.front());
  }
  return wanted;
}

void check_expiry(const std::vector<std::pair<std::string, CredentialInfo>>& wanted,
                  long long now) {
  for (const auto& [text, info] : wanted) {
    if (!info.expires_at.empty()) {
      const auto t = parse_rfc3339(info.expires_at);
      if (t && *t <= now) {
        throw Error(ExitCode::permission_denied,
                    "{}: credential {} expired at {}: ask its owner to renew it", ref_text(text),
                    info.uuid, info.expires_at);
      }
    }
  }
}

// The secret of one answer (already HTTP 2xx) to credentials/{uuid}/secret.
CredentialSecret secret_of(const Response& answer, const CredentialInfo& info,
                           const std::string& what) {
  SecretJson j = parse_body(answer.body);
  if (!j.is_object() || !j.contains("secret") || !j["secret"].is_string() ||
      wrong_type(j, "external_id")) {
    util::wipe_json(j);
    throw Error(ExitCode::protocol,
                "{}: the secret answer has no string 'secret' field, or an 'external_id' that "
                "is not a string",
                what);
  }
  CredentialSecret cs;
  cs.info = info;
  cs.secret = Secret(j["secret"].get_ref<const SecretJson::string_t&>());
  if (j.contains("external_id") && j["external_id"].is_string()) {
    cs.external_id = Secret(j["external_id"].get_ref<const SecretJson::string_t&>());
  }
  util::wipe_json(j);
  return cs;
}

} // namespace

std::vector<std::pair<std::string, CredentialSecret>>
Client::fetch(const std::vector<std::string>& credentials, const Secret& token) {
  std::vector<std::string> uuids;
  std::vector<std::string> names;
  split_credentials(credentials, uuids, names);
  std::vector<std::pair<std::string, CredentialSecret>> out;
  if (uuids.empty() && names.empty()) {
    return out;
  }
  const std::string all_refs = ref_text(names.empty() ? uuids.front() : names.front());
  if (token.empty()) {
    throw Error(ExitCode::config,
                "{}: ARVADOS_API_TOKEN is not set: Arvados credentials are read with a running "
                "container's token (runtime_constraints API: true)",
                all_refs);
  }
  // The token becomes an Authorization header: a line break would add headers of its own.
  if (auto problem = util::credential_problem(token.reveal())) {
    throw Error(ExitCode::config, "{}: ARVADOS_API_TOKEN {}", all_refs, *problem);
  }

  // Round trip 1: which container the token belongs to, and the public fields of every
  // credential named.
  std::vector<std::string> paths{"containers/current"};
  if (!uuids.empty()) {
    paths.push_back(list_path("uuid", uuids));
  }
  if (!names.empty()) {
    paths.push_back(list_path("name", names));
  }
  const auto first = send(paths, token);
  if (first[0].status == 404) {
    throw Error(ExitCode::permission_denied,
                "{}: ARVADOS_API_TOKEN is not a container's token: Arvados gives credential "
                "secrets only to a Running container (use crunch-secrets inside the container)",
                all_refs);
  }
  if (!first[0].http_ok()) {
    fail(first[0], all_refs, token);
  }
  check_running(first[0], all_refs);
  Listing listing;
  for (std::size_t i = 1; i < first.size(); ++i) {
    const bool names_list = !names.empty() && i == first.size() - 1;
    const std::string what =
        ref_text(names_list ? names.front() : uuids.front()) + " (listing credentials)";
    if (!first[i].http_ok()) {
      fail(first[i], what, token);
    }
    add_listed(listing, first[i], names_list, what);
  }
  const auto wanted = match_wanted(uuids, names, listing);
  check_expiry(wanted, m_now);

  // Round trip 2: every secret, in parallel.
  std::vector<std::string> secret_paths;
  for (const auto& w : wanted) {
    secret_paths.push_back(fmt::format("credentials/{}/secret", w.second.uuid));
  }
  const auto secrets = send(secret_paths, token);
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    const std::string what = ref_text(wanted[i].first);
    if (!secrets[i].http_ok()) {
      fail(secrets[i], what, token);
    }
    out.emplace_back(wanted[i].first, secret_of(secrets[i], wanted[i].second, what));
  }
  return out;
}

} // namespace cs::arvados
