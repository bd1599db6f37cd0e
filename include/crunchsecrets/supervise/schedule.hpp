// The renewal scheduler: pure decisions about when to renew a lease (or the token), when to
// fetch new credentials instead, and when credentials have run out. No clock is read and no
// request is made here; the supervisor passes "now" and the answers Vault gave.
#pragma once

#include <chrono>
#include <cstdint>

namespace cs::supervise {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::seconds;
using Millis = std::chrono::milliseconds;

// The tuning of the scheduler. The defaults are what README.md, "Refresh", documents.
struct SchedulePolicy {
  // Renew (or re-fetch) when this fraction of the current lease has passed. Vault Agent renews
  // at about 2/3; the scheduler never waits longer than that.
  double renew_fraction = 2.0 / 3.0;
  // After a failed attempt, wait backoff_base * 2^(failures-1), at most backoff_cap, but never
  // past the last moment at which an attempt can still help (see `next_step`).
  Millis backoff_base{500};
  Millis backoff_cap{30000};
  // A lease whose TTL is below this is treated as this long for scheduling so that a server
  // handing out one-second leases does not make the supervisor spin.
  Millis min_interval{250};
};

// What the supervisor knows about one lease (or the token) after the last answer from Vault.
struct LeaseState {
  Clock::time_point granted; // when the current TTL was granted (request start time)
  Seconds ttl{0};            // lease_duration of that answer
  bool renewable = false;
  // True when a renewal could not extend the lease any further (max_ttl reached, or refused):
  // only fresh credentials help then.
  bool final = false;
  unsigned failures = 0;          // consecutive failed attempts since the last success
  Clock::time_point last_failure; // when the last failed attempt ended
  Clock::time_point expires() const { return granted + ttl; }
};

enum class StepKind {
  none,    // not leased (TTL 0): nothing to do
  renew,   // extend the lease (sys/leases/renew or auth/token/renew-self)
  refetch, // read the secret again (or log in again): new credentials
  expired, // the lease has run out; credentials no longer work
};

struct Step {
  StepKind kind = StepKind::none;
  Clock::time_point at;
};

// The longest TTL the scheduler takes from Vault: a year. A larger one (a hostile or broken
// server's 2^63) would overflow the clock's arithmetic; no lease outlives the supervisor by that
// much, and the lease is renewed at two thirds of a year if the child runs that long.
constexpr Seconds k_max_lease{366LL * 24 * 3600};

// A TTL as Vault gave it (seconds; any int64) as the scheduler uses it: at most `k_max_lease`,
// and 0 for zero or negative (not leased, or nothing granted).
Seconds lease_seconds(std::int64_t ttl);

// A lease just granted (first read or re-fetch) at `now` with `ttl` seconds.
LeaseState granted_lease(Clock::time_point now, Seconds ttl, bool renewable);

// What to do next for `lease` and when. Renewable, not final: renew at `renew_fraction` of the
// current lease. Not renewable or final: re-fetch at the same point, so the new credentials
// exist well before the old ones expire. After failures the next attempt is backed off but
// never scheduled after the lease's expiry; at or after expiry the step is `expired`.
Step next_step(const LeaseState& lease, Clock::time_point now, const SchedulePolicy& policy = {});

// The state after a successful renewal that started at `started` and answered `new_ttl`
// (lease_duration). `requested` is the increment asked for. The lease is final when Vault
// granted less than asked (max_ttl caps it), or when the new expiry is not later than the
// old one.
LeaseState after_renewal(const LeaseState& before, Clock::time_point started, Seconds new_ttl,
                         bool renewable, Seconds requested);

// The state after a failed attempt that ended at `now`. `refused` means Vault answered that
// the lease cannot be renewed (400: not renewable, not found): further renewals are pointless,
// so the lease becomes final and the next step is an immediate re-fetch.
LeaseState after_failure(const LeaseState& before, Clock::time_point now, bool refused);

// Backoff before attempt number `failures` + 1 (no randomness: the supervisor has few leases).
Millis backoff(unsigned failures, const SchedulePolicy& policy = {});

} // namespace cs::supervise
