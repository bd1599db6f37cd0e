#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/vault/client.hpp"
#include "fake_transport.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>

using namespace cs::vault;
using cs::core::ExitCode;
using cs::test::error_of;
using cs::test::FakeTransport;
using cs::test::resp;
using cs::test::Seen;
using cs::util::Secret;
using namespace std::chrono_literals;

namespace {

Config config() {
  Config c;
  c.address = "http://vault.test:8200";
  c.max_retries = 2;
  return c;
}

const char* k_token = "s.lease-test-token-canary";

} // namespace

TEST_SUITE_BEGIN("vault::Client leases");

TEST_CASE("renew_lease sends the lease id and increment and reads the new TTL") {
  FakeTransport t([](const Seen&) {
    return resp(200,
                R"({"lease_id":"database/creds/app/abc","lease_duration":7,"renewable":true})");
  });
  Client c(config(), t, Clock::now() + 10s);
  c.use_token(Secret(k_token));
  const LeaseInfo info = c.renew_lease("database/creds/app/abc", 30);
  CHECK(info.ttl == 7);
  CHECK(info.renewable);
  REQUIRE(t.batches.size() == 1);
  const Seen& s = t.batches[0][0];
  CHECK(s.method == "PUT");
  CHECK(s.path == "sys/leases/renew");
  CHECK(s.body == R"({"increment":30,"lease_id":"database/creds/app/abc"})");
  CHECK(s.token == std::string(k_token));
}

TEST_CASE("a refused renewal is not 'unavailable' (the session fetches new credentials)") {
  FakeTransport t([](const Seen&) {
    return resp(400, R"({"errors":["lease not found or lease is not renewable"]})");
  });
  Client c(config(), t, Clock::now() + 10s);
  c.use_token(Secret(k_token));
  const auto e = error_of([&] { c.renew_lease("database/creds/app/abc", 30); });
  REQUIRE(e.has_value());
  CHECK(e->code() != ExitCode::unavailable);
  CHECK(std::string(e->what()).find("sys/leases/renew") != std::string::npos);
  CHECK(t.requests_sent() == 1);
}

TEST_CASE("a sealed Vault is 'unavailable' after retries within the deadline") {
  FakeTransport t([](const Seen&) { return resp(503, R"({"errors":["Vault is sealed"]})"); });
  Client c(config(), t, Clock::now() + 10s);
  c.use_token(Secret(k_token));
  const auto e = error_of([&] { c.revoke_lease("database/creds/app/abc"); });
  REQUIRE(e.has_value());
  CHECK(e->code() == ExitCode::unavailable);
  CHECK(t.requests_sent() == 3); // the first attempt and max_retries = 2
}

TEST_CASE("revoke_lease sends only the lease id") {
  FakeTransport t([](const Seen&) { return resp(204); });
  Client c(config(), t, Clock::now() + 10s);
  c.use_token(Secret(k_token));
  c.revoke_lease("database/creds/app/abc");
  const Seen& s = t.batches.at(0).at(0);
  CHECK(s.method == "PUT");
  CHECK(s.path == "sys/leases/revoke");
  CHECK(s.body == R"({"lease_id":"database/creds/app/abc"})");
}

TEST_CASE("token lookup, renewal and revocation use the -self endpoints") {
  FakeTransport t([](const Seen& s) {
    if (s.path == "auth/token/lookup-self") {
      return resp(200, std::string(R"({"data":{"id":")") + k_token +
                           R"(","ttl":3599,"renewable":true,"policies":["default"]}})");
    }
    if (s.path == "auth/token/renew-self") {
      return resp(200, std::string(R"({"auth":{"client_token":")") + k_token +
                           R"(","lease_duration":1800,"renewable":true}})");
    }
    return resp(204);
  });
  Client c(config(), t, Clock::now() + 10s);
  c.use_token(Secret(k_token));
  const LeaseInfo looked = c.lookup_self();
  CHECK(looked.ttl == 3599);
  CHECK(looked.renewable);
  const LeaseInfo renewed = c.renew_self(3600);
  CHECK(renewed.ttl == 1800);
  c.revoke_self();
  REQUIRE(t.batches.size() == 3);
  CHECK(t.batches[0][0].method == "GET");
  CHECK(t.batches[1][0].method == "POST");
  CHECK(t.batches[1][0].body == R"({"increment":3600})");
  CHECK(t.batches[2][0].path == "auth/token/revoke-self");
  CHECK(t.batches[2][0].method == "POST");
  CHECK_FALSE(c.logged_in());
}

TEST_CASE("a token without expiry looks up as TTL 0 (nothing to renew)") {
  FakeTransport t([](const Seen&) { return resp(200, R"({"data":{"ttl":0,"renewable":false}})"); });
  Client c(config(), t, Clock::now() + 10s);
  c.use_token(Secret(k_token));
  CHECK(c.lookup_self().ttl == 0);
}

TEST_CASE("the KV v2 version comes from the metadata endpoint, not from a value read") {
  FakeTransport t([](const Seen&) {
    return resp(200, R"({"data":{"current_version":4,"versions":{"4":{"destroyed":false}}}})");
  });
  Client c(config(), t, Clock::now() + 10s);
  c.use_token(Secret(k_token));
  CHECK(c.kv2_current_version("secret/metadata/app") == 4);
  CHECK(t.batches.at(0).at(0).path == "secret/metadata/app");
  CHECK(t.batches.at(0).at(0).method == "GET");
}

TEST_CASE("a metadata answer without current_version is a protocol error") {
  FakeTransport t([](const Seen&) { return resp(200, R"({"data":{"password":"x"}})"); });
  Client c(config(), t, Clock::now() + 10s);
  c.use_token(Secret(k_token));
  const auto e = error_of([&] { c.kv2_current_version("secret/metadata/app"); });
  REQUIRE(e.has_value());
  CHECK(e->code() == ExitCode::protocol);
}

TEST_CASE("a dynamic read keeps lease id, duration and renewability") {
  FakeTransport t([](const Seen&) {
    return resp(200, R"({"lease_id":"database/creds/app/x1","lease_duration":6,"renewable":true,)"
                     R"("data":{"username":"v-app","password":"pw-canary"}})");
  });
  Client c(config(), t, Clock::now() + 10s);
  c.use_token(Secret(k_token));
  ReadSpec spec;
  spec.path = "database/creds/app";
  spec.describe = "secret 'db'";
  const Fetched f = c.read(spec);
  CHECK(f.lease_id == "database/creds/app/x1");
  CHECK(f.lease_duration == 6);
  CHECK(f.renewable);
  CHECK_FALSE(f.kv2);
}

TEST_CASE("each supervise round gets its own retry deadline") {
  FakeTransport t([](const Seen&) { return resp(204); });
  Client c(config(), t, Clock::now() - 1s); // the start-up deadline has passed
  c.use_token(Secret(k_token));
  const auto later = Clock::now() + 5s;
  c.set_deadline(later);
  c.revoke_lease("x/y");
  CHECK(t.deadlines.at(0) == later);
}

TEST_SUITE_END();
