#include "crunchsecrets/core/auth.hpp"

#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/util/fs.hpp"
#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/util/stop.hpp"
#include "crunchsecrets/util/text.hpp"
#include "crunchsecrets/vault/curl_transport.hpp"

#include <optional>
#include <sys/stat.h>
#include <utility>
#include <vector>

namespace cs::core {

using util::Secret;

namespace {

bool has(const vault::EnvLookup& env, const char* name) {
  auto v = env(name);
  return v && !v->empty();
}

Secret from_env(const vault::EnvLookup& env, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (auto v = env(n); v && !v->empty()) {
      Secret s(*v);
      util::wipe(v->data(), v->size());
      require_credential(s, n);
      return s;
    }
  }
  return Secret();
}

// The wrapping token of `--auth wrapped`, for a login and for `check --online` alike.
Secret wrapping_token(const AuthOptions& o, const vault::EnvLookup& env,
                      vault::Clock::time_point deadline) {
  Secret w = !o.wrapped_token_file.empty()
                 ? read_credential(o.wrapped_token_file, "--wrapped-token-file", deadline)
                 : from_env(env, {"CRUNCH_SECRETS_WRAPPED_TOKEN"});
  if (w.empty()) {
    throw Error(ExitCode::config, "--auth wrapped: pass --wrapped-token-file or set "
                                  "CRUNCH_SECRETS_WRAPPED_TOKEN");
  }
  return w;
}

// The AppRole mount of a wrapping token's creation path when it wraps a secret id
// (`auth/<mount>/role/<name>/secret-id` or `.../custom-secret-id`), else nothing.
std::optional<std::string> secret_id_mount(const std::string& creation_path) {
  const std::string prefix = "auth/";
  const std::size_t role = creation_path.rfind("/role/");
  const bool secret_id =
      creation_path.ends_with("/secret-id") || creation_path.ends_with("/custom-secret-id");
  if (!creation_path.starts_with(prefix) || role == std::string::npos || !secret_id ||
      role <= prefix.size()) {
    return std::nullopt;
  }
  return creation_path.substr(prefix.size(), role - prefix.size());
}

// What `run` would need to log in with a wrapped secret id, checked before anything is
// unwrapped: the role id, and the mount the secret id belongs to.
void check_wrapped_secret_id(const AuthOptions& o, const std::string& created,
                             const std::string& mount) {
  if (o.role_id.empty() && o.role_id_file.empty()) {
    throw Error(ExitCode::config,
                "the response-wrapping token holds an AppRole secret id (created by {}) and no "
                "role id was given: unwrapping it would use it up with no login to follow; give "
                "the role id (--role-id, --role-id-file or CRUNCH_SECRETS_ROLE_ID): the token "
                "was not unwrapped and can still be used",
                created);
  }
  if (mount != o.approle_mount) {
    throw Error(ExitCode::config,
                "the response-wrapping token holds an AppRole secret id of auth/{} (created by "
                "{}), but logins go to auth/{}: pass --approle-mount {}: the token was not "
                "unwrapped and can still be used",
                mount, created, o.approle_mount, mount);
  }
}

} // namespace

void require_credential(const Secret& value, const std::string& source) {
  if (auto problem = util::credential_problem(value.reveal())) {
    throw Error(ExitCode::config,
                "{}: the credential {}: a token, role id or secret id is one line of printable "
                "characters (a file may end with one newline, not CRLF); check how it was written",
                source, *problem);
  }
}

Secret read_credential(const std::string& path, const std::string& what,
                       vault::Clock::time_point deadline) {
  util::SecureString text;
  std::string source;
  if (path == "-") {
    source = what + " - (standard input)";
    text = value_or_throw(util::read_secret_stdin(deadline), ExitCode::no_input,
                          "{}: {}: pipe the credential in and close the pipe (e.g. printf '%s\\n' "
                          "\"$TOKEN\" | crunch-secrets ...); standard input is read until it ends, "
                          "for at most --wait",
                          source);
  } else {
    source = fmt::format("{} {}", what, path);
    text = value_or_throw(util::read_secret_file(path), ExitCode::no_input,
                          "{}: {}: check the path", what);
  }
  if (text.empty()) {
    throw Error(ExitCode::config, "{} is empty", source);
  }
  Secret s(std::move(text));
  require_credential(s, source);
  return s;
}

std::string vault_token_helper_file(const vault::EnvLookup& env) {
  auto home = env("HOME");
  if (!home || home->empty()) {
    return {};
  }
  std::string path = *home + "/.vault-token";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return {};
  }
  return path;
}

void refuse_second_stdin_reader(const AuthOptions& o, const StdinUse& use,
                                const vault::EnvLookup& env) {
  std::vector<std::string> readers;
  const std::pair<const char*, const std::string*> options[] = {
      {"--token-file", &o.token_file},
      {"--role-id-file", &o.role_id_file},
      {"--secret-id-file", &o.secret_id_file},
      {"--wrapped-token-file", &o.wrapped_token_file},
      {"--arvados-token-file", &o.arvados_token_file}};
  for (const auto& [name, value] : options) {
    if (*value == "-") {
      readers.push_back(fmt::format("{} -", name));
    }
  }
  // The Arvados token is read by the Arvados login and, on its own thread, by the Arvados
  // credentials: from a file, twice; from standard input, the second read would find it ended.
  if (o.arvados_token_file == "-" && use.arvados_credentials && use.vault_login &&
      choose_method(o, env) == AuthMethod::arvados) {
    readers.emplace_back("--arvados-token-file - (for the Arvados credentials too)");
  }
  if (readers.size() > 1) {
    throw Error(ExitCode::config,
                "{} and {} both read standard input, which can be read only once (the second "
                "would find it ended, or part of the first one's input): give all but one as a "
                "file (on a tmpfs such as /dev/shm) or in its environment variable",
                readers[0], readers[1]);
  }
}

AuthOptions merge_auth(AuthOptions o, const Manifest* manifest, const vault::EnvLookup& env) {
  if (manifest != nullptr) {
    const AuthSpec& a = manifest->auth;
    if (o.method == AuthMethod::automatic && a.method) {
      o.method = *a.method;
    }
    const bool approle = o.method == AuthMethod::approle;
    if (!a.role.empty()) {
      if (approle && o.role_id.empty() && o.role_id_file.empty()) {
        o.role_id = a.role;
        o.role_id_source = "the manifest's auth.role";
      } else if (!approle && o.arvados_role.empty()) {
        o.arvados_role = a.role;
      }
    }
    if (!a.mount.empty()) {
      if (approle && o.approle_mount == "approle") {
        o.approle_mount = a.mount;
      } else if (!approle && o.arvados_mount == "arvados") {
        o.arvados_mount = a.mount;
      }
    }
  }
  if (o.arvados_role.empty()) {
    auto r = env("CRUNCH_SECRETS_ARVADOS_ROLE");
    o.arvados_role = r && !r->empty() ? *r : "default";
  }
  if (o.role_id.empty() && o.role_id_file.empty()) {
    if (auto r = env("CRUNCH_SECRETS_ROLE_ID"); r && !r->empty()) {
      o.role_id = *r;
      o.role_id_source = "CRUNCH_SECRETS_ROLE_ID";
    }
  }
  return o;
}

AuthMethod choose_method(const AuthOptions& o, const vault::EnvLookup& env) {
  if (o.method != AuthMethod::automatic) {
    return o.method;
  }
  if (has(env, "BAO_TOKEN") || has(env, "VAULT_TOKEN") || !o.token_file.empty()) {
    return AuthMethod::token;
  }
  if (!o.wrapped_token_file.empty() || has(env, "CRUNCH_SECRETS_WRAPPED_TOKEN")) {
    return AuthMethod::wrapped;
  }
  if ((!o.role_id.empty() || !o.role_id_file.empty()) &&
      (!o.secret_id_file.empty() || has(env, "CRUNCH_SECRETS_SECRET_ID"))) {
    return AuthMethod::approle;
  }
  if (has(env, "ARVADOS_API_TOKEN") || !o.arvados_token_file.empty()) {
    return AuthMethod::arvados;
  }
  // The Vault CLI's token file comes last: a `bao login` left in a home directory (or baked
  // into an image) must not override the credential a job was given.
  if (!vault_token_helper_file(env).empty()) {
    return AuthMethod::token;
  }
  throw Error(ExitCode::config,
              "no Vault credentials found: set VAULT_TOKEN (or write ~/.vault-token), pass "
              "--token-file, provide an AppRole "
              "(--role-id and --secret-id-file), a wrapped token (--wrapped-token-file), or run "
              "with ARVADOS_API_TOKEN for --auth arvados");
}

namespace {

void login_token(vault::Client& client, const AuthOptions& o, const vault::EnvLookup& env) {
  Secret token = !o.token_file.empty()
                     ? read_credential(o.token_file, "--token-file", client.deadline())
                     : from_env(env, {"BAO_TOKEN", "VAULT_TOKEN"});
  // As the Vault CLI does: the token helper's file when no token was given otherwise.
  if (const std::string helper = vault_token_helper_file(env); token.empty() && !helper.empty()) {
    util::log::debug("using the token in {}", helper);
    token = read_credential(helper, "the Vault token file", client.deadline());
  }
  if (token.empty()) {
    throw Error(ExitCode::config, "--auth token: set VAULT_TOKEN (or BAO_TOKEN), write "
                                  "~/.vault-token or pass --token-file");
  }
  client.use_token(std::move(token));
}

void login_wrapped(vault::Client& client, const AuthOptions& o, const vault::EnvLookup& env) {
  const Secret w = wrapping_token(o, env, client.deadline());
  // The wrapping token may hold an AppRole secret id; the role id is then needed too.
  Secret role_id;
  if (!o.role_id_file.empty()) {
    role_id = read_credential(o.role_id_file, "--role-id-file", client.deadline());
  } else if (!o.role_id.empty()) {
    role_id = Secret(o.role_id);
    require_credential(role_id, o.role_id_source);
  }
  // Unwrapping uses the token up, and a wrapped AppRole secret id with it. What the token holds
  // is looked up first (sys/wrapping/lookup uses nothing up), so that a secret id without a role
  // id, or of another AppRole mount, is refused while the token can still be used.
  const vault::WrapInfo info = client.lookup_wrapping(w);
  if (const auto mount = secret_id_mount(info.creation_path)) {
    check_wrapped_secret_id(o, info.creation_path, *mount);
  }
  client.login_wrapped(w, o.approle_mount, role_id);
}

void login_approle(vault::Client& client, const AuthOptions& o, const vault::EnvLookup& env) {
  Secret role_id;
  if (!o.role_id_file.empty()) {
    role_id = read_credential(o.role_id_file, "--role-id-file", client.deadline());
  } else {
    role_id = Secret(o.role_id);
    require_credential(role_id, o.role_id_source);
  }
  Secret secret_id = !o.secret_id_file.empty()
                         ? read_credential(o.secret_id_file, "--secret-id-file", client.deadline())
                         : from_env(env, {"CRUNCH_SECRETS_SECRET_ID"});
  if (role_id.empty() || secret_id.empty()) {
    throw Error(ExitCode::config, "--auth approle needs a role id (--role-id, --role-id-file or "
                                  "CRUNCH_SECRETS_ROLE_ID) and a secret id (--secret-id-file or "
                                  "CRUNCH_SECRETS_SECRET_ID)");
  }
  client.login_approle(o.approle_mount, role_id, secret_id);
}

void login_arvados(vault::Client& client, const AuthOptions& o, const vault::EnvLookup& env) {
  Secret token =
      !o.arvados_token_file.empty()
          ? read_credential(o.arvados_token_file, "--arvados-token-file", client.deadline())
          : from_env(env, {"ARVADOS_API_TOKEN"});
  if (token.empty()) {
    throw Error(ExitCode::config, "--auth arvados: ARVADOS_API_TOKEN is not set (run the "
                                  "container with runtime_constraints.API: true) and no "
                                  "--arvados-token-file was given");
  }
  client.login_arvados(o.arvados_mount, o.arvados_role, token);
}

} // namespace

void login(vault::Client& client, const AuthOptions& o, const vault::EnvLookup& env) {
  const AuthMethod method = choose_method(o, env);
  util::log::debug("authenticating with method {}", to_string(method));
  switch (method) {
  case AuthMethod::token:
    return login_token(client, o, env);
  case AuthMethod::wrapped:
    return login_wrapped(client, o, env);
  case AuthMethod::approle:
    return login_approle(client, o, env);
  case AuthMethod::arvados:
    return login_arvados(client, o, env);
  case AuthMethod::automatic:
    break;
  }
  throw Error(ExitCode::internal, "internal error: no login method chosen");
}

std::string check_without_login(vault::Client& client, const AuthOptions& o,
                                const vault::EnvLookup& env) {
  const AuthMethod method = choose_method(o, env);
  if (method == AuthMethod::wrapped) {
    const vault::WrapInfo info = client.lookup_wrapping(wrapping_token(o, env, client.deadline()));
    const std::string created = info.creation_path.empty() ? "?" : info.creation_path;
    if (const auto mount = secret_id_mount(info.creation_path)) {
      check_wrapped_secret_id(o, created, *mount);
      return fmt::format("wrapped AppRole secret id (the wrapping token is valid: created by {}, "
                         "TTL {}s; the role id is given; not unwrapped, so read capabilities were "
                         "not checked: --consume-credentials would use it up)",
                         created, info.creation_ttl);
    }
    return fmt::format("wrapped (the wrapping token is valid: created by {}, TTL {}s; not "
                       "unwrapped, so read capabilities were not checked: --consume-credentials "
                       "would use it up)",
                       created, info.creation_ttl);
  }
  if (method == AuthMethod::approle) {
    throw Error(ExitCode::usage,
                "check --online does not log in with an AppRole secret id: a secret id may be "
                "single use (secret_id_num_uses), and a login would use it up so that the "
                "following run fails; pass --consume-credentials to log in anyway, or check "
                "with a token (VAULT_TOKEN)");
  }
  return {};
}

void revoke_obtained_token(const vault::Config& config, const util::Secret& token,
                           const std::vector<util::Secret>& sent, std::string_view when) noexcept {
  // A new connection with a short timeout and no retry: the process is about to end and must
  // not linger.
  constexpr std::chrono::milliseconds k_limit{2000};
  try {
    vault::Config quick = config;
    quick.client_timeout = k_limit;
    quick.max_retries = 0;
    vault::CurlTransport transport(quick);
    vault::Client revoker(quick, transport, vault::Clock::now() + k_limit);
    revoker.use_token(token);
    // A hostile server may quote the secret id or Arvados token of the login in its refusal.
    revoker.redact(sent);
    revoker.revoke_self();
    util::log::debug("{}: revoked crunch-secrets' Vault token", when);
  } catch (const std::exception& e) {
    try {
      util::log::warning("{}: could not revoke crunch-secrets' Vault token, which stays valid "
                         "until its TTL ends: {}",
                         when, e.what());
    } catch (...) {
      // Nothing is left to say it with.
    }
  }
}

void revoke_on_stop(const std::optional<vault::Client>& client, const vault::Config& config,
                    bool keep_token) {
  util::stop::set_action([&client, &config, keep_token] {
    if (!client || !client->owns_token() || !client->logged_in() || keep_token) {
      return;
    }
    // Nothing was delivered, so a lease the token holds goes with it.
    revoke_obtained_token(config, client->token(), client->credentials(), "stopped by a signal");
  });
  util::stop::arm();
}

void revoke_after_failure(std::optional<vault::Client>& client, const vault::Config& config,
                          bool keep_token) noexcept {
  // A stop that cut the run short is a stop: the action revokes, the process dies of the signal.
  util::stop::act_if_requested();
  if (client && client->owns_token() && client->logged_in()) {
    if (keep_token) {
      util::log::debug("the run failed: keeping crunch-secrets' Vault token (--keep-token)");
    } else {
      // Before the stop is disarmed, a stop signal during this request cuts it short and the
      // stop's action revokes anew before the process dies of it.
      revoke_obtained_token(config, client->token(), client->credentials(), "the run failed");
    }
  }
  // The token is gone (or kept): a stop action has nothing left to do.
  client.reset();
  util::stop::disarm_or_act();
}

} // namespace cs::core
