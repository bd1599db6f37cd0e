#include "crunchsecrets/core/supervise.hpp"

#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/util/log.hpp"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace cs::core {

namespace {

using supervise::Millis;
using supervise::StepKind;
using Seconds = supervise::Seconds;

bool can_retry(const Error& e) {
  return e.code() == ExitCode::unavailable;
}

long long ms_until(supervise::Clock::time_point from, supervise::Clock::time_point to) {
  return std::chrono::duration_cast<Millis>(to - from).count();
}

// Every string leaf of a secret's data, with its key path, for redaction.
void collect_strings(const util::SecretJson& j, std::vector<const util::SecureString*>& out) {
  if (j.is_string()) {
    out.push_back(&j.get_ref<const util::SecretJson::string_t&>());
  } else if (j.is_object() || j.is_array()) {
    for (const auto& v : j) {
      collect_strings(v, out);
    }
  }
}

} // namespace

std::optional<ChangeAction> change_action_from(std::string_view name) {
  if (name == "signal") {
    return ChangeAction::signal;
  }
  if (name == "restart") {
    return ChangeAction::restart;
  }
  if (name == "none") {
    return ChangeAction::none;
  }
  return std::nullopt;
}

std::optional<ExpiryAction> expiry_action_from(std::string_view name) {
  if (name == "stop") {
    return ExpiryAction::stop;
  }
  if (name == "keep") {
    return ExpiryAction::keep;
  }
  return std::nullopt;
}

std::optional<int> signal_from(std::string_view name) {
  static constexpr std::pair<std::string_view, int> names[] = {
      {"HUP", SIGHUP},     {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
      {"USR1", SIGUSR1},   {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"ALRM", SIGALRM},
      {"WINCH", SIGWINCH}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"PWR", SIGPWR},
  };
  if (name.substr(0, 3) == "SIG") {
    name.remove_prefix(3);
  }
  for (const auto& [n, v] : names) {
    if (n == name) {
      return v;
    }
  }
  if (!name.empty() && name.size() <= 2 &&
      std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    const int v = std::stoi(std::string(name));
    if (v >= 1 && v <= 64) {
      return v;
    }
  }
  return std::nullopt;
}

std::string lease_tag(std::string_view lease_id) {
  // FNV-1a, 64 bit: enough to tell leases apart in a log, and a lease id cannot be read back.
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : lease_id) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return fmt::format("lease-{:012x}", h & 0xffffffffffffULL);
}

std::string kv2_metadata_path(const std::string& data_path) {
  const auto pos = data_path.find("/data/");
  if (pos == std::string::npos) {
    return {};
  }
  return data_path.substr(0, pos) + "/metadata/" + data_path.substr(pos + 6);
}

Session::Session(std::shared_ptr<const Plan> plan, std::vector<vault::Fetched> fetched,
                 VaultOps& vault, ChildEffects& child, SuperviseSettings settings,
                 Clock::time_point now, CredentialValues credentials)
    : m_plan(std::move(plan)), m_fetched(std::move(fetched)), m_credentials(std::move(credentials)),
      m_vault(vault), m_child(child), m_settings(std::move(settings)) {
  for (std::size_t i = 0; i < m_fetched.size(); ++i) {
    add_lease(i, m_fetched[i], now);
    const auto& f = m_fetched[i];
    const Millis refresh = policy_of(i).refresh;
    if (refresh > Millis{0} && f.kv2 && !m_plan->fetches[i].read.version) {
      Poll p;
      p.fetch = i;
      p.metadata_path = kv2_metadata_path(m_plan->fetches[i].read.path);
      p.version = f.version.value_or(0);
      p.next = now + refresh;
      if (!p.metadata_path.empty()) {
        m_polls.push_back(std::move(p));
      }
    }
  }
}

void Session::add_lease(std::size_t fetch, const vault::Fetched& f, Clock::time_point now) {
  auto it = std::find_if(m_leases.begin(), m_leases.end(),
                         [&](const Lease& l) { return l.fetch == fetch; });
  if (it != m_leases.end()) {
    if (!it->id.empty() && it->id != f.lease_id) {
      m_retired.push_back(it->id);
    }
    m_leases.erase(it);
  }
  if (f.lease_id.empty() || f.lease_duration <= 0) {
    return;
  }
  Lease l;
  l.fetch = fetch;
  l.id = f.lease_id;
  l.state = supervise::granted_lease(now, supervise::lease_seconds(f.lease_duration), f.renewable);
  l.increment = supervise::lease_seconds(f.lease_duration);
  m_leases.push_back(std::move(l));
}

SecretPolicy Session::policy_of(std::size_t fetch) const {
  if (fetch < m_settings.per_fetch.size()) {
    return m_settings.per_fetch[fetch];
  }
  return SecretPolicy{m_settings.on_change, m_settings.change_signal, m_settings.refresh};
}

std::string Session::name_of(std::size_t fetch) const {
  if (m_plan->manifest) {
    for (const auto& s : m_plan->manifest->secrets) {
      if (s.path == m_plan->fetches[fetch].read.path &&
          s.version == m_plan->fetches[fetch].read.version) {
        return s.name;
      }
    }
  }
  return m_plan->fetches[fetch].read.path;
}

void Session::redact_values(std::size_t fetch) {
  std::vector<const util::SecureString*> values;
  collect_strings(m_fetched[fetch].data, values);
  const std::string name = name_of(fetch);
  for (const auto* v : values) {
    m_child.redact(name, util::Secret(*v));
  }
}

Resolver Session::resolver() const {
  return Resolver(m_plan, m_fetched, m_credentials);
}

void Session::begin(Clock::time_point now) {
  m_now = now;
  for (std::size_t i = 0; i < m_fetched.size(); ++i) {
    redact_values(i);
  }
  for (const auto& [name, c] : m_credentials) {
    m_child.redact("arvados:credential/" + name, c.secret);
    m_child.redact("arvados:credential/" + name, c.external_id);
  }
  try {
    const LeaseAnswer a = m_vault.lookup_token();
    if (a.ttl > 0) {
      Lease t;
      t.id = "token";
      t.state = supervise::granted_lease(now, supervise::lease_seconds(a.ttl), a.renewable);
      t.increment = supervise::lease_seconds(a.ttl);
      m_token = std::move(t);
    }
  } catch (const Error& e) {
    util::log::warning("supervise: cannot look up the token's TTL ({}); it is not renewed",
                       e.what());
  }
  for (const auto& l : m_leases) {
    util::log::debug("supervise: holding {} of {} (ttl {}s, {})", lease_tag(l.id), name_of(l.fetch),
                     l.state.ttl.count(), l.state.renewable ? "renewable" : "not renewable");
  }
}

Session::Clock::time_point Session::due(const Lease& lease) const {
  if (lease.state.ttl <= Seconds{0}) {
    return Clock::time_point::max();
  }
  const auto step = supervise::next_step(lease.state, m_now, m_settings.policy);
  if (step.kind == StepKind::expired && lease.expired_reported) {
    // Past expiry: keep trying to fetch new credentials, backing off.
    return lease.state.last_failure + supervise::backoff(lease.state.failures, m_settings.policy);
  }
  if (step.kind == StepKind::refetch && lease.state.failures == 0 && lease.increment > Seconds{0}) {
    // A lease capped by max_ttl may have only a sliver left: 2/3 of that sliver would leave
    // the child too little time to switch. New credentials come at least a third of a full
    // lease before the old ones end, as they would at a normal renewal.
    const auto margin = std::chrono::duration_cast<Millis>(lease.increment) / 3;
    return std::max(lease.state.granted, std::min(step.at, lease.state.expires() - margin));
  }
  return step.at;
}

Session::Clock::time_point Session::next_wakeup() {
  auto t = Clock::time_point::max();
  for (const auto& l : m_leases) {
    t = std::min(t, due(l));
  }
  if (m_token && !m_token->expired_reported) {
    t = std::min(t, due(*m_token));
  }
  for (const auto& p : m_polls) {
    t = std::min(t, p.next);
  }
  if (m_stop.active && !m_stop.killed) {
    t = std::min(t, m_stop.kill_at);
  }
  return t;
}

void Session::on_timer(Clock::time_point now) {
  m_now = now;
  if (m_stop.active && !m_stop.killed && now >= m_stop.kill_at) {
    util::log::warning(
        "supervise: the child did not stop within the grace period; sending SIGKILL");
    m_child.signal(SIGKILL);
    m_stop.killed = true;
  }
  if (m_token && !m_token->expired_reported && due(*m_token) <= now) {
    handle_token(now);
  }
  // Work on a copy of the indexes: a re-fetch replaces the entry it works on.
  std::vector<std::size_t> fetches;
  for (const auto& l : m_leases) {
    if (due(l) <= now) {
      fetches.push_back(l.fetch);
    }
  }
  for (std::size_t fetch : fetches) {
    auto it = std::find_if(m_leases.begin(), m_leases.end(),
                           [&](const Lease& l) { return l.fetch == fetch; });
    if (it == m_leases.end()) {
      continue;
    }
    const auto step = supervise::next_step(it->state, now, m_settings.policy);
    if (step.kind == StepKind::renew) {
      renew(*it, now);
    } else if (step.kind == StepKind::expired) {
      expired(*it, now);
      refetch(fetch, now);
    } else {
      refetch(fetch, now);
    }
  }
  for (auto& p : m_polls) {
    if (p.next <= now) {
      poll(p, now);
    }
  }
}

void Session::renew(Lease& lease, Clock::time_point now) {
  try {
    const LeaseAnswer a = m_vault.renew_lease(lease.id, lease.increment.count());
    if (a.ttl <= 0) {
      // A renewal that grants nothing (0, negative, missing or not a number: a broken or
      // hostile answer) extends nothing: treat it as refused and fetch new credentials.
      throw Error(ExitCode::protocol, "Vault's answer grants no lease_duration");
    }
    lease.state = supervise::after_renewal(lease.state, now, supervise::lease_seconds(a.ttl),
                                           a.renewable, lease.increment);
    ++m_stats.renewals;
    util::log::debug("supervise: renewed {} of {}: ttl {}s{}", lease_tag(lease.id),
                     name_of(lease.fetch), a.ttl,
                     lease.state.final ? " (cannot be extended further: new credentials before "
                                         "it expires)"
                                       : "");
  } catch (const Error& e) {
    ++m_stats.failures;
    const bool refused = !can_retry(e);
    lease.state = supervise::after_failure(lease.state, now, refused);
    util::log::warning("supervise: renewing {} of {} failed ({}); {}", lease_tag(lease.id),
                       name_of(lease.fetch), e.what(),
                       refused ? "fetching new credentials" : "retrying");
  }
}

void Session::refetch(std::size_t fetch, Clock::time_point now) {
  vault::ReadSpec spec = m_plan->fetches[fetch].read;
  try {
    vault::Fetched f = m_vault.read(spec);
    changed(fetch, std::move(f), now);
  } catch (const Error& e) {
    ++m_stats.failures;
    for (auto& l : m_leases) {
      if (l.fetch == fetch) {
        l.state = supervise::after_failure(l.state, now, false);
      }
    }
    util::log::warning("supervise: fetching new credentials for {} failed ({}); retrying; the "
                       "current files are kept",
                       name_of(fetch), e.what());
  }
}

void Session::poll(Poll& p, Clock::time_point now) {
  try {
    const std::uint64_t version = m_vault.kv2_current_version(p.metadata_path);
    p.failures = 0;
    p.next = now + policy_of(p.fetch).refresh;
    if (version == p.version) {
      util::log::debug("supervise: {} unchanged (version {})", name_of(p.fetch), version);
      return;
    }
    vault::Fetched f = m_vault.read(m_plan->fetches[p.fetch].read);
    p.version = f.version.value_or(version);
    util::log::debug("supervise: {} changed to version {}", name_of(p.fetch), p.version);
    changed(p.fetch, std::move(f), now);
  } catch (const Error& e) {
    ++m_stats.failures;
    ++p.failures;
    p.next = now + std::min<Millis>(supervise::backoff(p.failures, m_settings.policy),
                                    policy_of(p.fetch).refresh);
    util::log::warning("supervise: re-reading {} failed ({}); the current files are kept",
                       name_of(p.fetch), e.what());
  }
}

void Session::handle_token(Clock::time_point now) {
  Lease& t = *m_token;
  const auto step = supervise::next_step(t.state, now, m_settings.policy);
  if (step.kind == StepKind::renew) {
    try {
      const LeaseAnswer a = m_vault.renew_token(t.increment.count());
      if (a.ttl <= 0) {
        throw Error(ExitCode::protocol, "Vault's answer grants no lease_duration");
      }
      t.state = supervise::after_renewal(t.state, now, supervise::lease_seconds(a.ttl), a.renewable,
                                         t.increment);
      ++m_stats.token_renewals;
      util::log::debug("supervise: renewed the token: ttl {}s", a.ttl);
      return;
    } catch (const Error& e) {
      ++m_stats.failures;
      t.state = supervise::after_failure(t.state, now, !can_retry(e));
      util::log::warning("supervise: renewing the token failed ({}); retrying", e.what());
      if (can_retry(e)) {
        return;
      }
    }
  }
  // The token cannot be extended: leases it created end with it. Say so once.
  t.expired_reported = true;
  util::log::warning("supervise: the Vault token cannot be renewed further and expires in {} s; "
                     "dynamic credentials end with it (give the role a longer token max TTL)",
                     std::max<long long>(0, ms_until(now, t.state.expires()) / 1000));
}

void Session::expired(Lease& lease, Clock::time_point now) {
  if (lease.expired_reported) {
    return;
  }
  lease.expired_reported = true;
  util::log::write(
      util::log::Level::error,
      fmt::format(
          "supervise: the credentials of {} ({}) expired before new ones could be fetched; {}",
          name_of(lease.fetch), lease_tag(lease.id),
          m_settings.on_expiry == ExpiryAction::stop
              ? "stopping the child"
              : "the child keeps running (on_expiry: keep)"));
  if (m_settings.on_expiry == ExpiryAction::stop) {
    begin_stop(false, now);
  }
}

void Session::changed(std::size_t fetch, vault::Fetched data, Clock::time_point now) {
  const std::string old_lease = [&] {
    for (const auto& l : m_leases) {
      if (l.fetch == fetch) {
        return l.id;
      }
    }
    return std::string();
  }();
  m_fetched[fetch] = std::move(data);
  add_lease(fetch, m_fetched[fetch], now);
  redact_values(fetch);
  ++m_stats.rotations;

  // Which sinks use this fetch.
  std::vector<std::size_t> files;
  for (std::size_t i = 0; i < m_plan->files.size(); ++i) {
    const FileSpec& f = m_plan->files[i];
    bool uses = f.source && m_plan->fetch_for(*f.source) == fetch;
    for (const auto& seg : f.body.segments) {
      uses = uses || (seg.ref && m_plan->fetch_for(*seg.ref) == fetch);
    }
    if (uses) {
      files.push_back(i);
    }
  }
  std::vector<std::string> env_users;
  for (const auto& e : m_plan->env) {
    for (const auto& seg : e.value.segments) {
      if (seg.ref && m_plan->fetch_for(*seg.ref) == fetch) {
        env_users.push_back(e.name);
        break;
      }
    }
  }
  const Resolver r = resolver();
  if (!files.empty()) {
    try {
      m_child.rewrite_files(files, r);
    } catch (const Error& e) {
      util::log::warning("supervise: re-rendering the files of {} failed ({}); the old files "
                         "are kept",
                         name_of(fetch), e.what());
    }
  }
  const SecretPolicy action = policy_of(fetch);
  const std::string new_tag =
      m_fetched[fetch].lease_id.empty() ? "no lease" : lease_tag(m_fetched[fetch].lease_id);
  util::log::info("supervise: rotated {}: {} -> {}, {} file(s) rewritten, action {}",
                  name_of(fetch), old_lease.empty() ? "no lease" : lease_tag(old_lease), new_tag,
                  files.size(),
                  action.on_change == ChangeAction::signal
                      ? fmt::format("signal {}", action.change_signal)
                      : (action.on_change == ChangeAction::restart ? "restart" : "none"));
  switch (action.on_change) {
  case ChangeAction::signal:
    if (!env_users.empty()) {
      util::log::warning("supervise: {} changed; the environment variable {} keeps its old "
                         "value until the child restarts (on_change: restart)",
                         name_of(fetch), env_users.front());
    }
    m_child.signal(action.change_signal);
    break;
  case ChangeAction::restart:
    begin_stop(true, now);
    break;
  case ChangeAction::none:
    break;
  }
}

void Session::begin_stop(bool for_restart, Clock::time_point now) {
  if (m_stop.active) {
    m_stop.for_restart = m_stop.for_restart && for_restart;
    return;
  }
  m_stop.active = true;
  m_stop.for_restart = for_restart;
  m_stop.killed = false;
  m_stop.kill_at = now + m_settings.grace;
  m_child.signal(m_settings.stop_signal);
}

bool Session::on_child_exit(int /*wait_status*/) {
  if (m_stop.active && m_stop.for_restart) {
    m_stop = Stop{};
    util::log::debug("supervise: restarting the child with the new credentials");
    m_child.start(resolver());
    return false;
  }
  return true;
}

int Session::shutdown() {
  int failed = 0;
  std::vector<std::string> ids = m_retired;
  for (const auto& l : m_leases) {
    ids.push_back(l.id);
  }
  for (const auto& id : ids) {
    try {
      m_vault.revoke_lease(id);
      util::log::debug("supervise: revoked {}", lease_tag(id));
    } catch (const Error& e) {
      ++failed;
      util::log::warning("supervise: revoking {} failed ({})", lease_tag(id), e.what());
    }
  }
  m_leases.clear();
  m_retired.clear();
  if (m_settings.revoke_token) {
    try {
      m_vault.revoke_token();
      util::log::debug("supervise: revoked the token");
    } catch (const Error& e) {
      ++failed;
      util::log::warning("supervise: revoking the token failed ({})", e.what());
    }
  }
  return failed;
}

} // namespace cs::core
