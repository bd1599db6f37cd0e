#include "crunchsecrets/arvados/config.hpp"
#include "crunchsecrets/arvados/credential.hpp"
#include "crunchsecrets/core/error.hpp"
#include "fake_arvados.hpp"
#include "fake_transport.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <map>
#include <optional>

using namespace cs::arvados;
using cs::test::code_of;
using cs::test::error_of;
using cs::test::FakeArvados;
using cs::test::no_connection;
using cs::test::resp;
using cs::util::Secret;
using namespace std::chrono_literals;

namespace {

// 2026-01-01T00:00:00Z, the "now" of these tests.
constexpr long long k_now = 1767225600;

const std::string k_lab_aws = "zzzzz-oss07-labawscred00001";
const std::string k_lab_db = "zzzzz-oss07-labdbpasswd0001";

std::string item(const std::string& uuid, const std::string& name,
                 const std::string& expires = "2099-01-01T00:00:00.000000000Z") {
  return R"({"uuid":")" + uuid + R"(","name":")" + name +
         R"(","credential_class":"arv:aws_access_key","expires_at":)" +
         (expires.empty() ? "null" : "\"" + expires + "\"") + "}";
}

std::string list(std::initializer_list<std::string> items) {
  std::string body = R"({"kind":"arvados#credentialList","items":[)";
  bool first = true;
  for (const auto& i : items) {
    body += (first ? "" : ",") + i;
    first = false;
  }
  return body + "]}";
}

// A world: a Running container, two readable credentials.
struct World {
  std::string state = "Running";
  std::map<std::string, std::string> lists; // path prefix -> body
  std::string uuid_list = list({item(k_lab_aws, "lab-aws"), item(k_lab_db, "lab-db")});
  std::string name_list = list({item(k_lab_aws, "lab-aws")});
  long current_status = 200;
  long secret_status = 200;

  cs::vault::Response answer(const std::string& path) const {
    if (path == "containers/current") {
      if (current_status != 200) {
        return resp(current_status, R"({"errors":["Token is not associated with a container."],)"
                                    R"("error_token":"1+2"})");
      }
      return resp(200, R"({"uuid":"zzzzz-dz642-alicerunning001","state":")" + state + "\"}");
    }
    if (path.rfind("credentials?filters=%5B%5B%22uuid%22", 0) == 0) {
      return resp(200, uuid_list);
    }
    if (path.rfind("credentials?filters=%5B%5B%22name%22", 0) == 0) {
      return resp(200, name_list);
    }
    if (path == "credentials/" + k_lab_aws + "/secret") {
      if (secret_status != 200) {
        return resp(secret_status, R"({"errors":["Forbidden"],"error_token":"1+2"})");
      }
      return resp(200, R"({"external_id":"AKIAEXAMPLE","secret":"s3cr3t-aws"})");
    }
    if (path == "credentials/" + k_lab_db + "/secret") {
      return resp(200, R"({"external_id":"labdbuser","secret":"s3cr3t-db"})");
    }
    return resp(404, R"({"errors":["Path not found"],"error_token":"1+2"})");
  }
};

Config config() {
  Config c;
  c.base_url = "https://arvados.test";
  return c;
}

} // namespace

TEST_SUITE_BEGIN("arvados::credential");

TEST_CASE("references parse into a credential and a field") {
  auto r = parse_credential_ref("credential/lab-aws#secret");
  REQUIRE(r.ok());
  CHECK(r->credential == "lab-aws");
  CHECK(r->field == Field::secret);
  CHECK_FALSE(r->by_uuid());
  auto u = parse_credential_ref("credential/" + k_lab_aws + "#external_id");
  REQUIRE(u.ok());
  CHECK(u->by_uuid());
  CHECK(u->field == Field::external_id);
  CHECK(u->describe() == "arvados:credential/" + k_lab_aws + "#external_id");
  CHECK(parse_credential_ref("credential/with space#secret").ok());
}

TEST_CASE("malformed references are refused with a reason") {
  CHECK_FALSE(parse_credential_ref("collection/x#secret").ok());
  CHECK_FALSE(parse_credential_ref("credential/lab-aws").ok());
  CHECK_FALSE(parse_credential_ref("credential/lab-aws#password").ok());
  CHECK_FALSE(parse_credential_ref("credential/#secret").ok());
  CHECK_FALSE(parse_credential_ref("credential/a/b#secret").ok());
  CHECK_FALSE(parse_credential_ref("credential/a}b#secret").ok());
  CHECK_FALSE(parse_credential_ref("credential/" + std::string(256, 'a') + "#secret").ok());
  CHECK_CONTAINS(parse_credential_ref("credential/x#y").error(), "external_id");
}

TEST_CASE("credential uuids are told from names") {
  CHECK(is_credential_uuid(k_lab_aws));
  CHECK_FALSE(is_credential_uuid("zzzzz-tpzed-aliceinlab00001"));
  CHECK_FALSE(is_credential_uuid("zzzzz-oss07-LABAWSCRED00001"));
  CHECK_FALSE(is_credential_uuid("lab-aws"));
}

TEST_CASE("RFC 3339 times") {
  CHECK(parse_rfc3339("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339("2026-01-01T00:00:00.000000000Z") == k_now);
  CHECK(parse_rfc3339("2026-01-01T00:00:01+00:00") == k_now + 1);
  CHECK(parse_rfc3339("2000-03-01T00:00:00Z") == 951868800);
  CHECK_FALSE(parse_rfc3339("2026-01-01").has_value());
  CHECK_FALSE(parse_rfc3339("2026-13-01T00:00:00Z").has_value());
  CHECK_FALSE(parse_rfc3339("2026-01-01T00:00:00+02:00").has_value());
}

TEST_CASE("config from the Arvados client environment") {
  std::map<std::string, std::string> env{{"ARVADOS_API_HOST", "zzzzz.example.org:8443"}};
  std::vector<std::string> files;
  auto lookup = [&](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  auto exists = [&](const std::string& p) {
    return std::find(files.begin(), files.end(), p) != files.end();
  };
  Config c = config_from_env(lookup, exists);
  CHECK(c.base_url == "https://zzzzz.example.org:8443");
  CHECK_FALSE(c.insecure);
  CHECK(c.ca_file.empty());

  // Without crunch-run's bundle the system bundle is used (a static libcurl has no default).
  files.push_back("/etc/ssl/certs/ca-certificates.crt");
  c = config_from_env(lookup, exists);
  CHECK(c.ca_file == "/etc/ssl/certs/ca-certificates.crt");

  files.push_back(k_container_ca_bundle);
  env["ARVADOS_API_HOST_INSECURE"] = "TRUE";
  c = config_from_env(lookup, exists);
  CHECK(c.insecure);
  CHECK(c.ca_file == k_container_ca_bundle);

  env["ARVADOS_API_HOST_INSECURE"] = "0";
  env["ARVADOS_API_HOST"] = "https://[::1]:9000/";
  c = config_from_env(lookup, exists);
  CHECK_FALSE(c.insecure);
  CHECK(c.base_url == "https://[::1]:9000");

  for (const char* bad : {"http://x.example", "x.example:0", "x.example:99999", "x y", "x:", ""}) {
    env["ARVADOS_API_HOST"] = bad;
    auto e = error_of([&] { config_from_env(lookup, exists); });
    REQUIRE_MESSAGE(e.has_value(), bad);
    CHECK(code_of(*e) == 78);
    CHECK_CONTAINS(e->what(), "ARVADOS_API_HOST");
  }
  env["ARVADOS_API_HOST"] = "x.example";
  env["CRUNCH_SECRETS_ARVADOS_CACERT"] = "/no/such/ca.pem";
  auto e = error_of([&] { config_from_env(lookup, exists); });
  REQUIRE(e.has_value());
  CHECK_CONTAINS(e->what(), "/no/such/ca.pem");
}

TEST_CASE("fetch by uuid and by name in two round trips") {
  World w;
  FakeArvados t([&](const std::string& p) { return w.answer(p); });
  Client c(config(), t, Clock::now() + 10s, k_now);
  auto got = c.fetch({k_lab_db, "lab-aws", k_lab_db}, Secret("v2/tok/en/ctr"));
  REQUIRE(got.size() == 2);
  CHECK(got[0].first == k_lab_db);
  CHECK(got[0].second.secret.reveal() == "s3cr3t-db");
  CHECK(got[0].second.external_id.reveal() == "labdbuser");
  CHECK(got[1].first == "lab-aws");
  CHECK(got[1].second.info.uuid == k_lab_aws);
  CHECK(got[1].second.secret.reveal() == "s3cr3t-aws");
  REQUIRE(t.rounds.size() == 2);
  CHECK(t.rounds[0].size() == 3); // containers/current, the uuid list, the name list
  CHECK(t.rounds[1].size() == 2); // both secrets at once
  CHECK(t.tokens[0] == "v2/tok/en/ctr");
  // The name filter is a JSON "in" filter, URL-encoded.
  CHECK_CONTAINS(t.rounds[0][2], "%22name%22%2C%22in%22%2C%5B%22lab-aws%22%5D");
}

TEST_CASE("fetch failures: one line each, no value") {
  World w;
  FakeArvados t([&](const std::string& p) { return w.answer(p); });
  auto fetch_error = [&](std::vector<std::string> refs) {
    Client c(config(), t, Clock::now() + 2s, k_now);
    auto e = error_of([&] { c.fetch(refs, Secret("v2/tok/en/ctr")); });
    REQUIRE(e.has_value());
    CHECK(std::string(e->what()).find('\n') == std::string::npos);
    CHECK(std::string(e->what()).find("s3cr3t") == std::string::npos);
    return *e;
  };

  SUBCASE("unknown name") {
    w.name_list = list({});
    auto e = fetch_error({"no-such"});
    CHECK(code_of(e) == 79);
    CHECK_CONTAINS(e.what(), "arvados:credential/no-such");
  }
  SUBCASE("two credentials with one name") {
    w.name_list = list({item(k_lab_aws, "lab-aws"), item(k_lab_db, "lab-aws")});
    auto e = fetch_error({"lab-aws"});
    CHECK(code_of(e) == 65);
    CHECK_CONTAINS(e.what(), k_lab_aws);
    CHECK_CONTAINS(e.what(), k_lab_db);
    CHECK_CONTAINS(e.what(), "uuid");
  }
  SUBCASE("unreadable or unknown uuid") {
    w.uuid_list = list({});
    auto e = fetch_error({k_lab_aws});
    CHECK(code_of(e) == 79);
    CHECK_CONTAINS(e.what(), k_lab_aws);
  }
  SUBCASE("expired") {
    w.uuid_list = list({item(k_lab_aws, "lab-aws", "2025-12-31T23:59:59Z")});
    auto e = fetch_error({k_lab_aws});
    CHECK(code_of(e) == 77);
    CHECK_CONTAINS(e.what(), "expired");
    CHECK(t.rounds.size() == 1); // no secret was asked for
  }
  SUBCASE("container not Running") {
    w.state = "Locked";
    auto e = fetch_error({k_lab_aws});
    CHECK(code_of(e) == 77);
    CHECK_CONTAINS(e.what(), "Locked");
  }
  SUBCASE("not a container token") {
    w.current_status = 404;
    auto e = fetch_error({"lab-aws"});
    CHECK(code_of(e) == 77);
    CHECK_CONTAINS(e.what(), "not a container");
  }
  SUBCASE("token refused") {
    w.current_status = 401;
    auto e = fetch_error({"lab-aws"});
    CHECK(code_of(e) == 80);
  }
  SUBCASE("secret refused") {
    w.secret_status = 403;
    auto e = fetch_error({"lab-aws"});
    CHECK(code_of(e) == 77);
    CHECK_CONTAINS(e.what(), "Forbidden");
  }
}

TEST_CASE("the token never appears in an error, even when the server echoes it") {
  FakeArvados t([](const std::string&) {
    return resp(403, R"({"errors":["bad token v2/tok/en/ctr"],"error_token":"x"})");
  });
  Client c(config(), t, Clock::now() + 2s, k_now);
  auto e = error_of([&] { c.fetch({"lab-aws"}, Secret("v2/tok/en/ctr")); });
  REQUIRE(e.has_value());
  CHECK(std::string(e->what()).find("v2/tok/en/ctr") == std::string::npos);
  CHECK_CONTAINS(e->what(), "[redacted]");
}

TEST_CASE("an unreachable API is retried until the deadline, then exit 69") {
  std::size_t calls = 0;
  FakeArvados t([&](const std::string&) {
    ++calls;
    return no_connection();
  });
  Client c(config(), t, Clock::now() + 600ms, k_now);
  auto e = error_of([&] { c.fetch({"lab-aws"}, Secret("v2/tok/en/ctr")); });
  REQUIRE(e.has_value());
  CHECK(code_of(*e) == 69);
  CHECK(calls > 2);
}

namespace {

cs::vault::Response refused(long status, std::optional<std::chrono::milliseconds> retry_after) {
  auto r = resp(status, R"({"errors":["slow down"],"error_token":"1+2"})");
  r.retry_after = retry_after;
  return r;
}

} // namespace

TEST_CASE("a 429's or a 503's Retry-After is waited for, within the deadline") {
  for (const long status : {429L, 503L}) {
    CAPTURE(status);
    World w;
    std::size_t current = 0;
    FakeArvados t([&](const std::string& p) {
      if (p == "containers/current" && current++ == 0) {
        return refused(status, 300ms);
      }
      return w.answer(p);
    });
    Client c(config(), t, Clock::now() + 10s, k_now);
    const auto start = Clock::now();
    auto got = c.fetch({"lab-aws"}, Secret("v2/tok/en/ctr"));
    const auto waited = Clock::now() - start;
    REQUIRE(got.size() == 1);
    CHECK(got[0].second.secret.reveal() == "s3cr3t-aws");
    // The refused call alone is sent again, no sooner than asked (full jitter is at most 0.1 s).
    REQUIRE(t.rounds.size() == 3);
    CHECK(t.rounds[1] == std::vector<std::string>{"containers/current"});
    CHECK(waited >= 300ms);
    CHECK(waited < 5s);
  }
}

TEST_CASE("a Retry-After past the deadline is not retried: exit 69 at the deadline, naming it") {
  for (const long status : {429L, 503L}) {
    CAPTURE(status);
    FakeArvados t([&](const std::string&) { return refused(status, 30s); });
    Client c(config(), t, Clock::now() + 400ms, k_now);
    const auto start = Clock::now();
    auto e = error_of([&] { c.fetch({"lab-aws"}, Secret("v2/tok/en/ctr")); });
    const auto waited = Clock::now() - start;
    REQUIRE(e.has_value());
    CHECK(code_of(*e) == 69);
    CHECK_CONTAINS(e->what(), fmt::format("HTTP {}", status));
    CHECK_CONTAINS(e->what(), "the server asked to retry after 30s");
    CHECK(t.rounds.size() == 1);
    CHECK(waited >= 350ms);
    CHECK(waited < 3s);
  }
}

TEST_CASE("a 429 that lasts until the deadline is exit 69, as a 5xx is") {
  FakeArvados t([&](const std::string&) { return refused(429, std::nullopt); });
  Client c(config(), t, Clock::now() + 300ms, k_now);
  auto e = error_of([&] { c.fetch({"lab-aws"}, Secret("v2/tok/en/ctr")); });
  REQUIRE(e.has_value());
  CHECK(code_of(*e) == 69);
  CHECK_CONTAINS(e->what(), "HTTP 429");
  CHECK(std::string(e->what()).find("asked to retry") == std::string::npos);
  CHECK(t.rounds.size() > 1);
}

TEST_CASE("no token: a configuration error naming ARVADOS_API_TOKEN, no request") {
  FakeArvados t([](const std::string&) { return resp(200, "{}"); });
  Client c(config(), t, Clock::now() + 2s, k_now);
  auto e = error_of([&] { c.fetch({"lab-aws"}, Secret()); });
  REQUIRE(e.has_value());
  CHECK(code_of(*e) == 78);
  CHECK_CONTAINS(e->what(), "ARVADOS_API_TOKEN");
  CHECK(t.requests_sent() == 0);
}

TEST_SUITE_END();
