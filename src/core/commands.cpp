#include "crunchsecrets/core/commands.hpp"

#include "crunchsecrets/core/credentials.hpp"
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/markers.hpp"
#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/vault/curl_transport.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
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
  return p;
}

vault::Config vault_config(const CommonOptions& o) {
  vault::Config c = vault::config_from_env(getenv_opt);
  if (!o.vault_addr.empty()) {
    c.address = vault::normalize_address(o.vault_addr, "--vault-addr");
  }
  return c;
}

std::vector<vault::ReadSpec> reads_of(const Plan& plan) {
  std::vector<vault::ReadSpec> reads;
  for (const auto& f : plan.fetches) {
    reads.push_back(f.read);
  }
  return reads;
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

int run_command(const CommonOptions& o) {
  // No core dumps or ptrace by other users' processes while secrets are in memory; exec resets
  // this for the child.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  const auto start = vault::Clock::now();
  const auto deadline = start + o.wait;
  Prepared p = prepare(o);
  const Plan& plan = *p.plan;
  // An earlier run's files go first: whatever happens next, this run's command sees only this
  // run's files, and a failed run leaves no secret behind (SECURITY.md, "Secret files").
  retire_secrets_dir(p.dir);
  if (wants_supervise(o.supervise, plan)) {
    if (!plan.credentials.empty()) {
      // The supervise session re-renders from its Vault reads only; it does not carry the
      // Arvados credentials yet, so refuse rather than fail later with the child running.
      throw Error(ExitCode::usage,
                  "arvados:credential/{} ({}): Arvados credential references are not supported "
                  "in supervise mode yet: run without --supervise or use a Vault reference",
                  plan.credentials.front().credential, plan.credentials.front().used_by.front());
    }
    return run_supervised(
        p.plan,
        SuperviseContext{vault_config(o), merge_auth(o.auth, plan.manifest.get(), getenv_opt),
                         getenv_opt, current_environ(), p.dir, o.allow_non_tmpfs, o.pass_auth_env,
                         o.scrub_arvados_token, o.wait, o.supervise});
  }

  std::optional<vault::Config> config;
  std::optional<vault::CurlTransport> transport;
  std::optional<vault::Client> client;
  std::vector<vault::Fetched> fetched;
  std::string leased; // the first fetch that holds a lease, if any
  const AuthOptions auth = merge_auth(o.auth, plan.manifest.get(), getenv_opt);
  // Vault and the Arvados credentials API are asked at the same time.
  CredentialValues credentials =
      with_credentials(plan, getenv_opt, auth.arvados_token_file, deadline, [&] {
        if (plan.fetches.empty()) {
          return;
        }
        config.emplace(vault_config(o));
        transport.emplace(*config);
        client.emplace(*config, *transport, deadline);
        login(*client, auth, getenv_opt);
        fetched = client->read_all(reads_of(plan));
        for (std::size_t i = 0; i < fetched.size() && leased.empty(); ++i) {
          if (!fetched[i].lease_id.empty()) {
            leased = plan.fetches[i].read.describe;
          }
        }
        util::log::debug(
            "fetched {} secret(s) with {} request(s) over {} new connection(s) "
            "({}) in {} ms",
            plan.fetches.size(), transport->requests_sent(), transport->connections_opened(),
            transport->protocol(),
            std::chrono::duration_cast<std::chrono::milliseconds>(vault::Clock::now() - start)
                .count());
      });
  // Without fetches (literal-only templates) the resolver has nothing to look up but still
  // renders, so every sink has one.
  const Resolver resolver(p.plan, std::move(fetched), std::move(credentials));
  resolver.check_engines();
  const Resolver* r = &resolver;

  // Render everything before writing anything, so a missing key leaves nothing behind.
  std::vector<util::Secret> argv = build_child_argv(plan, r);
  ChildEnvOptions env_options;
  env_options.pass_auth_env = o.pass_auth_env;
  env_options.scrub_arvados_token = o.scrub_arvados_token;
  if (!plan.files.empty()) {
    env_options.secrets_dir = p.dir;
  }
  EnvBlock env = build_child_env(current_environ(), plan, r, env_options);
  if (client && client->owns_token()) {
    // The token crunch-secrets obtained is useless to the command and must not outlive the
    // run (SECURITY.md, "Token revocation") unless a delivered secret's lease depends on it.
    if (o.supervise.keep_token) {
      util::log::debug("keeping crunch-secrets' Vault token (--keep-token)");
    } else if (!leased.empty()) {
      util::log::debug("keeping crunch-secrets' Vault token: {} holds a lease that revoking it "
                       "would revoke too",
                       leased);
    } else {
      try {
        client->revoke_self();
        util::log::debug("revoked crunch-secrets' Vault token (--keep-token keeps it)");
      } catch (const Error& e) {
        // The secrets are read; a token that could not be revoked expires at its TTL.
        util::log::warning("could not revoke crunch-secrets' Vault token, which stays valid until "
                           "its TTL ends: {}",
                           e.what());
      }
    }
  }
  // Done with Vault: close its connections now, or their sockets would reach the command.
  client.reset();
  transport.reset();
  // From the first file written to exec, SIGTERM and the like wait, so they cannot leave
  // temporary or half-delivered files behind; one that arrived is acted on after cleaning up.
  std::optional<BlockedSignals> blocked;
  std::optional<FileDelivery> files;
  if (!plan.files.empty()) {
    blocked.emplace();
    files.emplace(FileDelivery::write(plan, resolver, SecretsDirOptions{p.dir, o.allow_non_tmpfs}));
    util::log::debug("wrote {} file(s) in {}", files->count(), p.dir);
    if (const int sig = blocked->pending()) {
      files->remove_all();
      blocked->die_of(sig);
    }
    blocked->restore();
  }

  const int e = exec_child(argv, env);
  if (files) {
    files->remove_all();
  }
  const ExitCode code =
      e == ENOENT || e == ENOTDIR ? ExitCode::command_not_found : ExitCode::not_executable;
  throw Error(code, "cannot execute '{}': {}", o.command.front(), std::strerror(e));
}

int check_command(const CommonOptions& o, const CheckOptions& check) {
  const bool online = check.online;
  const bool json = check.format == CheckOptions::Format::json;
  if (online) {
    // --online logs in and holds a token: no core dumps or ptrace, as in run.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  }
  Prepared p = prepare(o);
  const Plan& plan = *p.plan;
  const auto users = users_of(plan);
  const AuthOptions auth = merge_auth(o.auth, plan.manifest.get(), getenv_opt);
  std::string method;
  try {
    method = to_string(choose_method(auth, getenv_opt));
  } catch (const Error&) {
    method = "none found";
  }
  const std::string dir_state = describe_secrets_dir(p.dir);
  if (plan.manifest) {
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

  std::vector<std::vector<std::string>> caps;
  bool caps_checked = true;
  int status = 0;
  if (online && !plan.fetches.empty()) {
    const vault::Config config = vault_config(o);
    vault::CurlTransport transport(config);
    vault::Client client(config, transport, vault::Clock::now() + o.wait);
    // A check must leave single-use credentials for the run it prepares.
    std::string validated;
    if (!o.consume_credentials) {
      validated = check_without_login(client, auth, getenv_opt);
    }
    if (validated.empty()) {
      login(client, auth, getenv_opt);
      std::vector<std::string> paths;
      for (const auto& f : plan.fetches) {
        paths.push_back(f.read.path);
      }
      caps = client.capabilities(paths);
    } else {
      method = validated;
      caps_checked = false;
    }
  }
  auto checked = [&]() { return online && caps_checked && !plan.fetches.empty(); };
  auto readable = [&](std::size_t i) {
    for (const auto& c : caps[i]) {
      if (c == "read" || c == "root") {
        return true;
      }
    }
    return false;
  };

  std::string out;
  if (json) {
    nlohmann::ordered_json j;
    j["manifest"] = plan.manifest ? plan.manifest->file : "";
    j["auth"] = method;
    j["secrets_dir"] = p.dir;
    j["secrets_dir_state"] = dir_state;
    j["argv_templates"] = plan.argv_templates;
    j["reads"] = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < plan.fetches.size(); ++i) {
      const Fetch& f = plan.fetches[i];
      nlohmann::ordered_json read{{"path", f.read.path},
                                  {"version", nullptr},
                                  {"engine", to_string(f.engine)},
                                  {"used_by", users[i]}};
      if (f.read.version) {
        read["version"] = *f.read.version;
      }
      if (checked()) {
        read["readable"] = readable(i);
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
    out = j.dump() + "\n";
  } else {
    out += fmt::format("manifest: {}\n", plan.manifest ? plan.manifest->file : "(none)");
    out += fmt::format("auth: {}\n", method);
    out += fmt::format("reads ({}):\n", plan.fetches.size());
    for (std::size_t i = 0; i < plan.fetches.size(); ++i) {
      const Fetch& f = plan.fetches[i];
      std::string who;
      for (const auto& u : users[i]) {
        who += (who.empty() ? "" : ", ") + u;
      }
      out += fmt::format("  {}  engine={}  used by: {}", f.read.describe, to_string(f.engine), who);
      if (checked()) {
        out += readable(i) ? "  [readable]" : "  [DENIED: no read capability]";
      }
      out += "\n";
    }
    out += fmt::format("Arvados credentials ({}):\n", plan.credentials.size());
    for (const auto& c : plan.credentials) {
      std::string who;
      for (const auto& u : c.used_by) {
        who += (who.empty() ? "" : ", ") + u;
      }
      out += fmt::format("  arvados:credential/{}  used by: {}\n", c.credential, who);
    }
    out += fmt::format("environment ({}):\n", plan.env.size());
    for (const auto& e : plan.env) {
      out += fmt::format("  {} <- {}  ({})\n", e.name, refs_text(e.value), e.origin);
    }
    out += fmt::format("files ({}) in {} [{}]:\n", plan.files.size(), p.dir, dir_state);
    for (const auto& f : plan.files) {
      out += fmt::format("  {}  format={}  mode={:04o}  ({})\n", f.path, to_string(f.format),
                         f.mode, f.origin);
    }
    out += fmt::format("argv templates: {}\n", plan.argv_templates ? "on" : "off");
  }
  std::cout << out << std::flush;
  if (checked()) {
    for (std::size_t i = 0; i < plan.fetches.size(); ++i) {
      if (!readable(i)) {
        util::log::write(util::log::Level::error,
                         fmt::format("permission denied: the token may not read {} (needed by "
                                     "{}): ask the Vault admin for a policy granting read",
                                     plan.fetches[i].read.path, plan.fetches[i].first_user),
                         static_cast<int>(ExitCode::permission_denied));
        status = static_cast<int>(ExitCode::permission_denied);
      }
    }
  }
  return status;
}

} // namespace cs::core
