// Choosing the login method (README.md, "Authentication") and logging in once.
#pragma once

#include "crunchsecrets/core/manifest.hpp"
#include "crunchsecrets/vault/client.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cs::core {

struct AuthOptions {
  AuthMethod method = AuthMethod::automatic;
  std::string token_file;
  std::string role_id;
  // Where `role_id` came from, for messages: the option, the manifest or the variable.
  std::string role_id_source = "--role-id";
  std::string role_id_file;
  std::string secret_id_file;
  std::string approle_mount = "approle";
  std::string wrapped_token_file;
  std::string arvados_role;
  std::string arvados_mount = "arvados";
  std::string arvados_token_file;
};

// Throws a configuration error naming `source` (never the value) when `value` cannot be a
// credential: a line break in it would inject an HTTP header, a NUL cut it short
// (util::credential_problem). Every credential is checked before any request is made.
void require_credential(const util::Secret& value, const std::string& source);

// Reads a credential from the file `path`, or from standard input when `path` is "-" (the
// convention of the Vault CLI and of most Unix tools, so that it need not be stored in a file),
// and checks it with `require_credential`; `what` names the option for messages.
// Standard input is read until it ends, for at most until `deadline` (--wait).
util::Secret read_credential(const std::string& path, const std::string& what,
                             vault::Clock::time_point deadline);

// What a run reads besides the login options, for `refuse_second_stdin_reader`.
struct StdinUse {
  bool vault_login = false;         // the plan reads from Vault, so a login happens
  bool arvados_credentials = false; // the plan reads Arvados credentials
};

// Refuses (exit 78, one line naming both) a configuration in which two readers would read
// standard input, before anything is read or sent: it can be read once, so the second reader
// would find it ended or take part of the first one's input. The readers are the options given
// as "-" (--token-file, --role-id-file, --secret-id-file, --wrapped-token-file,
// --arvados-token-file, whichever login method is chosen), and --arvados-token-file a second
// time when both the Arvados login and the Arvados credentials need its token.
void refuse_second_stdin_reader(const AuthOptions& options, const StdinUse& use,
                                const vault::EnvLookup& env);

// Fills unset options from the manifest's `auth:` block and the environment.
AuthOptions merge_auth(AuthOptions options, const Manifest* manifest, const vault::EnvLookup& env);

// The Vault CLI's token file, `$HOME/.vault-token`, if it exists; else empty.
std::string vault_token_helper_file(const vault::EnvLookup& env);

// Picks the method (`automatic` resolves to the first that applies) without reading files;
// never returns `automatic`.
AuthMethod choose_method(const AuthOptions& options, const vault::EnvLookup& env);

// For `check --online` without --consume-credentials: validates a single-use credential
// without using it up (a wrapping token through sys/wrapping/lookup) and returns a line saying
// so, refuses an AppRole login (its secret id may be single use), or returns "" when the
// method's login uses nothing up and `login` may be called.
std::string check_without_login(vault::Client& client, const AuthOptions& options,
                                const vault::EnvLookup& env);

// Logs `client` in with the chosen method. Throws `core::Error`.
void login(vault::Client& client, const AuthOptions& options, const vault::EnvLookup& env);

// From now until util::stop::disarm_or_act(), SIGTERM, SIGINT, SIGHUP and SIGQUIT stop the run
// by revoking the token `client` obtained by a login, unless `keep_token` (a token the caller
// gave is never revoked), with one request of at most 2 s, and then dying of the signal
// (SECURITY.md, "Token revocation"). Call it before starting any thread, in the thread that
// uses `client`; `client` and `config` must outlive the disarming.
void revoke_on_stop(const std::optional<vault::Client>& client, const vault::Config& config,
                    bool keep_token);

// Revokes `token`, which crunch-secrets obtained, with one `auth/token/revoke-self` over a new
// connection with a 2 s limit and no retry, for a run that is about to end without delivering:
// the leases the token created go with it. Success is a debug line, failure one warning line
// (no secret in it: `sent`, the credentials of the login that obtained the token, are redacted
// from the server's message as the token is), both starting with `when`; it never throws.
void revoke_obtained_token(const vault::Config& config, const util::Secret& token,
                           const std::vector<util::Secret>& sent, std::string_view when) noexcept;

// For a run that fails from its own login on, before anything is delivered (SECURITY.md, "Token
// revocation"): acts on a stop that was requested (the failure was the stop's doing), revokes
// the token `client` obtained unless `keep_token` (a lease it holds is useless now, so it goes
// too; a token the caller gave is never revoked), drops `client` and disarms the stop. The
// caller then reports its error with its own exit code; a revocation that fails is a warning.
void revoke_after_failure(std::optional<vault::Client>& client, const vault::Config& config,
                          bool keep_token) noexcept;

} // namespace cs::core
