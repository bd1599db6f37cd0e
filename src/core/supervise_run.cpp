#include "crunchsecrets/core/supervise_run.hpp"

#include "crunchsecrets/core/credentials.hpp"
#include "crunchsecrets/core/deliver.hpp"
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/supervise.hpp"
#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/util/stop.hpp"
#include "crunchsecrets/vault/curl_transport.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>
#include <unistd.h>

namespace cs::core {

namespace {

using Clock = supervise::Clock;

// How long one round of Vault requests may retry while the child runs. The supervisor's loop
// waits for it (output and signals queue meanwhile), so it is short; the session's own backoff
// spaces the rounds.
constexpr std::chrono::seconds k_round_budget{2};

// The session's Vault requests, made with the logged-in client.
class ClientOps : public VaultOps {
public:
  explicit ClientOps(vault::Client& client) : m_client(client) {}
  vault::Fetched read(const vault::ReadSpec& spec) override {
    arm();
    return m_client.read(spec);
  }
  std::uint64_t kv2_current_version(const std::string& metadata_path) override {
    arm();
    return m_client.kv2_current_version(metadata_path);
  }
  LeaseAnswer renew_lease(const std::string& lease_id, std::int64_t increment) override {
    arm();
    return answer(m_client.renew_lease(lease_id, increment));
  }
  LeaseAnswer lookup_token() override {
    arm();
    return answer(m_client.lookup_self());
  }
  LeaseAnswer renew_token(std::int64_t increment) override {
    arm();
    return answer(m_client.renew_self(increment));
  }
  void revoke_lease(const std::string& lease_id) override {
    arm();
    m_client.revoke_lease(lease_id);
  }
  void revoke_token() override {
    arm();
    m_client.revoke_self();
  }

private:
  void arm() { m_client.set_deadline(vault::Clock::now() + k_round_budget); }
  static LeaseAnswer answer(const vault::LeaseInfo& info) { return {info.ttl, info.renewable}; }
  vault::Client& m_client;
};

// The session's effects on the child: files rewritten in place, signals, (re)starts, and
// redaction of the child's output.
class SupervisorEffects : public ChildEffects {
public:
  SupervisorEffects(supervise::Supervisor& sup, const Plan& plan, const SuperviseContext& ctx,
                    bool own_group)
      : m_sup(sup), m_plan(plan), m_ctx(ctx), m_own_group(own_group) {}

  void set_files(FileDelivery* files) { m_files = files; }

  void rewrite_files(const std::vector<std::size_t>& files, const Resolver& resolver) override {
    if (m_files != nullptr) {
      m_files->rewrite(m_plan, files, resolver);
    }
  }
  void signal(int signo) override { m_sup.signal_child(signo); }
  void start(const Resolver& resolver) override {
    // After the first start errors are never thrown through the supervisor: a restart that
    // cannot render its environment ends the run like a failed exec, with the error's code.
    try {
      spawn(resolver);
    } catch (const Error& e) {
      util::log::write(util::log::Level::error, e.what(), static_cast<int>(e.code()));
      m_exec_errno = EINVAL;
      m_failed_status = static_cast<int>(e.code());
    }
  }
  void redact(const std::string& name, const util::Secret& value) override {
    m_sup.redact(name, value);
  }

  // Set when the last start failed: the status to exit with (127 not found, 126 otherwise).
  int failed_status() const { return m_exec_errno != 0 ? m_failed_status : 0; }

private:
  void spawn(const Resolver& resolver) {
    std::vector<util::Secret> argv = build_child_argv(m_plan, &resolver);
    ChildEnvOptions env_options;
    env_options.pass_auth_env = m_ctx.pass_auth_env;
    env_options.scrub_arvados_token = m_ctx.scrub_arvados_token;
    if (!m_plan.files.empty()) {
      env_options.secrets_dir = m_ctx.secrets_dir;
    }
    EnvBlock env = build_child_env(m_ctx.environ, m_plan, &resolver, env_options);
    std::vector<char*> argv_ptrs;
    for (auto& a : argv) {
      argv_ptrs.push_back(const_cast<char*>(a.reveal().data()));
    }
    argv_ptrs.push_back(nullptr);
    std::vector<char*> env_ptrs;
    for (auto& e : env) {
      env_ptrs.push_back(const_cast<char*>(e.reveal().data()));
    }
    env_ptrs.push_back(nullptr);
    supervise::SpawnOptions spawn_options;
    spawn_options.own_process_group = m_own_group;
    const supervise::Spawned s = m_sup.spawn(argv_ptrs.data(), env_ptrs.data(), spawn_options);
    m_exec_errno = s.exec_errno;
    if (s.exec_errno != 0) {
      m_failed_status = s.exec_errno == ENOENT || s.exec_errno == ENOTDIR ? 127 : 126;
      util::log::write(util::log::Level::error,
                       fmt::format("cannot execute '{}': {}", m_plan.argv_text.front(),
                                   std::strerror(s.exec_errno)),
                       m_failed_status);
    } else {
      util::log::debug("supervise: started '{}' as pid {}", m_plan.argv_text.front(), s.pid);
    }
  }

  supervise::Supervisor& m_sup;
  const Plan& m_plan;
  const SuperviseContext& m_ctx;
  bool m_own_group;
  FileDelivery* m_files = nullptr;
  int m_exec_errno = 0;
  int m_failed_status = 0;
};

// The session as the supervisor's hooks, ending the loop when a restart could not exec.
class RunHooks : public supervise::Hooks {
public:
  RunHooks(Session& session, SupervisorEffects& effects) : m_session(session), m_effects(effects) {}
  Clock::time_point next_wakeup() override { return m_session.next_wakeup(); }
  void on_timer(Clock::time_point now) override { m_session.on_timer(now); }
  bool on_child_exit(int wait_status) override {
    const bool done = m_session.on_child_exit(wait_status);
    return done || m_effects.failed_status() != 0;
  }

private:
  Session& m_session;
  SupervisorEffects& m_effects;
};

// The settings of this run: the manifest's `supervise:` block and per-secret fields, and the
// command line.
SuperviseSettings settings_for(const Plan& plan, const SuperviseContext& ctx, AuthMethod method) {
  SuperviseSettings s;
  const Manifest* m = plan.manifest.get();
  if (m != nullptr) {
    if (m->supervise.stop_signal != 0) {
      s.stop_signal = m->supervise.stop_signal;
    }
    if (m->supervise.grace) {
      s.grace = *m->supervise.grace;
    }
    if (!m->supervise.on_expiry.empty()) {
      s.on_expiry = expiry_action_from(m->supervise.on_expiry).value_or(ExpiryAction::stop);
    }
  }
  // Only a token crunch-secrets obtained itself is revoked; one the user passed in is theirs.
  s.revoke_token = !ctx.options.keep_token && method != AuthMethod::token;
  for (const auto& f : plan.fetches) {
    SecretPolicy p{s.on_change, s.change_signal, s.refresh};
    const SecretSpec* spec = nullptr;
    if (m != nullptr) {
      for (const auto& candidate : m->secrets) {
        if (candidate.path == f.read.path && candidate.version == f.read.version) {
          spec = &candidate;
          break;
        }
      }
    }
    if (spec != nullptr) {
      if (!spec->on_change.empty()) {
        p.on_change = change_action_from(spec->on_change).value_or(ChangeAction::signal);
      }
      if (spec->change_signal != 0) {
        p.change_signal = spec->change_signal;
      }
      if (spec->refresh) {
        p.refresh = *spec->refresh;
      }
    }
    s.per_fetch.push_back(p);
  }
  return s;
}

supervise::SupervisorOptions supervisor_options(const Plan& plan, const SuperviseContext& ctx) {
  supervise::SupervisorOptions o;
  const bool redact = ctx.options.redact || (plan.manifest && plan.manifest->supervise.redact);
  if (redact) {
    // A terminal stays a terminal for the child (colour, window size, line buffering): it
    // gets a pseudo-terminal whose output crunch-secrets filters.
    o.stdout_mode = ::isatty(1) == 1 ? supervise::OutputMode::pty : supervise::OutputMode::pipe;
    o.stderr_mode = ::isatty(2) == 1 ? supervise::OutputMode::pty : supervise::OutputMode::pipe;
  }
  o.forward_to_group =
      ctx.options.signal_group || (plan.manifest && plan.manifest->supervise.signal_group);
  return o;
}

// The session's Vault when the plan reads nothing from Vault: nothing to renew or revoke.
struct NoVault : VaultOps {
  vault::Fetched read(const vault::ReadSpec&) override { return {}; }
  std::uint64_t kv2_current_version(const std::string&) override { return 0; }
  LeaseAnswer renew_lease(const std::string&, std::int64_t) override { return {}; }
  LeaseAnswer lookup_token() override { return {}; }
  LeaseAnswer renew_token(std::int64_t) override { return {}; }
  void revoke_lease(const std::string&) override {}
  void revoke_token() override {}
};

// How long before an Arvados credential's expires_at supervise mode warns at the start: the
// credential is delivered once and never refreshed (Arvados has no renewal), so a job that
// outlives it works on with an expired secret.
constexpr std::chrono::hours k_credential_warning{24};

// Says, for each Arvados credential that expires within `k_credential_warning`, when it does.
void warn_of_expiry(const CredentialValues& credentials) {
  const long long now = static_cast<long long>(std::time(nullptr));
  for (const auto& [name, c] : credentials) {
    const auto at = arvados::parse_rfc3339(c.info.expires_at);
    if (!at) {
      continue;
    }
    const long long left = *at - now;
    if (left < std::chrono::duration_cast<std::chrono::seconds>(k_credential_warning).count()) {
      util::log::warning("supervise: Arvados credential {} expires at {} (in {} min): supervise "
                         "mode delivers it once and cannot refresh it; a job running longer "
                         "works on with an expired credential",
                         name, c.info.expires_at, std::max(0LL, left / 60));
    }
  }
}

// The Vault side of a supervised run; the client refers to the transport, so they live together.
// The stop action (revoke_on_stop) refers to the client: `stop`, declared last, is destroyed
// first and disarms it, so that however the run ends no handler or action outlives the client.
struct SupervisedVault {
  std::optional<vault::CurlTransport> transport;
  std::optional<vault::Client> client;
  std::vector<vault::Fetched> fetched;
  AuthMethod method = AuthMethod::token;
  util::stop::Guard stop;
};

// From the fetch until the session owns the token and the leases (its shutdown revokes them),
// a failure revokes the token crunch-secrets obtained here, its leases with it
// (revoke_after_failure). Declared after the Vault side and the signal block, it acts before
// either goes.
class RevokeUntilSession {
public:
  RevokeUntilSession(SupervisedVault& v, const SuperviseContext& ctx) : m_v(v), m_ctx(ctx) {}
  RevokeUntilSession(const RevokeUntilSession&) = delete;
  RevokeUntilSession& operator=(const RevokeUntilSession&) = delete;
  ~RevokeUntilSession() {
    if (!m_released) {
      revoke_after_failure(m_v.client, m_ctx.config, m_ctx.options.keep_token);
    }
  }
  // The session took over.
  void release() { m_released = true; }

private:
  SupervisedVault& m_v;
  const SuperviseContext& m_ctx;
  bool m_released = false;
};

// Logs in and reads; Vault and the Arvados credentials API are asked at the same time, as in
// exec mode. A stop signal from the login until run_supervised disarms it revokes the token
// obtained (revoke_on_stop), and so does a failure here (revoke_after_failure).
CredentialValues fetch_supervised(const Plan& plan, const SuperviseContext& ctx,
                                  vault::Clock::time_point start, SupervisedVault& v) {
  try {
    return with_credentials(plan, ctx.env, ctx.auth.arvados_token_file, start + ctx.wait, [&] {
      if (!plan.fetches.empty()) {
        v.transport.emplace(ctx.config);
        v.client.emplace(ctx.config, *v.transport, start + ctx.wait);
        v.method = choose_method(ctx.auth, ctx.env);
        revoke_on_stop(v.client, ctx.config, ctx.options.keep_token);
        login(*v.client, ctx.auth, ctx.env);
        v.fetched = v.client->read_all(reads_of(plan));
      }
    });
  } catch (...) {
    revoke_after_failure(v.client, ctx.config, ctx.options.keep_token);
    throw;
  }
}

} // namespace

bool wants_supervise(const SuperviseOptions& options, const Plan& plan) {
  return options.supervise || options.redact || options.signal_group ||
         (plan.manifest && plan.manifest->wants_supervise());
}

int run_supervised(const std::shared_ptr<const Plan>& shared_plan, const SuperviseContext& ctx) {
  const Plan& plan = *shared_plan;
  SupervisedVault v;
  CredentialValues credentials = fetch_supervised(plan, ctx, vault::Clock::now(), v);
  // From here on crunch-secrets holds leases and writes files: signals are blocked (a Ctrl-C
  // during a long login still ends it at once, after revoking the token) and read from a
  // signalfd once the child runs; a SIGTERM meanwhile waits and is forwarded to the child. A
  // stop that arrived before the block is acted on (the token revoked) when disarming.
  supervise::SignalBlock block;
  // Declared after the block so that it is destroyed first: a failure before the session
  // takes over revokes while signals are still blocked, and a stop signal that waited is
  // delivered only after that, when the block restores the mask.
  RevokeUntilSession revoke_until_session(v, ctx);
  util::stop::disarm_or_act();
  warn_of_expiry(credentials);
  const supervise::SupervisorOptions sopts = supervisor_options(plan, ctx);
  supervise::Supervisor sup(block, sopts);
  SupervisorEffects effects(sup, plan, ctx, sopts.forward_to_group);
  std::optional<ClientOps> ops;
  // A plan without fetches still runs supervised (signals, reaping, exit status).
  NoVault no_vault;
  VaultOps* vault_ops = &no_vault;
  if (v.client) {
    vault_ops = &ops.emplace(*v.client);
  }
  SuperviseSettings settings = settings_for(plan, ctx, v.method);
  if (!v.client) {
    settings.revoke_token = false;
  }
  Session session(shared_plan, v.fetched, *vault_ops, effects, settings, Clock::now(),
                  std::move(credentials));
  revoke_until_session.release();
  std::optional<FileDelivery> files;
  try {
    session.begin(Clock::now());
    const Resolver resolver = session.resolver();
    resolver.check_engines();
    // Render everything before writing anything (build_child_* throw on a missing key).
    build_child_argv(plan, &resolver);
    if (!plan.files.empty()) {
      files.emplace(FileDelivery::write(plan, resolver,
                                        SecretsDirOptions{ctx.secrets_dir, ctx.allow_non_tmpfs}));
      effects.set_files(&*files);
      util::log::debug("wrote {} file(s) in {}", files->count(), ctx.secrets_dir);
    }
    effects.start(resolver);
  } catch (...) {
    session.shutdown();
    throw;
  }
  int status = 0;
  if (effects.failed_status() != 0) {
    status = effects.failed_status();
  } else {
    RunHooks hooks(session, effects);
    status = sup.run(hooks);
    if (effects.failed_status() != 0) {
      status = effects.failed_status();
    }
  }
  const int failed = session.shutdown();
  if (files) {
    files->remove_all();
  }
  const auto& st = session.stats();
  util::log::debug(
      "supervise: done, exit status {}: {} lease renewal(s), {} token renewal(s), {} "
      "rotation(s), {} failed request round(s), {} failed revocation(s); files removed",
      status, st.renewals, st.token_renewals, st.rotations, st.failures, failed);
  return status;
}

} // namespace cs::core

namespace cs::core {

// Supervise mode's re-rendering (declared with FileDelivery): every file is rendered first,
// so a missing key leaves all old files in place; each then replaces its predecessor by
// rename, so a reader sees the old or the new content, never a mix.
void FileDelivery::rewrite(const Plan& plan, const std::vector<std::size_t>& indexes,
                           const Resolver& resolver) {
  std::vector<util::Secret> contents;
  contents.reserve(indexes.size());
  for (std::size_t i : indexes) {
    contents.push_back(resolver.render_file(plan.files.at(i)));
  }
  for (std::size_t k = 0; k < indexes.size(); ++k) {
    const std::size_t i = indexes[k];
    const FileSpec& f = plan.files[i];
    if (i >= m_files.size()) {
      continue;
    }
    // The new file goes into the directory of the one it replaces.
    auto owned = std::make_unique<util::AtomicFile>(
        value_or_throw(util::AtomicFile::create(m_files[i]->dir_fd(), m_files[i]->name(), f.mode),
                       ExitCode::cannot_create, "file {} ({}): {}", f.path, f.origin));
    ok_or_throw(owned->write_all(contents[k].reveal()), ExitCode::cannot_create, "file {} ({}): {}",
                f.path, f.origin);
    contents[k].clear();
    ok_or_throw(owned->commit(), ExitCode::cannot_create, "file {} ({}): {}", f.path, f.origin);
    m_files[i] = std::move(owned);
  }
}

} // namespace cs::core
