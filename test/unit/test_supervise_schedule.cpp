#include "crunchsecrets/supervise/schedule.hpp"

#include <cstdint>
#include <doctest/doctest.h>
#include <limits>

using namespace cs::supervise;
using namespace std::chrono_literals;

namespace {
const Clock::time_point t0{std::chrono::hours(1000)};
}

TEST_SUITE_BEGIN("supervise::schedule");

TEST_CASE("a renewable lease is renewed at two thirds of its TTL") {
  auto lease = granted_lease(t0, 30s, true);
  auto step = next_step(lease, t0);
  CHECK(step.kind == StepKind::renew);
  CHECK(step.at == t0 + 20s);
}

TEST_CASE("a lease with no TTL needs nothing") {
  CHECK(next_step(granted_lease(t0, 0s, false), t0).kind == StepKind::none);
}

TEST_CASE("a non-renewable lease is re-fetched before it expires") {
  auto step = next_step(granted_lease(t0, 60s, false), t0);
  CHECK(step.kind == StepKind::refetch);
  CHECK(step.at == t0 + 40s);
}

TEST_CASE("a renewal granting the full increment keeps renewing") {
  auto lease = granted_lease(t0, 30s, true);
  auto renewed = after_renewal(lease, t0 + 20s, 30s, true, 30s);
  CHECK_FALSE(renewed.final);
  auto step = next_step(renewed, t0 + 20s);
  CHECK(step.kind == StepKind::renew);
  CHECK(step.at == t0 + 40s);
}

TEST_CASE("a renewal capped by max_ttl turns into a re-fetch before the cap") {
  // TTL 30 s, max_ttl 45 s: renewing at 20 s can only grant 25 s.
  auto lease = granted_lease(t0, 30s, true);
  auto renewed = after_renewal(lease, t0 + 20s, 25s, true, 30s);
  CHECK(renewed.final);
  auto step = next_step(renewed, t0 + 20s);
  CHECK(step.kind == StepKind::refetch);
  CHECK(step.at > t0 + 20s);
  CHECK(step.at < t0 + 45s);
  CHECK(step.at <= t0 + 20s + 25000ms * 2 / 3 + 1ms);
}

TEST_CASE("a renewal that does not move the expiry is final") {
  auto lease = granted_lease(t0, 30s, true);
  auto renewed = after_renewal(lease, t0 + 20s, 10s, true, 10s);
  CHECK(renewed.final);
}

TEST_CASE("a refused renewal re-fetches at once") {
  auto lease = granted_lease(t0, 30s, true);
  auto refused = after_failure(lease, t0 + 20s, true);
  auto step = next_step(refused, t0 + 20s);
  CHECK(step.kind == StepKind::refetch);
  CHECK(step.at <= t0 + 20s);
}

TEST_CASE("failures back off, but the last attempt is before expiry") {
  SchedulePolicy p;
  auto lease = granted_lease(t0, 30s, true);
  auto now = t0 + 20s;
  lease = after_failure(lease, now, false);
  auto step = next_step(lease, now, p);
  CHECK(step.kind == StepKind::renew);
  CHECK(step.at == now + 500ms);
  for (int i = 0; i < 4; ++i) {
    now = step.at;
    lease = after_failure(lease, now, false);
    step = next_step(lease, now, p);
    REQUIRE(step.kind == StepKind::renew);
    CHECK(step.at > now);
    CHECK(step.at < lease.expires());
  }
  // The fifth backoff (8 s) would pass the expiry, so the retry is pulled in just before it.
  CHECK(step.at == t0 + 30s - 250ms);
  // When that last attempt fails as well, nothing is left to try before expiry.
  now = step.at;
  lease = after_failure(lease, now, false);
  step = next_step(lease, now, p);
  CHECK(step.kind == StepKind::expired);
  CHECK(step.at == t0 + 30s);
  CHECK(next_step(lease, t0 + 30s, p).kind == StepKind::expired);
}

TEST_CASE("backoff doubles up to the cap") {
  SchedulePolicy p;
  CHECK(backoff(0, p) == 0ms);
  CHECK(backoff(1, p) == 500ms);
  CHECK(backoff(2, p) == 1000ms);
  CHECK(backoff(3, p) == 2000ms);
  CHECK(backoff(20, p) == 30000ms);
}

TEST_CASE("a very short lease is not renewed in a busy loop") {
  auto step = next_step(granted_lease(t0, 0s + 1s, true), t0);
  CHECK(step.at >= t0 + 500ms);
  CHECK(step.at < t0 + 1s);
}

TEST_CASE("an expired lease reports expiry") {
  auto lease = granted_lease(t0, 10s, true);
  auto step = next_step(lease, t0 + 11s);
  CHECK(step.kind == StepKind::expired);
  CHECK(step.at == t0 + 10s);
}

TEST_CASE("TTLs from Vault are taken as at most a year, and nothing for zero or less") {
  CHECK(lease_seconds(30) == Seconds{30});
  CHECK(lease_seconds(0) == Seconds{0});
  CHECK(lease_seconds(-1) == Seconds{0});
  CHECK(lease_seconds(std::numeric_limits<std::int64_t>::max()) == k_max_lease);
  const auto s = granted_lease(Clock::time_point{}, lease_seconds(INT64_MAX), true);
  CHECK(s.expires() > Clock::time_point{});
}

TEST_SUITE_END();
