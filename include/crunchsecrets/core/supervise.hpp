// Supervise mode's session (README.md, "Supervise mode"): keeps the delivered credentials
// fresh while the child runs. It renews the token and every renewable lease ahead of expiry,
// fetches new credentials when a lease cannot be extended, re-reads KV v2 secrets whose
// version changed, re-renders the affected files and applies the change action, and on exit
// revokes what it holds. Vault and the child are reached through `VaultOps` and
// `ChildEffects`, so the whole decision logic is unit-tested without a network or a process.
#pragma once

#include "crunchsecrets/core/resolve.hpp"
#include "crunchsecrets/supervise/process.hpp"
#include "crunchsecrets/supervise/schedule.hpp"

#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cs::core {

enum class ChangeAction { signal, restart, none };
enum class ExpiryAction { stop, keep };

// How one secret reacts to new data: its change action and KV v2 refresh interval.
struct SecretPolicy {
  ChangeAction on_change = ChangeAction::signal;
  int change_signal = SIGHUP;
  // Interval for re-checking a KV v2 secret by version; 0 = never.
  supervise::Millis refresh{0};
};

// How a supervised run reacts; from the manifest's `supervise:` block and the command line.
struct SuperviseSettings {
  ChangeAction on_change = ChangeAction::signal;
  int change_signal = SIGHUP;
  int stop_signal = SIGTERM;
  supervise::Millis grace{10000};
  // Interval for re-checking KV v2 secrets by version; 0 = never.
  supervise::Millis refresh{0};
  ExpiryAction on_expiry = ExpiryAction::stop;
  // Revoke the token at exit: true when crunch-secrets obtained it itself (AppRole, wrapped,
  // Arvados) and `--keep-token` was not given. A token the user passed in is never revoked.
  bool revoke_token = false;
  supervise::SchedulePolicy policy;
  // Per fetch (index into plan.fetches), from the manifest secret that names it. Fetches
  // beyond the end use `on_change`, `change_signal` and `refresh` above.
  std::vector<SecretPolicy> per_fetch;
};

// Names a change action / expiry action / signal for the manifest parser and messages.
std::optional<ChangeAction> change_action_from(std::string_view name);
std::optional<ExpiryAction> expiry_action_from(std::string_view name);
// "HUP", "SIGHUP" or a number 1-64; nullopt otherwise.
std::optional<int> signal_from(std::string_view name);

// A lease's answer to renew or lookup.
struct LeaseAnswer {
  std::int64_t ttl = 0;
  bool renewable = false;
};

// The Vault requests a session makes. Each throws `core::Error` on failure; the exit code
// says whether retrying can help (`unavailable`) or Vault refused (anything else).
class VaultOps {
public:
  virtual ~VaultOps() = default;
  virtual vault::Fetched read(const vault::ReadSpec& spec) = 0;
  // KV v2: the current version from the metadata endpoint (no value is read).
  virtual std::uint64_t kv2_current_version(const std::string& data_path) = 0;
  virtual LeaseAnswer renew_lease(const std::string& lease_id, std::int64_t increment) = 0;
  virtual LeaseAnswer lookup_token() = 0;
  virtual LeaseAnswer renew_token(std::int64_t increment) = 0;
  virtual void revoke_lease(const std::string& lease_id) = 0;
  virtual void revoke_token() = 0;
};

// What a session does to the child and its files.
class ChildEffects {
public:
  virtual ~ChildEffects() = default;
  // Re-renders `files` (indexes into plan.files) from `resolver` and replaces each atomically.
  virtual void rewrite_files(const std::vector<std::size_t>& files, const Resolver& resolver) = 0;
  virtual void signal(int signo) = 0;
  // Starts the child (again) with its environment and arguments rendered from `resolver`.
  virtual void start(const Resolver& resolver) = 0;
  // Adds a delivered value to the output redaction.
  virtual void redact(const std::string& name, const util::Secret& value) = 0;
};

// A short, stable, non-reversible name for a lease id in log lines ("lease-1a2b3c4d5e6f").
std::string lease_tag(std::string_view lease_id);

// The KV v2 metadata path for a data path ("secret/data/app" -> "secret/metadata/app"), or
// empty when the path has no "data" segment after the mount.
std::string kv2_metadata_path(const std::string& data_path);

class Session : public supervise::Hooks {
public:
  using Clock = supervise::Clock;
  // `credentials` are the Arvados credentials delivered with the Vault reads: static values,
  // rendered again with the Vault data at every rotation, never refreshed.
  Session(std::shared_ptr<const Plan> plan, std::vector<vault::Fetched> fetched, VaultOps& vault,
          ChildEffects& child, SuperviseSettings settings, Clock::time_point now,
          CredentialValues credentials = {});

  // Registers every delivered value for redaction and learns the token's lease.
  void begin(Clock::time_point now);

  Clock::time_point next_wakeup() override;
  void on_timer(Clock::time_point now) override;
  bool on_child_exit(int wait_status) override;

  // Revokes every lease still held (current and replaced ones) and, when `revoke_token`, the
  // token. Errors are logged. Returns how many revocations failed.
  int shutdown();

  // The values in effect now (for tests and re-rendering).
  const std::vector<vault::Fetched>& fetched() const { return m_fetched; }
  // A resolver over the values in effect now (Vault data and Arvados credentials).
  Resolver resolver() const;
  // Counters for tests and the closing status line.
  struct Stats {
    unsigned renewals = 0;
    unsigned rotations = 0;
    unsigned failures = 0;
    unsigned token_renewals = 0;
  };
  const Stats& stats() const { return m_stats; }
  bool stopping() const { return m_stop.active; }

private:
  struct Lease {
    std::size_t fetch = 0; // index into plan.fetches
    std::string id;
    supervise::LeaseState state;
    supervise::Seconds increment{0}; // the first TTL, asked for at every renewal
    bool expired_reported = false;
  };
  struct Poll {
    std::size_t fetch = 0;
    std::string metadata_path;
    std::uint64_t version = 0;
    Clock::time_point next;
    unsigned failures = 0;
  };
  struct Stop {
    bool active = false;
    bool for_restart = false;
    bool killed = false;
    Clock::time_point kill_at;
  };

  // When `lease` needs attention (renewal, re-fetch, or a retry after expiry).
  Clock::time_point due(const Lease& lease) const;
  void renew(Lease& lease, Clock::time_point now);
  void refetch(std::size_t fetch, Clock::time_point now);
  void poll(Poll& p, Clock::time_point now);
  void handle_token(Clock::time_point now);
  void expired(Lease& lease, Clock::time_point now);
  // New data for `fetch` arrived: redact it, re-render files, apply the change action.
  void changed(std::size_t fetch, vault::Fetched data, Clock::time_point now);
  void begin_stop(bool for_restart, Clock::time_point now);
  void add_lease(std::size_t fetch, const vault::Fetched& f, Clock::time_point now);
  void redact_values(std::size_t fetch);
  std::string name_of(std::size_t fetch) const;
  SecretPolicy policy_of(std::size_t fetch) const;

  std::shared_ptr<const Plan> m_plan;
  std::vector<vault::Fetched> m_fetched;
  CredentialValues m_credentials;
  VaultOps& m_vault;
  ChildEffects& m_child;
  SuperviseSettings m_settings;
  std::vector<Lease> m_leases;
  std::vector<std::string> m_retired; // replaced leases, revoked at exit
  std::vector<Poll> m_polls;
  std::optional<Lease> m_token;
  Stop m_stop;
  Stats m_stats;
  Clock::time_point m_now; // the last time the session was told
};

} // namespace cs::core
