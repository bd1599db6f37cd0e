#include "crunchsecrets/core/commands.hpp"

#include "crunchsecrets/core/credentials.hpp"
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/markers.hpp"
#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/util/stop.hpp"
#include "crunchsecrets/util/text.hpp"
#include "crunchsecrets/vault/curl_transport.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sys/prctl.h>
#include <sys/stat.h>

extern char** environ;

namespace cs::core {

namespace {

std::vector<std::string> current_environ() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    out.emplace_back(*e);
  }
  return out;
}

std::optional<std::string> getenv_opt(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) {
    return std::nullopt;
  }
  return std::string(v);
}

std::string secrets_dir(const CommonOptions& o, const Manifest* m) {
  if (!o.secrets_dir.empty()) {
    return o.secrets_dir;
  }
  if (m != nullptr && !m->secrets_dir.empty()) {
    return m->secrets_dir;
  }
  if (auto env = getenv_opt("CRUNCH_SECRETS_DIR"); env && !env->empty()) {
    return *env;
  }
  return "/dev/shm/crunch-secrets";
}

// The plan (which owns the manifest) and the secrets directory of a run.
struct Prepared {
  std::shared_ptr<const Plan> plan;
  std::string dir;
};

Prepared prepare(const CommonOptions& o) {
  Prepared p;
  // The zero-flag markers (markers.hpp): the manifest and argv substitution can be asked for
  // by the container's environment alone.
  const ManifestSource source =
      find_manifest_source(o.manifest, o.no_manifest, getenv_opt, file_exists);
  PlanInput in;
  in.manifest = load_manifest_source(source);
  if (in.manifest) {
    util::log::debug("manifest {}", source.name);
  }
  in.environ = without_manifest_marker(current_environ());
  in.env_refs = !o.no_env_refs;
  in.argv_templates = o.argv_templates || argv_marker(getenv_opt);
  in.argv = o.command;
  p.plan = std::make_shared<const Plan>(build_plan(in));
  p.dir = secrets_dir(o, in.manifest.get());
  // Before anything is read or sent, so that `check` finds it too.
  refuse_second_stdin_reader(merge_auth(o.auth, in.manifest.get(), getenv_opt),
                             StdinUse{!p.plan->fetches.empty(), !p.plan->credentials.empty()},
                             getenv_opt);
  return p;
}

vault::Config vault_config(const CommonOptions& o) {
  vault::Config c = vault::config_from_env(getenv_opt);
  if (!o.vault_addr.empty()) {
    c.address = vault::normalize_address(o.vault_addr, "--vault-addr");
  }
  return c;
}

// The users of each fetch, for the plan listing.
std::vector<std::vector<std::string>> users_of(const Plan& plan) {
  std::vector<std::vector<std::string>> users(plan.fetches.size());
  auto add = [&](const Ref& ref, const std::string& who) {
    if (const std::size_t i = plan.fetch_for(ref); i != Plan::k_no_fetch) {
      users[i].push_back(who);
    }
  };
  auto note = [&](const Template& t, const std::string& who) {
    for (const auto& seg : t.segments) {
      if (seg.ref) {
        add(*seg.ref, who);
      }
    }
  };
  for (const auto& e : plan.env) {
    note(e.value, "env " + e.name);
  }
  for (const auto& f : plan.files) {
    if (f.format == FileFormat::templated) {
      note(f.body, "file " + f.path);
    } else if (f.source) {
      add(*f.source, "file " + f.path);
    }
  }
  for (std::size_t i = 0; i < plan.argv.size(); ++i) {
    note(plan.argv[i], i == 0 ? std::string("COMMAND") : fmt::format("argument {}", i));
  }
  return users;
}

std::string refs_text(const Template& t) {
  std::string out;
  for (const auto& seg : t.segments) {
    if (seg.ref) {
      out += (out.empty() ? "" : ", ") + describe(*seg.ref);
    }
  }
  return out;
}

} // namespace

namespace {

// Supervise mode: crunch-secrets stays the parent of COMMAND (docs/supervise.md).
int run_supervised_command(const CommonOptions& o, const Prepared& p) {
  const Plan& plan = *p.plan;
  return run_supervised(
      p.plan, SuperviseContext{vault_config(o), merge_auth(o.auth, plan.manifest.get(), getenv_opt),
                               getenv_opt, current_environ(), p.dir, o.allow_non_tmpfs,
                               o.pass_auth_env, o.scrub_arvados_token, o.wait, o.supervise});
}

// The Vault connection of a run; the client refers to the configuration and the transport, so
// the three live together. The stop action (revoke_on_stop) refers to the client and the
// configuration: `stop`, declared last, is destroyed first and disarms it, so that however the
// run ends no handler or action outlives them.
struct VaultConnection {
  std::optional<vault::Config> config;
  std::optional<vault::CurlTransport> transport;
  std::optional<vault::Client> client;
  util::stop::Guard stop;
};

// After a failure from the login on: the token obtained is revoked unless kept, and the stop
// disarmed (revoke_after_failure). Without a connection there is only the stop to disarm.
void fail_after_login(VaultConnection& vc, bool keep_token) noexcept {
  if (vc.config) {
    revoke_after_failure(vc.client, *vc.config, keep_token);
  } else {
    util::stop::disarm_or_act();
  }
}

// What a run read: Vault's answers in the order of `plan.fetches`, and the Arvados credentials.
struct RunData {
  std::vector<vault::Fetched> fetched;
  CredentialValues credentials;
  std::string leased; // the first fetch that holds a lease, if any
};

// Logs in and reads everything the plan needs; Vault and the Arvados credentials API are asked
// at the same time.
RunData fetch_for_run(const CommonOptions& o, const Plan& plan, VaultConnection& vc,
                      vault::Clock::time_point start) {
  const auto deadline = start + o.wait;
  RunData data;
  const AuthOptions auth = merge_auth(o.auth, plan.manifest.get(), getenv_opt);
  // A stop signal from the login on revokes the token obtained (revoke_on_stop); run_command
  // disarms it once the token is revoked or kept, or after a failure (fail_after_login).
  const auto vault_part = [&] {
    if (plan.fetches.empty()) {
      return;
    }
    vc.config.emplace(vault_config(o));
    vc.transport.emplace(*vc.config);
    vc.client.emplace(*vc.config, *vc.transport, deadline);
    revoke_on_stop(vc.client, *vc.config, o.supervise.keep_token);
    login(*vc.client, auth, getenv_opt);
    data.fetched = vc.client->read_all(reads_of(plan));
    for (std::size_t i = 0; i < data.fetched.size() && data.leased.empty(); ++i) {
      if (!data.fetched[i].lease_id.empty()) {
        data.leased = plan.fetches[i].read.describe;
      }
    }
    util::log::debug(
        "fetched {} secret(s) with {} request(s) over {} new connection(s) ({}) in {} ms",
        plan.fetches.size(), vc.transport->requests_sent(), vc.transport->connections_opened(),
        vc.transport->protocol(),
        std::chrono::duration_cast<std::chrono::milliseconds>(vault::Clock::now() - start).count());
  };
  data.credentials =
      with_credentials(plan, getenv_opt, auth.arvados_token_file, deadline, vault_part);
  return data;
}

// What the command gets, rendered in memory before anything is written.
struct ExecInputs {
  std::optional<Resolver> resolver;
  std::vector<util::Secret> argv;
  EnvBlock env;
};

// Renders everything before writing anything, so a missing key leaves nothing behind.
void render_for_exec(const CommonOptions& o, const Prepared& p, RunData& data, ExecInputs& in) {
  const Plan& plan = *p.plan;
  // Without fetches (literal-only templates) the resolver has nothing to look up but still
  // renders, so every sink has one.
  const Resolver& resolver =
      in.resolver.emplace(p.plan, std::move(data.fetched), std::move(data.credentials));
  resolver.check_engines();
  in.argv = build_child_argv(plan, &resolver);
  ChildEnvOptions env_options;
  env_options.pass_auth_env = o.pass_auth_env;
  env_options.scrub_arvados_token = o.scrub_arvados_token;
  if (!plan.files.empty()) {
    env_options.secrets_dir = p.dir;
  }
  in.env = build_child_env(current_environ(), plan, &resolver, env_options);
}

// The token crunch-secrets obtained is useless to the command and must not outlive the run
// (SECURITY.md, "Token revocation") unless a delivered secret's lease depends on it. Returns the
// token when it is kept for such a lease, so that a run which then fails to deliver (files,
// exec) can still revoke it; otherwise an empty secret.
util::Secret revoke_own_token(vault::Client& client, bool keep_token, const std::string& leased) {
  if (!client.owns_token()) {
    return {};
  }
  if (keep_token) {
    util::log::debug("keeping crunch-secrets' Vault token (--keep-token)");
  } else if (!leased.empty()) {
    util::log::debug("keeping crunch-secrets' Vault token: {} holds a lease that revoking it "
                     "would revoke too",
                     leased);
    return client.token();
  } else {
    try {
      client.revoke_self();
      util::log::debug("revoked crunch-secrets' Vault token (--keep-token keeps it)");
    } catch (const Error& e) {
      // The secrets are read; a token that could not be revoked expires at its TTL.
      util::log::warning("could not revoke crunch-secrets' Vault token, which stays valid until "
                         "its TTL ends: {}",
                         e.what());
    }
  }
  return {};
}

// Writes the plan's files. From the first file written to exec, SIGTERM and the like wait, so
// they cannot leave temporary or half-delivered files behind; one that arrived is acted on
// after cleaning up and running `before_dying`.
std::optional<FileDelivery> write_run_files(const Plan& plan, const Resolver& resolver,
                                            const std::string& dir, bool allow_non_tmpfs,
                                            const std::function<void()>& before_dying) {
  if (plan.files.empty()) {
    return std::nullopt;
  }
  BlockedSignals blocked;
  FileDelivery files = FileDelivery::write(plan, resolver, SecretsDirOptions{dir, allow_non_tmpfs});
  util::log::debug("wrote {} file(s) in {}", files.count(), dir);
  if (const int sig = blocked.pending()) {
    files.remove_all();
    before_dying();
    blocked.die_of(sig);
  }
  blocked.restore();
  return files;
}

} // namespace

int run_command(const CommonOptions& o) {
  // No core dumps or ptrace by other users' processes while secrets are in memory; exec resets
  // this for the child.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  const auto start = vault::Clock::now();
  Prepared p = prepare(o);
  const Plan& plan = *p.plan;
  // An earlier run's files go first: whatever happens next, this run's command sees only this
  // run's files, and a failed run leaves no secret behind (SECURITY.md, "Secret files").
  retire_secrets_dir(p.dir);
  if (wants_supervise(o.supervise, plan)) {
    return run_supervised_command(o, p);
  }

  VaultConnection vc;
  ExecInputs in;
  std::string leased;
  try {
    RunData data = fetch_for_run(o, plan, vc, start);
    leased = data.leased;
    render_for_exec(o, p, data, in);
  } catch (...) {
    fail_after_login(vc, o.supervise.keep_token);
    throw;
  }
  util::Secret kept;
  std::vector<util::Secret> kept_sent;
  if (vc.client) {
    kept = revoke_own_token(*vc.client, o.supervise.keep_token, leased);
    if (!kept.empty()) {
      kept_sent = vc.client->credentials();
    }
  }
  // From here a stop signal acts at once again (or, while files are written, waits for them to
  // be removed): the token is revoked or deliberately kept.
  util::stop::disarm_or_act();
  // Done with Vault: close its connections now, or their sockets would reach the command.
  vc.client.reset();
  vc.transport.reset();
  // A token kept for a lease goes with a run that delivers nothing after all.
  const auto revoke_kept = [&] {
    if (!kept.empty()) {
      revoke_obtained_token(*vc.config, kept, kept_sent, "the run failed");
    }
  };
  try {
    std::optional<FileDelivery> files =
        write_run_files(plan, *in.resolver, p.dir, o.allow_non_tmpfs, revoke_kept);
    const int e = exec_child(in.argv, in.env);
    if (files) {
      files->remove_all();
    }
    const ExitCode code =
        e == ENOENT || e == ENOTDIR ? ExitCode::command_not_found : ExitCode::not_executable;
    throw Error(code, "cannot execute '{}': {}", o.command.front(), std::strerror(e));
  } catch (...) {
    revoke_kept();
    throw;
  }
}

namespace {

// What `check` found: the plan, where its files would go, the login method and, with
// --online, which reads the token may do.
struct CheckReport {
  const Plan& plan;
  std::string dir;
  std::string dir_state;
  std::string method;
  std::vector<std::vector<std::string>> users; // per fetch
  bool checked = false;                        // `readable` holds one entry per fetch
  std::vector<bool> readable;
};

void warn_unused_secrets(const Plan& plan) {
  if (!plan.manifest) {
    return;
  }
  for (const auto& s : plan.manifest->secrets) {
    bool used = false;
    for (const auto& f : plan.fetches) {
      used = used || (f.read.path == s.path && f.read.version == s.version);
    }
    for (const auto& c : plan.credentials) {
      used = used || (s.from_arvados() && c.credential == s.credential);
    }
    if (!used) {
      util::log::warning("{}: secret '{}' is declared but not used", s.origin, s.name);
    }
  }
}

// `check --online`: logs in (or, without --consume-credentials, validates a single-use
// credential without using it up) and asks Vault what the token may do on each path.
void check_online(const CommonOptions& o, const AuthOptions& auth, CheckReport& report) {
  const Plan& plan = report.plan;
  const vault::Config config = vault_config(o);
  vault::CurlTransport transport(config);
  vault::Client client(config, transport, vault::Clock::now() + o.wait);
  // A check must leave single-use credentials for the run it prepares.
  std::string validated;
  if (!o.consume_credentials) {
    validated = check_without_login(client, auth, getenv_opt);
  }
  if (!validated.empty()) {
    report.method = validated;
    return;
  }
  login(client, auth, getenv_opt);
  std::vector<std::string> paths;
  for (const auto& f : plan.fetches) {
    paths.push_back(f.read.path);
  }
  const auto caps = client.capabilities(paths);
  report.checked = true;
  for (const auto& path_caps : caps) {
    report.readable.push_back(std::any_of(path_caps.begin(), path_caps.end(), [](const auto& c) {
      return c == "read" || c == "root";
    }));
  }
}

std::string render_check_json(const CheckReport& r) {
  const Plan& plan = r.plan;
  nlohmann::ordered_json j;
  j["manifest"] = plan.manifest ? plan.manifest->file : "";
  j["auth"] = r.method;
  j["secrets_dir"] = r.dir;
  j["secrets_dir_state"] = r.dir_state;
  j["argv_templates"] = plan.argv_templates;
  j["reads"] = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < plan.fetches.size(); ++i) {
    const Fetch& f = plan.fetches[i];
    nlohmann::ordered_json read{{"path", f.read.path},
                                {"version", nullptr},
                                {"engine", to_string(f.engine)},
                                {"used_by", r.users[i]}};
    if (f.read.version) {
      read["version"] = *f.read.version;
    }
    if (r.checked) {
      read["readable"] = static_cast<bool>(r.readable[i]);
    }
    j["reads"].push_back(std::move(read));
  }
  j["credentials"] = nlohmann::ordered_json::array();
  for (const auto& c : plan.credentials) {
    j["credentials"].push_back({{"credential", c.credential}, {"used_by", c.used_by}});
  }
  j["env"] = nlohmann::ordered_json::array();
  for (const auto& e : plan.env) {
    j["env"].push_back({{"name", e.name}, {"refs", refs_text(e.value)}, {"origin", e.origin}});
  }
  j["files"] = nlohmann::ordered_json::array();
  for (const auto& f : plan.files) {
    j["files"].push_back({{"path", f.path},
                          {"format", to_string(f.format)},
                          {"mode", fmt::format("{:04o}", f.mode)},
                          {"origin", f.origin}});
  }
  // Names from the environment or a manifest may hold bytes that are not UTF-8: they are
  // replaced (U+FFFD) so that the output stays JSON. Everything but printable ASCII is written
  // as \uNNNN, as control characters already are: C1 controls and bidirectional overrides
  // would otherwise reach a terminal that shows the JSON raw, and so would DEL, which can only
  // stand inside a string here.
  std::string out = j.dump(-1, ' ', true, nlohmann::ordered_json::error_handler_t::replace);
  for (std::size_t at = out.find('\x7f'); at != std::string::npos; at = out.find('\x7f', at)) {
    out.replace(at, 1, "\\u007f");
  }
  return out + "\n";
}

// "a, b, c". Not fmt::join: GCC 12 at -O3 warns (stringop-overflow) inside fmt 9's formatter
// for it, and the release build treats warnings as errors.
std::string comma_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    out += (out.empty() ? "" : ", ") + item;
  }
  return out;
}

// The plan as lines for a terminal. Everything in it but the fixed words comes from the
// manifest, the environment or the command line, so each such part is shown with control
// characters escaped (util::printable, as in log lines): a variable named with an escape
// sequence must not rewrite the terminal of whoever checks the plan, nor a line break in a
// file name forge a line of the listing.
std::string render_check_text(const CheckReport& r) {
  const Plan& plan = r.plan;
  const auto show = [](std::string_view text) { return util::printable(text); };
  const auto show_list = [&](const std::vector<std::string>& items) {
    return show(comma_list(items));
  };
  std::string out;
  out += fmt::format("manifest: {}\n", plan.manifest ? show(plan.manifest->file) : "(none)");
  out += fmt::format("auth: {}\n", show(r.method));
  out += fmt::format("reads ({}):\n", plan.fetches.size());
  for (std::size_t i = 0; i < plan.fetches.size(); ++i) {
    const Fetch& f = plan.fetches[i];
    out += fmt::format("  {}  engine={}  used by: {}", show(f.read.describe), to_string(f.engine),
                       show_list(r.users[i]));
    if (r.checked) {
      out += r.readable[i] ? "  [readable]" : "  [DENIED: no read capability]";
    }
    out += "\n";
  }
  out += fmt::format("Arvados credentials ({}):\n", plan.credentials.size());
  for (const auto& c : plan.credentials) {
    out += fmt::format("  arvados:credential/{}  used by: {}\n", show(c.credential),
                       show_list(c.used_by));
  }
  out += fmt::format("environment ({}):\n", plan.env.size());
  for (const auto& e : plan.env) {
    out +=
        fmt::format("  {} <- {}  ({})\n", show(e.name), show(refs_text(e.value)), show(e.origin));
  }
  out += fmt::format("files ({}) in {} [{}]:\n", plan.files.size(), show(r.dir), show(r.dir_state));
  for (const auto& f : plan.files) {
    out += fmt::format("  {}  format={}  mode={:04o}  ({})\n", show(f.path), to_string(f.format),
                       f.mode, show(f.origin));
  }
  out += fmt::format("argv templates: {}\n", plan.argv_templates ? "on" : "off");
  return out;
}

// One error line per read the token may not do; the exit status of `check`.
int report_denied(const CheckReport& r) {
  int status = 0;
  for (std::size_t i = 0; r.checked && i < r.plan.fetches.size(); ++i) {
    if (!r.readable[i]) {
      util::log::write(util::log::Level::error,
                       fmt::format("permission denied: the token may not read {} (needed by {}): "
                                   "ask the Vault admin for a policy granting read",
                                   r.plan.fetches[i].read.path, r.plan.fetches[i].first_user),
                       static_cast<int>(ExitCode::permission_denied));
      status = static_cast<int>(ExitCode::permission_denied);
    }
  }
  return status;
}

} // namespace

int check_command(const CommonOptions& o, const CheckOptions& check) {
  if (check.online) {
    // --online logs in and holds a token: no core dumps or ptrace, as in run.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  }
  const Prepared p = prepare(o);
  CheckReport report{*p.plan, p.dir, describe_secrets_dir(p.dir), "", users_of(*p.plan), false, {}};
  const AuthOptions auth = merge_auth(o.auth, report.plan.manifest.get(), getenv_opt);
  try {
    report.method = to_string(choose_method(auth, getenv_opt));
  } catch (const Error&) {
    report.method = "none found";
  }
  warn_unused_secrets(report.plan);
  if (check.online && !report.plan.fetches.empty()) {
    check_online(o, auth, report);
  }
  std::cout << (check.format == CheckOptions::Format::json ? render_check_json(report)
                                                           : render_check_text(report))
            << std::flush;
  return report_denied(report);
}

} // namespace cs::core
