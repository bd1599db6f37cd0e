#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/vault/client.hpp"
#include "crunchsecrets/vault/config.hpp"
#include "crunchsecrets/vault/curl_transport.hpp"
#include "fake_transport.hpp"
#include "testutil.hpp"

#include <algorithm>
#include <doctest/doctest.h>
#include <functional>
#include <map>
#include <random>
#include <thread>

using namespace cs::vault;
using cs::test::code_of;
using cs::test::error_of;
using cs::util::Secret;
using cs::util::SecureString;
using namespace std::chrono_literals;
using cs::test::FakeTransport;
using cs::test::no_connection;
using cs::test::resp;
using cs::test::Seen;

namespace {

Config config(std::optional<int> max_retries = std::nullopt) {
  Config c;
  c.address = "http://vault.test:8200";
  c.max_retries = max_retries;
  return c;
}

Clock::time_point far() {
  return Clock::now() + 60s;
}

ReadSpec spec(std::string path, std::optional<std::uint64_t> version = std::nullopt) {
  ReadSpec s;
  s.path = std::move(path);
  s.version = version;
  s.describe = "vault:" + s.path + "#k";
  return s;
}

const char* k_kv2 =
    R"({"data":{"data":{"password":"pw","n":1},"metadata":{"version":3,"destroyed":false}},"lease_id":"","lease_duration":0,"renewable":false})";
const char* k_kv1 = R"({"data":{"password":"pw1"},"lease_duration":2764800})";

// Reads one path through a client whose transport always answers `r`; returns the error.
cs::core::Error read_error(Response r, std::optional<int> max_retries = 0,
                           std::size_t* requests = nullptr,
                           std::optional<std::uint64_t> version = std::nullopt) {
  // The token itself is valid: a 403 is then a missing policy (see the lookup-self tests).
  std::size_t lookups = 0;
  FakeTransport t([&](const Seen& s) {
    if (s.path == "auth/token/lookup-self") {
      ++lookups;
      return resp(200, R"({"data":{"policies":["default"]}})");
    }
    return r;
  });
  Client c(config(max_retries), t, far());
  c.use_token(Secret(std::string_view("s.client-token")));
  auto e = error_of([&] { c.read_all({spec("secret/data/app", version)}); });
  if (requests != nullptr) {
    *requests = t.requests_sent() - lookups;
  }
  REQUIRE_MESSAGE(e.has_value(), "the read succeeded");
  return *e;
}

std::string str(const SecureString& s) {
  return std::string(s.data(), s.size());
}

} // namespace

TEST_SUITE_BEGIN("vault::retry");

TEST_CASE("connection failures, a standby's 307, 412, 429 and 5xx except 501 are retryable") {
  for (long status : {0L, 307L, 412L, 429L, 500L, 502L, 503L, 504L, 599L}) {
    CAPTURE(status);
    CHECK(is_retryable(resp(status)));
  }
  for (long status : {200L, 204L, 301L, 302L, 400L, 401L, 403L, 404L, 405L, 501L}) {
    CAPTURE(status);
    CHECK_FALSE(is_retryable(resp(status)));
  }
}

TEST_CASE("backoff delays double from 100 ms up to 2 s, with jitter below the ceiling") {
  std::mt19937_64 rng(12345);
  for (unsigned attempt = 0; attempt < 40; ++attempt) {
    CAPTURE(attempt);
    const long ceiling = attempt >= 5 ? 2000 : 100L << attempt;
    long lo = 1 << 30;
    long hi = 0;
    for (int i = 0; i < 500; ++i) {
      const long d = static_cast<long>(backoff_delay(attempt, rng).count());
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    CHECK(lo >= 0);
    CHECK(hi <= ceiling);
    // Jitter: the delays spread over most of the range rather than sitting at one value.
    CHECK(hi - lo > ceiling / 4);
  }
}

TEST_CASE("the first retry waits anywhere from 0 to 100 ms (full jitter)") {
  std::mt19937_64 rng(777);
  long lo = 1 << 30;
  long hi = 0;
  for (int i = 0; i < 2000; ++i) {
    const long d = static_cast<long>(backoff_delay(0, rng).count());
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  CHECK(lo < 10);
  CHECK(hi > 90);
  CHECK(hi <= 100);
}

TEST_CASE("clients that fail at the same moment do not retry in lockstep") {
  // A workflow fanning out starts many crunch-secrets at once; if Vault turns them all away
  // (sealed, 429), their retries must spread out rather than arrive as one second wave. Each
  // thread here is one such process: its own client, failed once with 503 at the same moment.
  constexpr int k_clients = 16;
  std::vector<long> delays_ms(k_clients, -1);
  std::vector<std::thread> threads;
  for (int k = 0; k < k_clients; ++k) {
    threads.emplace_back([k, &delays_ms] {
      int calls = 0;
      FakeTransport t([&](const Seen&) { return ++calls == 1 ? resp(503) : resp(200, k_kv2); });
      Client c(config(), t, far());
      c.use_token(Secret(std::string_view("s.t")));
      c.read_all({spec("secret/data/app")});
      if (t.times.size() == 2) {
        delays_ms[static_cast<std::size_t>(k)] = static_cast<long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(t.times[1] - t.times[0]).count());
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  std::sort(delays_ms.begin(), delays_ms.end());
  std::string seen;
  for (long d : delays_ms) {
    seen += std::to_string(d) + " ";
  }
  CAPTURE(seen);
  REQUIRE(delays_ms.front() >= 0); // every client retried exactly once
  // Lockstep retries would all wait the same time (scheduling noise aside): the waits must
  // instead spread over a good part of the first retry's 0-100 ms range.
  CHECK(delays_ms.back() - delays_ms.front() >= 40);
}

namespace {

// A time point from a civil UTC date and time, for Retry-After dates.
std::chrono::system_clock::time_point utc(int y, unsigned mo, unsigned d, int h, int mi, int sec) {
  using namespace std::chrono;
  return sys_days{year{y} / mo / d} + hours{h} + minutes{mi} + seconds{sec};
}

Response with_retry_after(long status, std::chrono::milliseconds asked) {
  Response r = resp(status);
  r.retry_after = asked;
  return r;
}

} // namespace

TEST_CASE("Retry-After: delta-seconds, surrounded by blanks or not") {
  const auto now = utc(2026, 12, 5, 4, 0, 0);
  CHECK(parse_retry_after("2", now) == 2000ms);
  CHECK(parse_retry_after(" 120\r\n", now) == 120s);
  CHECK(parse_retry_after("\t0 ", now) == 0ms);
  CHECK(parse_retry_after("007", now) == 7s);
  // More than a day is a day; more digits than any int holds too (no overflow).
  CHECK(parse_retry_after("86401", now) == k_max_retry_after);
  CHECK(parse_retry_after("99999999999999999999999", now) == k_max_retry_after);
}

TEST_CASE("Retry-After: an IMF-fixdate is relative to now; a past one is 0") {
  const auto now = utc(2026, 12, 5, 4, 0, 0);
  CHECK(parse_retry_after("Sat, 05 Dec 2026 04:00:03 GMT", now) == 3s);
  CHECK(parse_retry_after("  Sat, 05 Dec 2026 04:01:00 GMT\r\n", now) == 60s);
  CHECK(parse_retry_after("Sat, 05 Dec 2026 04:00:03 GMT", now + 500ms) == 2500ms);
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now) == 0ms);
  CHECK(parse_retry_after("Sat, 05 Dec 2026 04:00:00 GMT", now) == 0ms);
  CHECK(parse_retry_after("Thu, 29 Feb 2028 00:00:00 GMT", now) == k_max_retry_after);
  CHECK(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == k_max_retry_after);
}

TEST_CASE("Retry-After: anything else is ignored") {
  const auto now = utc(2026, 12, 5, 4, 0, 0);
  for (const char* bad : {"",
                          " ",
                          "-1",
                          "-0",
                          "+5",
                          "2.5",
                          "1e3",
                          "0x10",
                          "5 s",
                          "soon",
                          "2 3",
                          "Sat, 05 Dec 2026 04:00:03 UTC",
                          "Sat, 5 Dec 2026 04:00:03 GMT",
                          "Sat, 05 dec 2026 04:00:03 GMT",
                          "Sat 05 Dec 2026 04:00:03 GMT ",
                          "Sat, 31 Feb 2026 04:00:03 GMT",
                          "Sat, 00 Dec 2026 04:00:03 GMT",
                          "Sat, 05 Dec 2026 24:00:03 GMT",
                          "Sat, 05 Dec 2026 04:60:03 GMT",
                          "Sat, 05 Dec 2026 04:00:61 GMT",
                          "Sat, 05 Dec 2026 04:0a:03 GMT",
                          "Saturday, 05-Dec-26 04:00:03 GMT",
                          "Sat Dec  5 04:00:03 2026",
                          "Sat, 05 Dec 2026 04:00:03 GMT, Sat, 05 Dec 2026 04:00:03 GMT"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_retry_after(bad, now).has_value());
  }
}

TEST_CASE("only a 429's or a 503's Retry-After is honoured") {
  for (long status : {429L, 503L}) {
    CHECK(honoured_retry_after(with_retry_after(status, 2s)) == 2s);
  }
  for (long status : {0L, 200L, 307L, 412L, 500L, 502L, 504L}) {
    CAPTURE(status);
    CHECK_FALSE(honoured_retry_after(with_retry_after(status, 2s)).has_value());
  }
  CHECK_FALSE(honoured_retry_after(resp(429)).has_value());
}

TEST_CASE("the wait is the longer of the jittered backoff and Retry-After, within --wait") {
  // No Retry-After: the backoff, cut 10 ms short of the deadline.
  CHECK(choose_retry_wait(80ms, std::nullopt, 10s).delay == 80ms);
  CHECK(choose_retry_wait(800ms, std::nullopt, 500ms).delay == 490ms);
  // Retry-After longer than the backoff wins; shorter, the backoff (jitter) stays.
  const RetryWait longer = choose_retry_wait(22ms, 3s, 6s);
  CHECK(longer.delay == 3s);
  CHECK_FALSE(longer.past_deadline);
  CHECK(choose_retry_wait(1500ms, 1s, 6s).delay == 1500ms);
  CHECK(choose_retry_wait(30ms, 0ms, 6s).delay == 30ms);
  // Past the deadline: wait to it and give up.
  const RetryWait past = choose_retry_wait(22ms, 30s, 6s);
  CHECK(past.past_deadline);
  CHECK(past.delay == 6s);
  CHECK(past.asked == 30s);
  CHECK(choose_retry_wait(22ms, 5995ms, 6s).past_deadline);
  CHECK_FALSE(choose_retry_wait(22ms, 5990ms, 6s).past_deadline);
}

TEST_CASE("a 429 or 503 with Retry-After is retried no sooner than asked") {
  for (long status : {429L, 503L}) {
    CAPTURE(status);
    int calls = 0;
    FakeTransport t([&](const Seen&) {
      return ++calls == 1 ? with_retry_after(status, 300ms) : resp(200, k_kv1);
    });
    Client c(config(), t, far());
    c.use_token(Secret(std::string_view("s.t")));
    CHECK_NOTHROW(c.read_all({spec("kv/app")}));
    REQUIRE(t.times.size() == 2);
    CHECK(t.times[1] - t.times[0] >= 300ms);
    CHECK(t.times[1] - t.times[0] < 1s);
  }
}

TEST_CASE("the longest Retry-After of a batch's refused requests is honoured") {
  std::map<std::string, int> calls;
  FakeTransport t([&](const Seen& s) {
    if (++calls[s.path] > 1) {
      return resp(200, k_kv1);
    }
    if (s.path == "kv/a") {
      return with_retry_after(429, 100ms);
    }
    return s.path == "kv/b" ? with_retry_after(503, 400ms) : resp(502);
  });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  CHECK_NOTHROW(c.read_all({spec("kv/a"), spec("kv/b"), spec("kv/c")}));
  REQUIRE(t.times.size() == 2);
  CHECK(t.batch_sizes() == std::vector<std::size_t>{3, 3});
  CHECK(t.times[1] - t.times[0] >= 400ms);
}

TEST_CASE("a Retry-After on another retryable status does not lengthen the wait") {
  int calls = 0;
  FakeTransport t(
      [&](const Seen&) { return ++calls == 1 ? with_retry_after(502, 5s) : resp(200, k_kv1); });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  CHECK_NOTHROW(c.read_all({spec("kv/app")}));
  REQUIRE(t.times.size() == 2);
  CHECK(t.times[1] - t.times[0] < 1s);
}

TEST_CASE("a Retry-After past the deadline: no retry, give up at the deadline saying so") {
  FakeTransport t([](const Seen&) { return with_retry_after(429, 30s); });
  const auto start = Clock::now();
  Client c(config(), t, start + 300ms);
  c.use_token(Secret(std::string_view("s.t")));
  auto e = error_of([&] { c.read_all({spec("kv/a")}); });
  const auto elapsed = Clock::now() - start;
  REQUIRE(e);
  CHECK(code_of(*e) == 69);
  CHECK_CONTAINS(e->what(), "HTTP 429");
  CHECK_CONTAINS(e->what(), "the server asked to retry after 30s");
  CHECK(t.requests_sent() == 1);
  CHECK(elapsed >= 280ms);
  CHECK(elapsed < 300ms + 250ms);
}

TEST_CASE("a retryable answer is retried until it succeeds") {
  int calls = 0;
  FakeTransport t([&](const Seen&) { return ++calls < 3 ? resp(503) : resp(200, k_kv2); });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  auto got = c.read_all({spec("secret/data/app")});
  REQUIRE(got.size() == 1);
  CHECK(got[0].kv2);
  CHECK(t.requests_sent() == 3);
  CHECK(t.batch_sizes() == std::vector<std::size_t>{1, 1, 1});
}

TEST_CASE("412, 429 and connection errors are retried too") {
  // A refused connection never sent the request (as the real transport marks it).
  Response refused = no_connection();
  refused.not_sent = true;
  for (const Response& first : {resp(412), resp(429), resp(500), refused}) {
    CAPTURE(first.status);
    bool failed_once = false;
    FakeTransport t([&](const Seen&) {
      if (!failed_once) {
        failed_once = true;
        return first;
      }
      return resp(200, k_kv1);
    });
    Client c(config(), t, far());
    c.use_token(Secret(std::string_view("s.t")));
    CHECK_NOTHROW(c.read_all({spec("kv/app")}));
    CHECK(t.requests_sent() == 2);
  }
}

TEST_CASE("only the failed requests of a batch are retried") {
  std::map<std::string, int> calls;
  FakeTransport t([&](const Seen& s) {
    const int n = ++calls[s.path];
    if (s.path == "kv/b" && n == 1) {
      return resp(503);
    }
    return resp(200, k_kv1);
  });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  auto got = c.read_all({spec("kv/a"), spec("kv/b"), spec("kv/c")});
  CHECK(got.size() == 3);
  CHECK(t.batch_sizes() == std::vector<std::size_t>{3, 1});
  CHECK(t.batches[1][0].path == "kv/b");
}

TEST_CASE("retries stop at VAULT_MAX_RETRIES") {
  for (int max : {0, 1, 3}) {
    CAPTURE(max);
    std::size_t requests = 0;
    const auto e = read_error(resp(503, R"({"errors":["Vault is sealed"]})"), max, &requests);
    CHECK(requests == static_cast<std::size_t>(max) + 1);
    CHECK(code_of(e) == 69);
    CHECK_CONTAINS(e.what(), "HTTP 503");
    CHECK_CONTAINS(e.what(), "Vault is sealed");
    CHECK_CONTAINS(e.what(), "http://vault.test:8200");
  }
}

TEST_CASE("retries stop at the deadline") {
  FakeTransport t([](const Seen&) { return no_connection("Could not connect"); });
  const auto start = Clock::now();
  const auto deadline = start + 400ms;
  Client c(config(), t, deadline);
  c.use_token(Secret(std::string_view("s.t")));
  auto e = error_of([&] { c.read_all({spec("kv/a")}); });
  const auto elapsed = Clock::now() - start;
  REQUIRE(e);
  CHECK(code_of(*e) == 69);
  CHECK_CONTAINS(e->what(), "Could not connect");
  CHECK_CONTAINS(e->what(), "gave up after");
  CHECK(elapsed < 400ms + 250ms); // never sleeps past the deadline
  CHECK(t.requests_sent() >= 2);  // 50..100 ms, 50..200 ms fit before 400 ms
  CHECK(t.requests_sent() <= 8);
  for (const auto& d : t.deadlines) {
    CHECK(d == deadline); // every attempt is bounded by the same deadline
  }
  // The last wait is cut short so that one more attempt happens right before the deadline.
  REQUIRE_FALSE(t.times.empty());
  CHECK(t.times.back() >= deadline - 80ms);
  CHECK(t.times.back() <= deadline + 50ms);
}

TEST_CASE("a permanent transport error (TLS verification, bad CA file) fails fast with exit 78") {
  Response bad = no_connection("SSL certificate problem: unable to get local issuer certificate");
  bad.permanent = true;
  CHECK_FALSE(is_retryable(bad));
  FakeTransport t([&](const Seen&) { return bad; });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  const auto start = Clock::now();
  auto e = error_of([&] { c.read_all({spec("kv/a")}); });
  REQUIRE(e);
  CHECK(code_of(*e) == 78);
  CHECK_CONTAINS(e->what(), "SSL certificate problem");
  CHECK(t.requests_sent() == 1);
  CHECK(Clock::now() - start < 1s);
}

TEST_CASE("a deadline already past means one attempt and no sleep") {
  FakeTransport t([](const Seen&) { return resp(503); });
  Client c(config(), t, Clock::now());
  c.use_token(Secret(std::string_view("s.t")));
  const auto start = Clock::now();
  auto e = error_of([&] { c.read_all({spec("kv/a")}); });
  REQUIRE(e);
  CHECK(code_of(*e) == 69);
  CHECK(t.requests_sent() == 1);
  CHECK(Clock::now() - start < 100ms);
}

TEST_CASE("400, 401, 403, 404 and 501 are never retried") {
  for (long status : {400L, 401L, 403L, 404L, 501L}) {
    CAPTURE(status);
    std::size_t requests = 0;
    (void)read_error(resp(status), std::nullopt, &requests);
    CHECK(requests == 1);
  }
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("vault::Client");

TEST_CASE("a client needs an address") {
  FakeTransport t([](const Seen&) { return resp(200); });
  Config c;
  auto e = error_of([&] { Client client(c, t, far()); });
  REQUIRE(e);
  CHECK(code_of(*e) == 78);
  CHECK_CONTAINS(e->what(), "VAULT_ADDR");
}

TEST_CASE("an empty token is a configuration error") {
  FakeTransport t([](const Seen&) { return resp(200); });
  Client c(config(), t, far());
  auto e = error_of([&] { c.use_token(Secret()); });
  REQUIRE(e);
  CHECK(code_of(*e) == 78);
  CHECK_FALSE(c.logged_in());
  c.use_token(Secret(std::string_view("s.x")));
  CHECK(c.logged_in());
  CHECK(t.requests_sent() == 0); // a given token needs no request
}

TEST_CASE("HTTP statuses map to the documented exit codes") {
  CHECK(code_of(read_error(resp(403, R"({"errors":["permission denied"]})"))) == 77);
  CHECK(code_of(read_error(resp(404, R"({"errors":[]})"))) == 79);
  CHECK(code_of(read_error(resp(400, R"({"errors":["bad"]})"))) == 76);
  CHECK(code_of(read_error(resp(401))) == 80);
  CHECK(code_of(read_error(resp(501))) == 76);
  CHECK(code_of(read_error(resp(302))) == 76);
}

TEST_CASE("a 403 names the path, the server's message and what to do") {
  const auto e =
      read_error(resp(403, R"({"errors":["1 error occurred:\n\t* permission denied\n\n"]})"));
  CHECK_CONTAINS(e.what(), "vault:secret/data/app#k: permission denied");
  CHECK_CONTAINS(e.what(), "HTTP 403");
  CHECK_CONTAINS(e.what(), "the token is valid but no policy grants read on this path");
  CHECK_NOT_CONTAINS(e.what(), "\n");
}

TEST_CASE("a 404 is not_found naming the path") {
  const auto e = read_error(resp(404, R"({"errors":[]})"));
  CHECK(code_of(e) == 79);
  CHECK_CONTAINS(e.what(), "vault:secret/data/app#k: not found");
}

TEST_CASE("a KV v2 404 with metadata means a deleted or destroyed version") {
  const auto deleted = read_error(
      resp(
          404,
          R"({"data":{"data":null,"metadata":{"created_time":"2024-01-01T00:00:00Z","deletion_time":"2024-01-02T00:00:00Z","destroyed":false,"version":2}}})"),
      0, nullptr, 2);
  CHECK(code_of(deleted) == 79);
  CHECK_CONTAINS(deleted.what(), "this version was deleted");
  const auto destroyed = read_error(
      resp(
          404,
          R"({"data":{"data":null,"metadata":{"deletion_time":"","destroyed":true,"version":2}}})"),
      0, nullptr, 2);
  CHECK(code_of(destroyed) == 79);
  CHECK_CONTAINS(destroyed.what(), "this version was destroyed");
}

TEST_CASE("a KV v2 answer with null data is a deleted version") {
  const auto e = read_error(resp(200, R"({"data":{"data":null,"metadata":{"version":4}}})"));
  CHECK(code_of(e) == 79);
  CHECK_CONTAINS(e.what(), "deleted");
}

TEST_CASE("a KV v2 answer is recognised by data.data and data.metadata") {
  FakeTransport t([](const Seen&) { return resp(200, k_kv2); });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  auto got = c.read_all({spec("secret/data/app")});
  REQUIRE(got.size() == 1);
  CHECK(got[0].kv2);
  CHECK(got[0].version == std::optional<std::uint64_t>(3));
  CHECK(str(got[0].data["password"].get<SecureString>()) == "pw");
  CHECK(got[0].data.size() == 2);
}

TEST_CASE("a KV v1 or generic answer uses data as it is") {
  FakeTransport t([](const Seen& s) {
    if (s.path == "database/creds/ro") {
      return resp(
          200,
          R"({"lease_id":"database/creds/ro/abc","lease_duration":3600,"renewable":true,"data":{"username":"v-u","password":"p"}})");
    }
    if (s.path == "kv/meta") {
      // Only data and metadata together, both objects, make a KV v2 read.
      return resp(200, R"({"data":{"data":"x","other":1}})");
    }
    return resp(200, k_kv1);
  });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  auto got = c.read_all({spec("kv/app"), spec("database/creds/ro"), spec("kv/meta")});
  CHECK_FALSE(got[0].kv2);
  CHECK(str(got[0].data["password"].get<SecureString>()) == "pw1");
  CHECK_FALSE(got[0].version.has_value());
  CHECK_FALSE(got[1].kv2);
  CHECK(got[1].lease_id == "database/creds/ro/abc");
  CHECK(got[1].lease_duration == 3600);
  CHECK(got[1].renewable);
  CHECK(str(got[1].data["username"].get<SecureString>()) == "v-u");
  CHECK_FALSE(got[2].kv2);
  CHECK(got[2].data.size() == 2);
}

TEST_CASE("a version is asked for with ?version= and needs a KV v2 answer") {
  FakeTransport t(
      [](const Seen& s) { return resp(200, s.path == "kv/v1?version=2" ? k_kv1 : k_kv2); });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  auto got = c.read_all({spec("secret/data/app", 3)});
  CHECK(t.batches[0][0].path == "secret/data/app?version=3");
  CHECK(got[0].kv2);
  auto e = error_of([&] { c.read_all({spec("kv/v1", 2)}); });
  REQUIRE(e);
  CHECK(code_of(*e) == 76);
  CHECK_CONTAINS(e->what(), "not a KV v2 read");
}

TEST_CASE("an answer that is not JSON or has no data object is a protocol error") {
  for (const char* body :
       {"<html>proxy error</html>", "", "[]", R"({"data":"x"})", R"({"warnings":[]})"}) {
    CAPTURE(body);
    const auto e = read_error(resp(200, body));
    CHECK(code_of(e) == 76);
    CHECK_CONTAINS(e.what(), "no 'data' object");
  }
}

TEST_CASE("reads carry the client token and use GET") {
  FakeTransport t([](const Seen&) { return resp(200, k_kv1); });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.the-token")));
  c.read_all({spec("kv/a"), spec("kv/b")});
  for (const auto& s : t.batches[0]) {
    CHECK(s.method == "GET");
    CHECK(s.token == std::optional<std::string>("s.the-token"));
    CHECK(s.body.empty());
  }
}

TEST_CASE("all reads fail together after every answer is in, the first failure reported") {
  FakeTransport t([](const Seen& s) {
    if (s.path == "kv/denied") {
      return resp(403);
    }
    if (s.path == "kv/missing") {
      return resp(404);
    }
    return resp(200, k_kv1);
  });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  auto e = error_of([&] { c.read_all({spec("kv/ok"), spec("kv/missing"), spec("kv/denied")}); });
  REQUIRE(e);
  CHECK(code_of(*e) == 79);
  // The reads in one batch, then one lookup-self to explain the 403.
  CHECK(t.batch_sizes() == std::vector<std::size_t>{3, 1});
  CHECK(t.batches[1][0].path == "auth/token/lookup-self");
}

TEST_CASE("AppRole login is one POST, then every read goes out in one parallel batch") {
  FakeTransport t([](const Seen& s) {
    if (s.path == "auth/approle/login") {
      return resp(200,
                  R"({"auth":{"client_token":"s.from-approle","policies":["default","app"]}})");
    }
    return resp(200, k_kv2);
  });
  Client c(config(), t, far());
  c.login_approle("approle", Secret(std::string_view("role-1")),
                  Secret(std::string_view("secret-1")));
  CHECK(c.logged_in());
  std::vector<ReadSpec> specs;
  for (int i = 0; i < 6; ++i) {
    specs.push_back(spec("secret/data/s" + std::to_string(i)));
  }
  auto got = c.read_all(specs);
  CHECK(got.size() == 6);
  CHECK(t.requests_sent() == 7);
  CHECK(t.batch_sizes() == std::vector<std::size_t>{1, 6});
  const Seen& login = t.batches[0][0];
  CHECK(login.method == "POST");
  CHECK_FALSE(login.token.has_value());
  const auto body = cs::util::SecretJson::parse(login.body);
  CHECK(str(body["role_id"].get<SecureString>()) == "role-1");
  CHECK(str(body["secret_id"].get<SecureString>()) == "secret-1");
  for (const auto& s : t.batches[1]) {
    CHECK(s.token == std::optional<std::string>("s.from-approle"));
  }
}

TEST_CASE("AppRole login at another mount, refused with 400, is an authentication failure") {
  FakeTransport t(
      [](const Seen&) { return resp(400, R"({"errors":["invalid role or secret ID"]})"); });
  Client c(config(), t, far());
  auto e = error_of([&] {
    c.login_approle("ci-approle", Secret(std::string_view("r")), Secret(std::string_view("s")));
  });
  REQUIRE(e);
  CHECK(code_of(*e) == 80);
  CHECK_CONTAINS(e->what(), "auth/ci-approle");
  CHECK_CONTAINS(e->what(), "invalid role or secret ID");
  CHECK(t.batches[0][0].path == "auth/ci-approle/login");
  CHECK(t.requests_sent() == 1);
}

TEST_CASE("a login answer without a client token is a protocol error") {
  for (const char* body :
       {"{}", R"({"auth":null})", R"({"auth":{"client_token":""}})", "not json"}) {
    CAPTURE(body);
    FakeTransport t([&](const Seen&) { return resp(200, body); });
    Client c(config(), t, far());
    auto e = error_of([&] {
      c.login_approle("approle", Secret(std::string_view("r")), Secret(std::string_view("s")));
    });
    REQUIRE(e);
    CHECK(code_of(*e) == 76);
    CHECK_CONTAINS(e->what(), "no auth.client_token");
    CHECK_FALSE(c.logged_in());
  }
}

TEST_CASE("unwrapping sends the wrapping token and takes the wrapped client token") {
  FakeTransport t([](const Seen& s) {
    if (s.path == "sys/wrapping/unwrap") {
      return resp(200, R"({"auth":{"client_token":"s.unwrapped"}})");
    }
    return resp(200, k_kv1);
  });
  Client c(config(), t, far());
  c.login_wrapped(Secret(std::string_view("hvs.wrapping")));
  c.read_all({spec("kv/a")});
  REQUIRE(t.batch_sizes() == std::vector<std::size_t>{1, 1});
  CHECK(t.batches[0][0].method == "POST");
  CHECK(t.batches[0][0].token == std::optional<std::string>("hvs.wrapping"));
  CHECK(t.batches[1][0].token == std::optional<std::string>("s.unwrapped"));
}

TEST_CASE("a single-use login that got an answer after it was sent is not retried") {
  for (long status : {0L, 307L, 429L, 500L, 502L, 503L}) {
    CAPTURE(status);
    std::size_t tries = 0;
    FakeTransport t([&](const Seen& s) {
      if (s.path == "sys/health") {
        return resp(200, "{}"); // the scheme check after a lost answer: the scheme is right
      }
      ++tries;
      return status == 0 ? no_connection("Operation timed out") : resp(status);
    });
    Client c(config(), t, far());
    auto e = error_of([&] { c.login_wrapped(Secret(std::string_view("hvs.wrapping-x"))); });
    REQUIRE(e);
    CHECK(code_of(*e) == 69);
    CHECK_CONTAINS(e->what(), "outcome is unknown");
    CHECK_NOT_CONTAINS(e->what(), "compromise");
    CHECK(tries == 1);
    tries = 0;
    auto e2 = error_of([&] {
      c.login_approle("approle", Secret(std::string_view("r")), Secret(std::string_view("s")));
    });
    REQUIRE(e2);
    CHECK_CONTAINS(e2->what(), "outcome is unknown");
    CHECK(tries == 1);
  }
}

TEST_CASE("an answer lost over http:// to a TLS server is a scheme mismatch, for every login") {
  const std::string tls_400 = "Client sent an HTTP request to an HTTPS server.\n";
  std::size_t health = 0;
  FakeTransport t([&](const Seen& s) {
    if (s.path == "sys/health") {
      ++health;
      return resp(400, tls_400);
    }
    return no_connection("Recv failure: Connection reset by peer"); // sent, then reset
  });
  Client c(config(), t, far());
  auto e = error_of([&] {
    c.login_approle("approle", Secret(std::string_view("r")), Secret(std::string_view("s")));
  });
  REQUIRE(e);
  CHECK(code_of(*e) == 78);
  CHECK_CONTAINS(e->what(), "speaks HTTPS");
  CHECK(health == 1);
  // A login that may be repeated is not retried until --wait either.
  Client c2(config(), t, far());
  e = error_of([&] {
    c2.login_arvados("arvados", "r", Secret(std::string_view("v2/zzzzz-gj3su-0/secret")));
  });
  REQUIRE(e);
  CHECK(code_of(*e) == 78);
  CHECK(t.requests_sent() == 4);
}

TEST_CASE("the scheme is checked once, only after a lost answer, and only over http://") {
  FakeTransport t([&](const Seen& s) {
    return s.path == "sys/health" ? resp(200, "{}") : no_connection("Connection reset by peer");
  });
  Client c(config(0), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  CHECK(error_of([&] { c.read_all({spec("kv/a")}); }));
  CHECK(error_of([&] { c.read_all({spec("kv/b")}); }));
  std::size_t probes = 0;
  for (const auto& b : t.batches) {
    for (const auto& s : b) {
      probes += s.path == "sys/health" ? 1 : 0;
    }
  }
  CHECK(probes == 1);
  FakeTransport ok([](const Seen&) { return resp(200, R"({"data":{"k":"v"}})"); });
  Client c3(config(), ok, far());
  c3.use_token(Secret(std::string_view("s.t")));
  c3.read_all({spec("kv/a")});
  CHECK(ok.requests_sent() == 1);
}

TEST_CASE("a single-use login is retried while the request provably was not sent") {
  int tries = 0;
  FakeTransport t([&](const Seen&) {
    if (++tries < 3) {
      Response r = no_connection("Connection refused");
      r.not_sent = true;
      return r;
    }
    return resp(200, R"({"auth":{"client_token":"s.from-approle"}})");
  });
  Client c(config(), t, far());
  c.login_approle("approle", Secret(std::string_view("r")), Secret(std::string_view("s")));
  CHECK(c.logged_in());
  CHECK(tries == 3);
  CHECK(c.owns_token());
}

TEST_CASE("an Arvados login may be repeated, so it is retried after a 5xx") {
  int tries = 0;
  FakeTransport t([&](const Seen&) {
    return ++tries < 3 ? resp(503) : resp(200, R"({"auth":{"client_token":"s.arv"}})");
  });
  Client c(config(), t, far());
  c.login_arvados("arvados", "lab", Secret(std::string_view("v2/x/y")));
  CHECK(tries == 3);
}

TEST_CASE("revoke_self revokes an obtained token once and forgets it; a given one is not owned") {
  FakeTransport t([](const Seen& s) {
    if (s.path == "auth/approle/login") {
      return resp(200, R"({"auth":{"client_token":"s.from-approle"}})");
    }
    return resp(204);
  });
  Client c(config(), t, far());
  c.login_approle("approle", Secret(std::string_view("r")), Secret(std::string_view("s")));
  REQUIRE(c.owns_token());
  c.revoke_self();
  REQUIRE(t.batch_sizes() == std::vector<std::size_t>{1, 1});
  CHECK(t.batches[1][0].method == "POST");
  CHECK(t.batches[1][0].path == "auth/token/revoke-self");
  CHECK(t.batches[1][0].token == std::optional<std::string>("s.from-approle"));
  CHECK_FALSE(c.logged_in());

  Client given(config(), t, far());
  given.use_token(Secret(std::string_view("s.given")));
  CHECK_FALSE(given.owns_token());
}

TEST_CASE("a refused revocation is an error naming the endpoint") {
  FakeTransport t([](const Seen& s) {
    if (s.path == "sys/wrapping/unwrap") {
      return resp(200, R"({"auth":{"client_token":"s.unwrapped"}})");
    }
    return resp(403, R"({"errors":["permission denied"]})");
  });
  Client c(config(), t, far());
  c.login_wrapped(Secret(std::string_view("hvs.w")));
  auto e = error_of([&] { c.revoke_self(); });
  REQUIRE(e);
  CHECK_CONTAINS(e->what(), "revoke-self");
  CHECK_NOT_CONTAINS(e->what(), "s.unwrapped");
}

TEST_CASE("an answer that carries a token is refused whatever the path") {
  for (const char* body : {R"({"data":{"k":"v"},"auth":{"client_token":"s.other"}})",
                           R"({"data":{"k":"v"},"wrap_info":{"token":"s.wrapped"}})",
                           R"({"data":{"id":"s.client-token","policies":["root"]}})",
                           R"({"data":{"nested":[{"deep":"s.client-token"}]}})"}) {
    CAPTURE(body);
    const auto e = read_error(resp(200, body));
    CHECK(code_of(e) == 76);
    CHECK_CONTAINS(e.what(), "carries a Vault token");
    CHECK_NOT_CONTAINS(e.what(), "s.client-token");
  }
  // A KV answer with null auth and wrap_info (as Vault sends them) is fine.
  FakeTransport t([](const Seen&) {
    return resp(200, R"({"data":{"k":"v"},"auth":null,"wrap_info":null,"lease_id":""})");
  });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.client-token")));
  CHECK(c.read_all({spec("kv/a")}).size() == 1);
}

TEST_CASE("an answer nested too deeply is a protocol error, nesting within the cap is fine") {
  const std::string deep =
      R"({"data":{"k":)" + std::string(5000, '[') + std::string(5000, ']') + "}}";
  const auto e = read_error(resp(200, deep));
  CHECK(code_of(e) == 76);
  CHECK_CONTAINS(e.what(), "nested");
  // Brackets inside strings do not count.
  const std::string text = R"({"data":{"k":")" + std::string(5000, '[') + R"("}})";
  FakeTransport t([&](const Seen&) {
    return resp(200, std::string(R"({"data":{"k":)") + std::string(60, '[') + std::string(60, ']') +
                         "}}");
  });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  CHECK(c.read_all({spec("kv/a")}).size() == 1);
  FakeTransport t2([&](const Seen&) { return resp(200, text); });
  Client c2(config(), t2, far());
  c2.use_token(Secret(std::string_view("s.t")));
  CHECK(c2.read_all({spec("kv/a")}).size() == 1);
}

TEST_CASE("a response too large fails once as a protocol error") {
  Response big = no_connection("Failure writing output to destination");
  big.too_large = true;
  big.permanent = true;
  std::size_t requests = 0;
  const auto e = read_error(big, std::nullopt, &requests);
  CHECK(code_of(e) == 76);
  CHECK_CONTAINS(e.what(), "too large");
  CHECK(requests == 1);
}

TEST_CASE("a used or expired wrapping token (400) is exit 80 and is not retried") {
  FakeTransport t([](const Seen&) {
    return resp(400, R"({"errors":["wrapping token is not valid or does not exist"]})");
  });
  Client c(config(), t, far());
  auto e = error_of([&] { c.login_wrapped(Secret(std::string_view("hvs.used-token"))); });
  REQUIRE(e);
  CHECK(code_of(*e) == 80);
  CHECK_CONTAINS(e->what(), "single use");
  CHECK_CONTAINS(e->what(), "wrapping token is not valid");
  CHECK_NOT_CONTAINS(e->what(), "hvs.used-token");
  CHECK(t.requests_sent() == 1);
}

TEST_CASE("Arvados login posts the role and the token") {
  FakeTransport t([](const Seen&) { return resp(200, R"({"auth":{"client_token":"s.arv"}})"); });
  Client c(config(), t, far());
  c.login_arvados("arvados", "etl",
                  Secret(std::string_view("v2/zzzzz-gj3su-0123456789abcde/secret")));
  CHECK(c.logged_in());
  const Seen& s = t.batches[0][0];
  CHECK(s.method == "POST");
  CHECK(s.path == "auth/arvados/login");
  const auto body = cs::util::SecretJson::parse(s.body);
  CHECK(str(body["role"].get<SecureString>()) == "etl");
  CHECK(str(body["arvados_token"].get<SecureString>()) == "v2/zzzzz-gj3su-0123456789abcde/secret");
}

TEST_CASE("a refused Arvados login is exit 80 and never shows the token") {
  const std::string token = "v2/zzzzz-gj3su-aaaaaaaaaaaaaaa/CANARYarvtoken";
  for (long status : {400L, 401L, 403L}) {
    CAPTURE(status);
    FakeTransport t([&](const Seen&) {
      return resp(status, R"({"errors":["token )" + token + R"( is not a running container's"]})");
    });
    Client c(config(), t, far());
    auto e = error_of([&] { c.login_arvados("arvados", "etl", Secret(token)); });
    REQUIRE(e);
    CHECK(code_of(*e) == 80);
    CHECK_CONTAINS(e->what(), "role 'etl'");
    CHECK_CONTAINS(e->what(), "[redacted]");
    CHECK_NOT_CONTAINS(e->what(), "CANARYarvtoken");
    CHECK(t.requests_sent() == 1);
  }
}

TEST_CASE("an echoed client token never reaches an error message") {
  const auto e = [] {
    FakeTransport t([](const Seen& s) {
      if (s.path == "auth/token/lookup-self") {
        return resp(200, "{}");
      }
      return resp(403, R"({"errors":["token s.CANARY-client-token has no policy for this path"]})");
    });
    Client c(config(), t, far());
    c.use_token(Secret(std::string_view("s.CANARY-client-token")));
    auto err = error_of([&] { c.read_all({spec("kv/a")}); });
    REQUIRE(err);
    return *err;
  }();
  CHECK(code_of(e) == 77);
  CHECK_NOT_CONTAINS(e.what(), "CANARY");
  CHECK_CONTAINS(e.what(), "token [redacted] has no policy");
}

TEST_CASE("a token obtained by login is redacted from later errors too") {
  FakeTransport t([](const Seen& s) {
    if (s.path == "auth/approle/login") {
      return resp(200, R"({"auth":{"client_token":"s.CANARY-issued"}})");
    }
    return resp(403, R"({"errors":["s.CANARY-issued denied; secret id CANARY-sid"]})");
  });
  Client c(config(), t, far());
  c.login_approle("approle", Secret(std::string_view("role")),
                  Secret(std::string_view("CANARY-sid")));
  auto e = error_of([&] { c.read_all({spec("kv/a")}); });
  REQUIRE(e);
  CHECK_NOT_CONTAINS(e->what(), "CANARY");
  CHECK_CONTAINS(e->what(), "[redacted] denied; secret id [redacted]");
}

TEST_CASE("capabilities asks sys/capabilities-self once for all paths") {
  FakeTransport t([](const Seen&) {
    return resp(200, R"({"kv/a":["read"],"data":{"kv/a":["read","list"],"kv/b":["deny"]}})");
  });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  auto caps = c.capabilities({"kv/a", "kv/b", "kv/c"});
  REQUIRE(caps.size() == 3);
  CHECK(caps[0] == std::vector<std::string>{"read", "list"});
  CHECK(caps[1] == std::vector<std::string>{"deny"});
  CHECK(caps[2].empty());
  REQUIRE(t.requests_sent() == 1);
  const Seen& s = t.batches[0][0];
  CHECK(s.method == "POST");
  CHECK(s.path == "sys/capabilities-self");
  CHECK(s.body == R"({"paths":["kv/a","kv/b","kv/c"]})");
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("vault::server_message");

TEST_CASE("the first non-empty error of a Vault body is the message") {
  CHECK(server_message(SecureString(R"({"errors":["","permission denied","x"]})")) ==
        "permission denied");
  CHECK(server_message(SecureString(R"({"errors":[]})")).empty());
  CHECK(server_message(SecureString(R"({"errors":[1,"second"]})")) == "second");
  CHECK(server_message(SecureString(R"({"data":{}})")).empty());
  CHECK(server_message(SecureString("<html>bad gateway</html>")).empty());
  CHECK(server_message(SecureString("")).empty());
}

TEST_CASE("control characters become spaces and long messages are cut to 200") {
  CHECK(server_message(SecureString(R"({"errors":["a\nb\tc\u0000d"]})")) == "a b c d");
  const std::string long_msg(500, 'x');
  const std::string m =
      server_message(SecureString((R"({"errors":[")" + long_msg + R"("]})").c_str()));
  CHECK(m.size() == 200);
  CHECK(m.substr(197) == "...");
}

TEST_CASE("credentials are redacted from server messages, every occurrence") {
  std::vector<Secret> creds{Secret(std::string_view("s.CANARY-tok")),
                            Secret(std::string_view("sid-CANARY"))};
  CHECK(
      server_message(SecureString(R"({"errors":["s.CANARY-tok and sid-CANARY and s.CANARY-tok"]})"),
                     creds) == "[redacted] and [redacted] and [redacted]");
}

TEST_CASE("a credential that occurs inside [redacted] is replaced once, not forever") {
  std::vector<Secret> creds{Secret(std::string_view("redacted"))};
  CHECK(server_message(SecureString(R"({"errors":["id redacted bad, redacted"]})"), creds) ==
        "id [redacted] bad, [redacted]");
}

TEST_CASE("a credential is redacted before the message is cut") {
  const std::string pad(190, 'p');
  std::vector<Secret> creds{Secret(std::string_view("CANARY-0123456789"))};
  const std::string m = server_message(
      SecureString((R"({"errors":[")" + pad + R"(CANARY-0123456789"]})").c_str()), creds);
  CHECK_NOT_CONTAINS(m, "CANARY-01");
  CHECK_NOT_CONTAINS(m, "CANARY");
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("vault::config_from_env");

namespace {
EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

cs::core::Error config_error(std::map<std::string, std::string> vars) {
  auto e = error_of([&] { config_from_env(env_of(std::move(vars))); });
  REQUIRE(e.has_value());
  return *e;
}
} // namespace

TEST_CASE("defaults with an empty environment") {
  const Config c = config_from_env(env_of({}));
  CHECK(c.address.empty());
  CHECK(c.client_timeout == std::chrono::milliseconds(60000));
  CHECK_FALSE(c.max_retries.has_value());
  CHECK_FALSE(c.tls.skip_verify);
  CHECK(c.vault_namespace.empty());
}

TEST_CASE("BAO_ variables win over VAULT_ ones, setting by setting") {
  const Config c = config_from_env(env_of({
      {"BAO_ADDR", "https://bao:8200"},
      {"VAULT_ADDR", "https://vault:8200"},
      {"VAULT_CACERT", "/vault/ca.pem"},
      {"BAO_CAPATH", "/bao/certs"},
      {"VAULT_CAPATH", "/vault/certs"},
      {"VAULT_CLIENT_CERT", "/c.pem"},
      {"VAULT_CLIENT_KEY", "/k.pem"},
      {"BAO_TLS_SERVER_NAME", "bao.internal"},
      {"BAO_NAMESPACE", "team-a"},
      {"VAULT_NAMESPACE", "team-b"},
      {"BAO_MAX_RETRIES", "2"},
      {"VAULT_MAX_RETRIES", "9"},
      {"VAULT_CLIENT_TIMEOUT", "1m30s"},
      {"BAO_SKIP_VERIFY", "true"},
      {"VAULT_SKIP_VERIFY", "false"},
  }));
  CHECK(c.address == "https://bao:8200");
  CHECK(c.tls.ca_cert == "/vault/ca.pem");
  CHECK(c.tls.ca_cert_source == "VAULT_CACERT");
  CHECK(c.tls.ca_path == "/bao/certs");
  CHECK(c.tls.ca_path_source == "BAO_CAPATH");
  CHECK(c.tls.client_cert == "/c.pem");
  CHECK(c.tls.client_key == "/k.pem");
  CHECK(c.tls.server_name == "bao.internal");
  CHECK(c.vault_namespace == "team-a");
  CHECK(c.max_retries == std::optional<int>(2));
  CHECK(c.client_timeout == std::chrono::milliseconds(90000));
  CHECK(c.tls.skip_verify);
}

TEST_CASE("an empty BAO_ variable falls back to VAULT_") {
  const Config c = config_from_env(env_of({{"BAO_ADDR", ""}, {"VAULT_ADDR", "http://v:8200"}}));
  CHECK(c.address == "http://v:8200");
}

TEST_CASE("trailing slashes are dropped from the address") {
  CHECK(config_from_env(env_of({{"VAULT_ADDR", "https://v:8200//"}})).address == "https://v:8200");
}

TEST_CASE("an address without http:// or https:// is refused, naming the variable") {
  for (const char* addr : {"vault:8200", "ftp://v", "unix:///run/vault.sock", "127.0.0.1:8200"}) {
    CAPTURE(addr);
    const auto e = config_error({{"BAO_ADDR", addr}});
    CHECK(code_of(e) == 78);
    CHECK_CONTAINS(e.what(), "BAO_ADDR=");
  }
}

TEST_CASE("one validation for every source of the address: the option is checked the same") {
  CHECK(normalize_address("https://v:8200//", "--vault-addr") == "https://v:8200");
  CHECK(normalize_address("http://v/prefix/", "--vault-addr") == "http://v/prefix");
  for (const char* addr : {"127.0.0.1:8200", "ftp://v", "https://", "v"}) {
    CAPTURE(addr);
    const auto e = error_of([&] { normalize_address(addr, "--vault-addr"); });
    REQUIRE(e);
    CHECK(code_of(*e) == 78);
    CHECK_CONTAINS(e->what(), "--vault-addr");
  }
}

TEST_CASE("an address with user credentials is refused without echoing them") {
  for (const char* addr :
       {"http://user:CANARY-pw@vault:8200", "https://CANARY-pw@vault", "CANARY-pw@vault:8200"}) {
    CAPTURE(addr);
    const auto e = config_error({{"VAULT_ADDR", addr}});
    CHECK(code_of(e) == 78);
    CHECK_CONTAINS(e.what(), "VAULT_ADDR");
    CHECK_NOT_CONTAINS(e.what(), "CANARY");
    CHECK_NOT_CONTAINS(e.what(), "user:");
  }
  // An '@' after the host (in a path) is not userinfo.
  CHECK(normalize_address("http://vault:8200/a@b", "x") == "http://vault:8200/a@b");
}

TEST_CASE("booleans are read the way Go's strconv.ParseBool reads them") {
  for (const char* yes : {"1", "true", "TRUE", "True", "t", "T"}) {
    CAPTURE(yes);
    CHECK(config_from_env(env_of({{"VAULT_SKIP_VERIFY", yes}})).tls.skip_verify);
  }
  for (const char* no : {"0", "false", "FALSE", "False", "f", "F"}) {
    CAPTURE(no);
    CHECK_FALSE(config_from_env(env_of({{"VAULT_SKIP_VERIFY", no}})).tls.skip_verify);
  }
  for (const char* bad : {"yes", "no", "on", "2", "tRUE"}) {
    CAPTURE(bad);
    CHECK(code_of(config_error({{"VAULT_SKIP_VERIFY", bad}})) == 78);
  }
  CHECK(config_error({{"VAULT_CLIENT_TIMEOUT", "1" + std::string(400, '0')}}).code() ==
        cs::core::ExitCode::config);
  const auto e = config_error({{"VAULT_SKIP_VERIFY", "maybe"}});
  CHECK(code_of(e) == 78);
  CHECK_CONTAINS(e.what(), "VAULT_SKIP_VERIFY='maybe' is not a boolean");
}

TEST_CASE("client timeouts are positive durations") {
  CHECK(config_from_env(env_of({{"VAULT_CLIENT_TIMEOUT", "30"}})).client_timeout == 30s);
  CHECK(config_from_env(env_of({{"VAULT_CLIENT_TIMEOUT", "500ms"}})).client_timeout == 500ms);
  for (const char* bad : {"0", "0s", "abc", "-1s", "10x"}) {
    CAPTURE(bad);
    const auto e = config_error({{"VAULT_CLIENT_TIMEOUT", bad}});
    CHECK(code_of(e) == 78);
    CHECK_CONTAINS(e.what(), "VAULT_CLIENT_TIMEOUT=");
  }
}

TEST_CASE("max retries is a non-negative integer") {
  CHECK(config_from_env(env_of({{"VAULT_MAX_RETRIES", "0"}})).max_retries == std::optional<int>(0));
  CHECK(config_from_env(env_of({{"VAULT_MAX_RETRIES", "10"}})).max_retries ==
        std::optional<int>(10));
  for (const char* bad : {"-1", "3x", "x", "1.5", "99999999999999999999"}) {
    CAPTURE(bad);
    const auto e = config_error({{"VAULT_MAX_RETRIES", bad}});
    CHECK(code_of(e) == 78);
    CHECK_CONTAINS(e.what(), "VAULT_MAX_RETRIES=");
  }
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("vault::diagnosis");

TEST_CASE("a 403 with lookup-self refused too cannot tell an invalid token from one without "
          "the default policy, and says so") {
  FakeTransport t([](const Seen&) { return resp(403, R"({"errors":["permission denied"]})"); });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.expired")));
  auto e = error_of([&] { c.read_all({spec("kv/a"), spec("kv/b")}); });
  REQUIRE(e);
  CHECK(code_of(*e) == 80);
  CHECK_CONTAINS(e->what(), "cannot tell whether it is invalid or expired");
  CHECK_CONTAINS(e->what(), "without the default policy");
  CHECK(std::string(e->what()).find("the token is invalid or expired") == std::string::npos);
  // One extra request for all the 403s, made after them.
  CHECK(t.batch_sizes() == std::vector<std::size_t>{2, 1});
}

TEST_CASE("a refused sys/capabilities-self cannot tell either, and blames no endpoint") {
  FakeTransport t([](const Seen&) { return resp(403, R"({"errors":["permission denied"]})"); });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  auto e = error_of([&] { c.capabilities({"kv/a"}); });
  REQUIRE(e);
  CHECK(code_of(*e) == 80);
  CHECK_CONTAINS(e->what(), "cannot tell whether it is invalid or expired");
  CHECK(t.requests_sent() == 1);
}

TEST_CASE("no extra request when nothing was refused") {
  FakeTransport t([](const Seen&) { return resp(404, R"({"errors":[]})"); });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  auto e = error_of([&] { c.read_all({spec("kv/a")}); });
  REQUIRE(e);
  CHECK(t.requests_sent() == 1);
}

TEST_CASE("a KV v2 404 for a path without data/ suggests <mount>/data/<path>") {
  FakeTransport t([](const Seen&) {
    return resp(
        404,
        R"({"data":null,"warnings":["Invalid path for a versioned K/V secrets engine. See the API docs."]})");
  });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  auto e = error_of([&] { c.read_all({spec("secret/team/app")}); });
  REQUIRE(e);
  CHECK(code_of(*e) == 79);
  CHECK_CONTAINS(e->what(), "did you mean secret/data/team/app?");
  CHECK(t.requests_sent() == 1); // the warning says it: no extra request
}

TEST_CASE("references failing for one cause are one line with a count and the first few") {
  FakeTransport t([](const Seen& s) {
    if (s.path == "kv/denied") {
      return resp(403);
    }
    if (s.path == "auth/token/lookup-self") {
      return resp(200, "{}");
    }
    return resp(404, R"({"errors":[]})");
  });
  Client c(config(), t, far());
  c.use_token(Secret(std::string_view("s.t")));
  std::vector<ReadSpec> specs;
  for (int i = 0; i < 5; ++i) {
    specs.push_back(spec("kv/missing" + std::to_string(i)));
    specs.back().reference = specs.back().describe;
  }
  specs.push_back(spec("kv/denied"));
  auto e = error_of([&] { c.read_all(specs); });
  REQUIRE(e);
  CHECK(code_of(*e) == 79);
  CHECK_CONTAINS(e->what(), "5 references: not found (HTTP 404): check the path and mount: ");
  CHECK_CONTAINS(e->what(),
                 "vault:kv/missing0#k, vault:kv/missing1#k, vault:kv/missing2#k and 2 more");
  CHECK_NOT_CONTAINS(e->what(), "missing3");
  CHECK(e->fields().path == "kv/missing0");
  CHECK(e->fields().status == 404);
}

TEST_CASE("https:// against plain HTTP and http:// against TLS are configuration errors at once") {
  {
    FakeTransport t([](const Seen&) {
      return no_connection("OpenSSL/3.0.19: error:0A00010B:SSL routines::wrong version number");
    });
    Client c(config(), t, far());
    c.use_token(Secret(std::string_view("s.t")));
    auto e = error_of([&] { c.read_all({spec("kv/a")}); });
    REQUIRE(e);
    CHECK(code_of(*e) == 78);
    CHECK_CONTAINS(e->what(), "speaks plain HTTP");
    CHECK(t.requests_sent() == 1);
  }
  {
    FakeTransport t(
        [](const Seen&) { return resp(400, "Client sent an HTTP request to an HTTPS server.\n"); });
    Client c(config(), t, far());
    auto e = error_of([&] {
      c.login_approle("approle", Secret(std::string_view("r")), Secret(std::string_view("s")));
    });
    REQUIRE(e);
    CHECK(code_of(*e) == 78);
    CHECK_CONTAINS(e->what(), "use https://vault.test:8200");
  }
}

TEST_CASE("a login refused with 403, 404 or 405 says no such auth method is mounted there") {
  for (long status : {403L, 404L, 405L}) {
    CAPTURE(status);
    FakeTransport t(
        [&](const Seen&) { return resp(status, R"({"errors":["permission denied"]})"); });
    Client c(config(), t, far());
    auto e = error_of([&] {
      c.login_approle("nothere", Secret(std::string_view("r")), Secret(std::string_view("s")));
    });
    REQUIRE(e);
    CHECK(code_of(*e) == 80);
    CHECK_CONTAINS(e->what(), "no auth method of that type is mounted at auth/nothere");
    CHECK(t.requests_sent() == 1);
  }
}

TEST_CASE("a used secret id is reported with who may have used it") {
  FakeTransport t(
      [](const Seen&) { return resp(400, R"({"errors":["invalid role or secret ID"]})"); });
  Client c(config(), t, far());
  auto e = error_of([&] {
    c.login_approle("approle", Secret(std::string_view("r")), Secret(std::string_view("s")));
  });
  REQUIRE(e);
  CHECK_CONTAINS(e->what(), "another process, an earlier run, or check --online "
                            "--consume-credentials");
}

TEST_CASE("a wrapped AppRole secret id is unwrapped, then used to log in") {
  FakeTransport t([](const Seen& s) {
    if (s.path == "sys/wrapping/unwrap") {
      return resp(200, R"({"data":{"secret_id":"sid-inside","secret_id_accessor":"a"}})");
    }
    return resp(200, R"({"auth":{"client_token":"s.from-approle"}})");
  });
  Client c(config(), t, far());
  c.login_wrapped(Secret(std::string_view("hvs.wrapping")), "approle",
                  Secret(std::string_view("role-1")));
  CHECK(c.logged_in());
  REQUIRE(t.batches.size() == 2);
  CHECK(t.batches[1][0].path == "auth/approle/login");
  CHECK_CONTAINS(t.batches[1][0].body, "sid-inside");
}

TEST_CASE("sys/wrapping/lookup checks a wrapping token without unwrapping it") {
  FakeTransport t([](const Seen& s) {
    if (s.path == "sys/wrapping/lookup") {
      return resp(200, R"({"data":{"creation_path":"auth/token/create","creation_ttl":300}})");
    }
    return resp(500);
  });
  Client c(config(), t, far());
  const WrapInfo info = c.lookup_wrapping(Secret(std::string_view("hvs.w")));
  CHECK(info.creation_path == "auth/token/create");
  CHECK(info.creation_ttl == 300);
  REQUIRE(t.requests_sent() == 1);
  CHECK_FALSE(t.batches[0][0].token.has_value());
  CHECK_CONTAINS(t.batches[0][0].body, "hvs.w");
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("vault::CurlTransport");

TEST_CASE("when curl_multi_perform fails, unfinished requests get the reason, finished ones keep "
          "their outcome") {
  std::vector<cs::vault::Response> responses(4);
  responses[0].status = 200; // finished with an answer
  responses[1].transport_error = "Connection refused";
  responses[3].body = "partial";
  const std::vector<bool> done{true, true, false, false};
  cs::vault::fail_unfinished(responses, done, "libcurl failed: Out of memory");
  CHECK(responses[0].status == 200);
  CHECK(responses[0].transport_error.empty());
  CHECK(responses[1].transport_error == "Connection refused");
  for (std::size_t i : {2u, 3u}) {
    CAPTURE(i);
    CHECK(responses[i].status == 0);
    CHECK(responses[i].transport_error == "libcurl failed: Out of memory");
    CHECK(responses[i].body.empty());
    // Not permanent: the client retries it and, at the deadline, names the reason.
    CHECK(cs::vault::is_retryable(responses[i]));
  }
}

TEST_CASE("the transfer window keeps at most its limit in flight and starts the next as one "
          "finishes, in any order of completion") {
  // 1000 requests through a window of 64, finishing in a shuffled order: the bound
  // CurlTransport::perform keeps (each transfer in flight holds a libcurl handle and buffers).
  constexpr std::size_t total = 1000;
  cs::vault::TransferWindow window(total, cs::vault::k_max_in_flight);
  std::mt19937 rng(9);
  std::vector<std::size_t> in_flight;
  std::vector<int> started(total, 0);
  std::size_t peak = 0;
  while (!window.done()) {
    while (const auto i = window.next()) {
      ++started[*i];
      in_flight.push_back(*i);
    }
    peak = std::max(peak, window.in_flight());
    REQUIRE(window.in_flight() == in_flight.size());
    REQUIRE(window.in_flight() <= cs::vault::k_max_in_flight);
    REQUIRE_FALSE(in_flight.empty());
    // A random number of the transfers in flight finish, in random order.
    std::shuffle(in_flight.begin(), in_flight.end(), rng);
    const std::size_t n = 1 + rng() % in_flight.size();
    for (std::size_t k = 0; k < n; ++k) {
      window.finish(in_flight.back());
      in_flight.pop_back();
    }
  }
  CHECK(peak == cs::vault::k_max_in_flight);
  CHECK(std::all_of(started.begin(), started.end(), [](int c) { return c == 1; }));
  CHECK_FALSE(window.next().has_value());
}

TEST_CASE("the transfer window starts requests in order and refuses a finish it did not start") {
  cs::vault::TransferWindow window(3, 2);
  CHECK(window.next() == std::optional<std::size_t>(0));
  CHECK(window.next() == std::optional<std::size_t>(1));
  CHECK_FALSE(window.next().has_value()); // full
  CHECK_THROWS_AS(window.finish(2), std::logic_error);
  window.finish(1);
  CHECK_THROWS_AS(window.finish(1), std::logic_error);
  CHECK(window.next() == std::optional<std::size_t>(2));
  window.finish(0);
  CHECK_FALSE(window.done());
  window.finish(2);
  CHECK(window.done());
  // An empty batch is done at once; a limit of 0 still lets one request through.
  CHECK(cs::vault::TransferWindow(0, 64).done());
  cs::vault::TransferWindow one(2, 0);
  CHECK(one.next().has_value());
  CHECK_FALSE(one.next().has_value());
}

TEST_CASE("the transfer window widens when the protocol allows more in flight") {
  // Over HTTP/1.x as many as libcurl has connections; once an answer came over HTTP/2, more.
  cs::vault::TransferWindow window(20, cs::vault::k_max_connections);
  std::size_t started = 0;
  while (window.next()) {
    ++started;
  }
  CHECK(started == cs::vault::k_max_connections);
  window.finish(0);
  window.set_limit(cs::vault::k_max_in_flight);
  while (window.next()) {
    ++started;
  }
  CHECK(started == 20);
  CHECK(window.in_flight() == 19);
  // Narrowing stops new starts until enough have finished; none already started is lost.
  window.set_limit(2);
  CHECK_FALSE(window.next().has_value());
  for (std::size_t i = 1; i < 20; ++i) {
    window.finish(i);
  }
  CHECK(window.done());
}

TEST_CASE("TLS and URL errors are permanent, connection errors are not") {
  CHECK(cs::vault::is_permanent(CURLE_PEER_FAILED_VERIFICATION));
  CHECK(cs::vault::is_permanent(CURLE_SSL_CACERT_BADFILE));
  CHECK(cs::vault::is_permanent(CURLE_URL_MALFORMAT));
  CHECK_FALSE(cs::vault::is_permanent(CURLE_COULDNT_CONNECT));
  CHECK_FALSE(cs::vault::is_permanent(CURLE_OPERATION_TIMEDOUT));
}

TEST_CASE("A handshake failure is permanent only when OpenSSL names a negotiation failure") {
  // The words libcurl 7.88 passes on from OpenSSL 3 (the prefix varies with the build).
  const auto old_server =
      classify_failure(CURLE_SSL_CONNECT_ERROR,
                       "OpenSSL/3.0.19: error:0A00042E:SSL routines::tlsv1 alert protocol version");
  CHECK(old_server.permanent);
  CHECK(old_server.text.find("TLS >= 1.2") != std::string::npos);
  CHECK(old_server.text.find("tlsv1 alert protocol version") != std::string::npos);
  CHECK(
      classify_failure(CURLE_SSL_CONNECT_ERROR, "error:0A000102:SSL routines::unsupported protocol")
          .permanent);
  const auto no_cipher = classify_failure(
      CURLE_SSL_CONNECT_ERROR, "error:0A000410:SSL routines::sslv3 alert handshake failure");
  CHECK(no_cipher.permanent);
  CHECK(no_cipher.text.find("share no cipher") != std::string::npos);
  CHECK(classify_failure(CURLE_SSL_CONNECT_ERROR,
                         "error:0A000418:SSL routines::tlsv1 alert unknown ca")
            .permanent);
  // A reset or a server going away during the handshake is retried, with libcurl's text.
  for (const char* transient :
       {"OpenSSL SSL_connect: Connection reset by peer in connection to 127.0.0.1:8200 ",
        "error:0A000126:SSL routines::unexpected eof while reading",
        "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to vault:8200 "}) {
    CAPTURE(transient);
    const auto f = classify_failure(CURLE_SSL_CONNECT_ERROR, transient);
    CHECK_FALSE(f.permanent);
    CHECK(f.text == transient);
  }
  CHECK(classify_failure(CURLE_PEER_FAILED_VERIFICATION, "SSL certificate problem").permanent);
  CHECK_FALSE(classify_failure(CURLE_COULDNT_RESOLVE_HOST, "Could not resolve host: v").permanent);
  CHECK_FALSE(classify_failure(CURLE_COULDNT_CONNECT, "alert protocol version").permanent);
}

TEST_CASE("CA settings are checked as Vault's client reads them") {
  cs::test::TempDir dir;
  cs::test::write_text(dir / "ca.pem", "not checked here: libcurl reads it");
  TlsConfig tls;
  tls.ca_cert = dir / "ca.pem";
  tls.ca_path = dir / "no-such-dir";
  // The CA file wins; the directory is then not looked at, as in Vault's client.
  CHECK_NOTHROW(check_ca_settings(tls));
  tls.ca_cert = dir / "missing.pem";
  tls.ca_cert_source = "BAO_CACERT";
  auto e = error_of([&] { check_ca_settings(tls); });
  REQUIRE(e);
  CHECK(code_of(*e) == 78);
  CHECK(std::string(e->what()).find("BAO_CACERT=" + dir / "missing.pem") != std::string::npos);
  tls.ca_cert = dir.path(); // a directory is not a CA file
  CHECK(error_of([&] { check_ca_settings(tls); }));
  tls.ca_cert.clear();
  e = error_of([&] { check_ca_settings(tls); });
  REQUIRE(e);
  CHECK(code_of(*e) == 78);
  CHECK(std::string(e->what()).find("VAULT_CAPATH=" + dir / "no-such-dir") != std::string::npos);
  tls.ca_path = dir / "ca.pem"; // a file is not a CA directory
  CHECK(error_of([&] { check_ca_settings(tls); }));
  tls.ca_path = dir.path();
  CHECK_NOTHROW(check_ca_settings(tls));
}

TEST_SUITE_END();
