// The Vault requests of supervise mode: lease and token renewal and revocation, single
// re-reads, and KV v2 version checks (README.md, "Supervise mode").
#include "crunchsecrets/util/error.hpp"
#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/vault/client.hpp"

namespace cs::vault {

namespace {

// The JSON body {"lease_id": ..., "increment": N}; either part may be left out.
util::Secret lease_body(const std::string* lease_id, std::optional<std::int64_t> increment) {
  util::SecretJson j = util::SecretJson::object();
  if (lease_id != nullptr) {
    j["lease_id"] = util::SecureString(lease_id->data(), lease_id->size());
  }
  if (increment) {
    j["increment"] = *increment;
  }
  util::Secret out(j.dump());
  util::wipe_json(j);
  return out;
}

// Reads `ttl_key` and "renewable" from `object` (missing fields count as 0 / false).
LeaseInfo lease_info(const util::SecretJson& object, const char* ttl_key) {
  LeaseInfo info;
  if (!object.is_object()) {
    return info;
  }
  info.ttl = json_seconds(object, ttl_key);
  if (object.contains("renewable") && object["renewable"].is_boolean()) {
    info.renewable = object["renewable"].get<bool>();
  }
  return info;
}

// Parses a response body, wiping it when the caller is done (token answers carry the token).
struct Parsed {
  util::SecretJson j;
  explicit Parsed(const util::SecureString& body)
      : j(util::SecretJson::parse(body.begin(), body.end(), nullptr, false)) {}
  Parsed(const Parsed&) = delete;
  Parsed& operator=(const Parsed&) = delete;
  ~Parsed() { util::wipe_json(j); }
  const util::SecretJson* member(const char* key) const {
    if (j.is_object() && j.contains(key) && j[key].is_object()) {
      return &j[key];
    }
    return nullptr;
  }
};

} // namespace

Fetched Client::read(const ReadSpec& spec) {
  return read_all({spec}).front();
}

LeaseInfo Client::renew_lease(const std::string& lease_id, std::int64_t increment) {
  std::vector<Request> req(1);
  req[0].method = "PUT";
  req[0].path = "sys/leases/renew";
  req[0].body = lease_body(&lease_id, increment);
  req[0].token = &m_token;
  auto r = send(req);
  if (!r[0].http_ok()) {
    fail(r[0], "renewing a lease (sys/leases/renew)", util::ExitCode::protocol,
         "the policy must allow update on sys/leases/renew");
  }
  Parsed p(r[0].body);
  util::wipe_string(r[0].body);
  return lease_info(p.j, "lease_duration");
}

void Client::revoke_lease(const std::string& lease_id) {
  std::vector<Request> req(1);
  req[0].method = "PUT";
  req[0].path = "sys/leases/revoke";
  req[0].body = lease_body(&lease_id, std::nullopt);
  req[0].token = &m_token;
  auto r = send(req);
  if (!r[0].http_ok()) {
    fail(r[0], "revoking a lease (sys/leases/revoke)", util::ExitCode::protocol,
         "the policy must allow update on sys/leases/revoke");
  }
}

LeaseInfo Client::lookup_self() {
  std::vector<Request> req(1);
  req[0].path = "auth/token/lookup-self";
  req[0].token = &m_token;
  auto r = send(req);
  if (!r[0].http_ok()) {
    fail(r[0], "looking up the token (auth/token/lookup-self)", util::ExitCode::protocol,
         "the default policy allows this; was it removed?");
  }
  // The answer holds the token itself under data.id: parsed as SecretJson and wiped.
  Parsed p(r[0].body);
  util::wipe_string(r[0].body);
  const util::SecretJson* data = p.member("data");
  return data != nullptr ? lease_info(*data, "ttl") : LeaseInfo{};
}

LeaseInfo Client::renew_self(std::int64_t increment) {
  std::vector<Request> req(1);
  req[0].method = "POST";
  req[0].path = "auth/token/renew-self";
  req[0].body = lease_body(nullptr, increment);
  req[0].token = &m_token;
  auto r = send(req);
  if (!r[0].http_ok()) {
    fail(r[0], "renewing the token (auth/token/renew-self)", util::ExitCode::protocol,
         "the default policy allows this; was it removed?");
  }
  Parsed p(r[0].body);
  util::wipe_string(r[0].body);
  const util::SecretJson* auth = p.member("auth");
  return auth != nullptr ? lease_info(*auth, "lease_duration") : LeaseInfo{};
}

void Client::revoke_self() {
  std::vector<Request> req(1);
  req[0].method = "POST";
  req[0].path = "auth/token/revoke-self";
  req[0].token = &m_token;
  auto r = send(req);
  if (!r[0].http_ok()) {
    fail(r[0], "revoking the token (auth/token/revoke-self)", util::ExitCode::protocol,
         "the default policy allows this; was it removed?");
  }
  m_token.clear();
}

std::uint64_t Client::kv2_current_version(const std::string& metadata_path) {
  std::vector<Request> req(1);
  req[0].path = metadata_path;
  req[0].token = &m_token;
  auto r = send(req);
  const std::string what = fmt::format("KV v2 metadata {}", metadata_path);
  if (!r[0].http_ok()) {
    fail(r[0], what, util::ExitCode::protocol,
         "the policy must allow read on the metadata path for refresh (or drop 'refresh')");
  }
  Parsed p(r[0].body);
  util::wipe_string(r[0].body);
  const util::SecretJson* data = p.member("data");
  if (data == nullptr || !data->contains("current_version") ||
      !(*data)["current_version"].is_number_unsigned()) {
    throw util::Error(util::ExitCode::protocol, "{}: Vault's answer has no data.current_version",
                      what);
  }
  return (*data)["current_version"].get<std::uint64_t>();
}

} // namespace cs::vault
