#include "crunchsecrets/supervise/schedule.hpp"

#include <algorithm>

namespace cs::supervise {

Seconds lease_seconds(std::int64_t ttl) {
  if (ttl <= 0) {
    return Seconds{0};
  }
  return std::min(Seconds{ttl}, k_max_lease);
}

LeaseState granted_lease(Clock::time_point now, Seconds ttl, bool renewable) {
  LeaseState s;
  s.granted = now;
  s.ttl = ttl;
  s.renewable = renewable;
  return s;
}

Millis backoff(unsigned failures, const SchedulePolicy& policy) {
  if (failures == 0) {
    return Millis{0};
  }
  Millis d = policy.backoff_base;
  for (unsigned i = 1; i < failures && d < policy.backoff_cap; ++i) {
    d *= 2;
  }
  return std::min(d, policy.backoff_cap);
}

Step next_step(const LeaseState& lease, Clock::time_point now, const SchedulePolicy& policy) {
  if (lease.ttl <= Seconds{0}) {
    return Step{StepKind::none, now};
  }
  const auto expiry = lease.expires();
  if (now >= expiry) {
    return Step{StepKind::expired, expiry};
  }
  const StepKind kind = lease.renewable && !lease.final ? StepKind::renew : StepKind::refetch;
  const auto lifetime =
      std::max<Millis>(std::chrono::duration_cast<Millis>(lease.ttl), policy.min_interval);
  const auto planned =
      lease.granted + std::chrono::duration_cast<Millis>(lifetime * policy.renew_fraction);
  if (lease.failures == 0) {
    return Step{kind, std::min(planned, expiry)};
  }
  // Retry after the backoff, but not before the planned time and never later than shortly
  // before expiry: an attempt at or after expiry cannot keep the old credentials alive.
  auto retry = lease.last_failure + backoff(lease.failures, policy);
  retry = std::max(retry, std::min(planned, expiry));
  const auto last_chance = expiry - std::min<Millis>(policy.min_interval, lifetime / 10);
  if (retry > last_chance) {
    if (lease.last_failure >= last_chance) {
      // The last attempt before expiry failed too: nothing keeps these credentials alive.
      return Step{StepKind::expired, expiry};
    }
    retry = last_chance; // one more attempt just before expiry
  }
  return Step{kind, retry};
}

LeaseState after_renewal(const LeaseState& before, Clock::time_point started, Seconds new_ttl,
                         bool renewable, Seconds requested) {
  LeaseState s;
  s.granted = started;
  s.ttl = new_ttl;
  s.renewable = renewable;
  s.final = !renewable || new_ttl < requested || s.expires() <= before.expires();
  return s;
}

LeaseState after_failure(const LeaseState& before, Clock::time_point now, bool refused) {
  LeaseState s = before;
  s.failures = before.failures + 1;
  s.last_failure = now;
  if (refused) {
    // Renewing again is pointless; fetch new credentials now, without backing off first.
    s.final = true;
    s.failures = 0;
  }
  return s;
}

} // namespace cs::supervise
