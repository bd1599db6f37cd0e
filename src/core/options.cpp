#include "crunchsecrets/core/options.hpp"

#include <array>
#include <fmt/format.h>
#include <stdexcept>

namespace cs::core {

namespace {

using S = OptionScope;

// Adding an option: add it here (help, metavariable, environment variable) and bind it in
// src/cli/main.cpp; --help, the man page and the completions follow from the bound options.
constexpr std::array k_options{
    OptionDoc{"-m,--manifest", "FILE",
              "Manifest (YAML or JSON); default $CRUNCH_SECRETS_MANIFEST (a path), else "
              "$CRUNCH_SECRETS_MANIFEST_JSON (the manifest itself), else "
              "/etc/crunch-secrets/manifest.{yml,yaml,json} if one exists",
              S::common, "CRUNCH_SECRETS_MANIFEST", false, ""},
    OptionDoc{"--no-manifest", "", "Do not look for a manifest", S::common, "", false, ""},
    OptionDoc{"--secrets-dir", "DIR",
              "Directory for secret files, on tmpfs; default secrets_dir of the manifest, "
              "$CRUNCH_SECRETS_DIR, else /dev/shm/crunch-secrets",
              S::common, "CRUNCH_SECRETS_DIR", false, ""},
    OptionDoc{"--allow-non-tmpfs", "", "Allow a secrets directory that is not on tmpfs/ramfs",
              S::common, "", false, ""},
    OptionDoc{"--argv-templates", "",
              "Substitute references in COMMAND and ARGs (visible in /proc/PID/cmdline); also "
              "manifest argv: true or CRUNCH_SECRETS_ARGV=1",
              S::common, "CRUNCH_SECRETS_ARGV", false, ""},
    OptionDoc{"--no-env-refs", "", "Ignore references in the inherited environment", S::common, "",
              false, ""},
    OptionDoc{"--auth", "METHOD", "Login method: auto, token, approle, wrapped or arvados",
              S::common, "CRUNCH_SECRETS_AUTH", true, "auto,token,approle,wrapped,arvados"},
    OptionDoc{
        "--token-file", "FILE",
        "File holding a Vault token (- reads standard input until it ends, at most --wait; one "
        "option at most may be -)",
        S::common, "", false, ""},
    OptionDoc{"--role-id", "ID", "AppRole role id", S::common, "CRUNCH_SECRETS_ROLE_ID", false, ""},
    OptionDoc{"--role-id-file", "FILE", "File holding the AppRole role id (- reads standard input)",
              S::common, "", false, ""},
    OptionDoc{"--secret-id-file", "FILE",
              "File holding the AppRole secret id (- reads standard input)", S::common,
              "CRUNCH_SECRETS_SECRET_ID", false, ""},
    OptionDoc{"--approle-mount", "MOUNT", "AppRole mount (default approle)", S::common, "", false,
              ""},
    OptionDoc{"--wrapped-token-file", "FILE",
              "File holding a response-wrapping token of a token or an AppRole secret id (- reads "
              "standard input)",
              S::common, "CRUNCH_SECRETS_WRAPPED_TOKEN", false, ""},
    OptionDoc{"--arvados-role", "ROLE", "Role for the Arvados auth method (default default)",
              S::common, "CRUNCH_SECRETS_ARVADOS_ROLE", false, ""},
    OptionDoc{"--arvados-mount", "MOUNT", "Arvados auth mount (default arvados)", S::common, "",
              false, ""},
    OptionDoc{"--arvados-token-file", "FILE",
              "File holding the Arvados token, for the login and Arvados credentials (- reads "
              "standard input)",
              S::common, "ARVADOS_API_TOKEN", false, ""},
    OptionDoc{"--pass-auth-env", "", "Keep Vault auth variables in the environment of the child",
              S::common, "", false, ""},
    OptionDoc{"--scrub-arvados-token", "",
              "Remove ARVADOS_API_TOKEN from the environment of the child", S::common, "", false,
              ""},
    OptionDoc{"--vault-addr", "URL", "Vault address (overrides BAO_ADDR and VAULT_ADDR)", S::common,
              "", false, ""},
    OptionDoc{"--wait", "DURATION",
              "How long to retry an unavailable Vault: 30, 30s, 1m30s, 500ms (default 60s)",
              S::common, "CRUNCH_SECRETS_WAIT", true, ""},
    OptionDoc{"--log-format", "FORMAT",
              "Format of the stderr lines of crunch-secrets: text or json", S::global,
              "CRUNCH_SECRETS_LOG_FORMAT", true, "text,json"},
    OptionDoc{"--log-level", "LEVEL", "Least severe stderr line written: error, info or debug",
              S::global, "CRUNCH_SECRETS_LOG_LEVEL", true, "error,info,debug"},
    OptionDoc{"-q,--quiet", "", "Only errors (same as --log-level error)", S::global, "", false,
              ""},
    OptionDoc{"-v,--verbose", "", "Also debug lines, never values (same as --log-level debug)",
              S::global, "", false, ""},
    OptionDoc{"--supervise", "",
              "Stay the parent of COMMAND: renew leases, rotate credentials, revoke at exit",
              S::run, "", false, ""},
    OptionDoc{"--redact", "",
              "Replace secret values in the output of COMMAND (implies --supervise)", S::run, "",
              false, ""},
    OptionDoc{"--keep-token", "", "Do not revoke the Vault token crunch-secrets obtained", S::run,
              "", false, ""},
    OptionDoc{"--signal-group", "",
              "Forward signals to the process group of COMMAND (implies --supervise)", S::run, "",
              false, ""},
    OptionDoc{"--online", "", "Log in and ask Vault whether each path is readable (no value read)",
              S::check, "", false, ""},
    OptionDoc{"--consume-credentials", "",
              "With --online, also log in with a credential that may be single use (AppRole "
              "secret id, wrapping token), using it up",
              S::check, "", false, ""},
    OptionDoc{"--json", "", "Print the plan as JSON", S::check, "", false, ""},
};

} // namespace

std::span<const OptionDoc> option_docs() {
  return k_options;
}

const OptionDoc& option_doc(std::string_view long_name) {
  for (const OptionDoc& o : k_options) {
    const std::string_view n = o.names;
    const std::size_t comma = n.rfind(',');
    if ((comma == std::string_view::npos ? n : n.substr(comma + 1)) == long_name) {
      return o;
    }
  }
  throw std::out_of_range(fmt::format("no option {} in the option table", long_name));
}

std::string usage_text(std::string_view subcommand) {
  if (subcommand == "run") {
    return "crunch-secrets run [OPTIONS] -- COMMAND [ARG...]";
  }
  if (subcommand == "check") {
    return "crunch-secrets check [OPTIONS] [--online] [--json] [-- COMMAND [ARG...]]";
  }
  if (subcommand == "prepare") {
    return "crunch-secrets prepare --container FILE --secrets-dir DIR [--result-fd FD] [OPTIONS]";
  }
  if (subcommand == "cleanup") {
    return "crunch-secrets cleanup --state FILE [OPTIONS]";
  }
  return "crunch-secrets run [OPTIONS] -- COMMAND [ARG...]\n"
         "       crunch-secrets check [OPTIONS] [--online] [--json] [-- COMMAND [ARG...]]\n"
         "       crunch-secrets prepare|cleanup ...   (host side, docs/crunch-run-protocol.md)\n"
         "       crunch-secrets --version";
}

} // namespace cs::core
