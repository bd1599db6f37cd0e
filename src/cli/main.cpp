// crunch-secrets entry point: parses arguments and forwards to core::run_command or
// core::check_command; the one place that turns errors into exit codes.
#include "crunchsecrets/core/commands.hpp"
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/prepare.hpp"
#include "crunchsecrets/util/duration.hpp"
#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/vault/curl_version.hpp"
#include "cs_revision.h"
#include "cs_version.h"
#include "docgen.hpp"
#include "help_text.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

namespace {

using cs::core::ExitCode;
namespace log = cs::util::log;

int fail(ExitCode code, const std::string& message) {
  log::write(log::Level::error, message, static_cast<int>(code));
  return static_cast<int>(code);
}

void add_common(CLI::App& cmd, cs::core::CommonOptions& o, std::string& wait) {
  cmd.add_option("-m,--manifest", o.manifest, "Manifest file (YAML or JSON)");
  cmd.add_flag("--no-manifest", o.no_manifest, "Do not look for a manifest");
  cmd.add_option("--secrets-dir", o.secrets_dir, "Directory for secret files (must be tmpfs)");
  cmd.add_flag("--allow-non-tmpfs", o.allow_non_tmpfs, "Allow a secrets directory not on tmpfs");
  cmd.add_flag("--argv-templates", o.argv_templates,
               "Substitute references in COMMAND and ARGs (visible in /proc/PID/cmdline)");
  cmd.add_flag("--no-env-refs", o.no_env_refs, "Ignore references in the inherited environment");
  cmd.add_option("--auth", o.auth.method, "auto, token, approle, wrapped or arvados")
      ->check(CLI::IsMember({"auto", "token", "approle", "wrapped", "arvados"}));
  cmd.add_option("--token-file", o.auth.token_file, "File holding a Vault token");
  cmd.add_option("--role-id", o.auth.role_id, "AppRole role id");
  cmd.add_option("--role-id-file", o.auth.role_id_file, "File holding the AppRole role id");
  cmd.add_option("--secret-id-file", o.auth.secret_id_file, "File holding the AppRole secret id");
  cmd.add_option("--approle-mount", o.auth.approle_mount, "AppRole mount (default approle)");
  cmd.add_option("--wrapped-token-file", o.auth.wrapped_token_file,
                 "File holding a response-wrapping token");
  cmd.add_option("--arvados-role", o.auth.arvados_role, "Role for the Arvados auth method");
  cmd.add_option("--arvados-mount", o.auth.arvados_mount, "Arvados auth mount (default arvados)");
  cmd.add_option("--arvados-token-file", o.auth.arvados_token_file,
                 "File holding the Arvados token (default $ARVADOS_API_TOKEN)");
  cmd.add_flag("--pass-auth-env", o.pass_auth_env, "Keep Vault auth variables for the child");
  cmd.add_flag("--scrub-arvados-token", o.scrub_arvados_token,
               "Remove ARVADOS_API_TOKEN from the child's environment");
  cmd.add_option("--vault-addr", o.vault_addr, "Vault address (overrides VAULT_ADDR)");
  cmd.add_option("--wait", wait, "How long to retry an unavailable Vault (30, 30s, 1m30s)");
}

} // namespace

int main(int argc, char** argv) {
  // Split at the first "--": everything after it is the command, untouched by the parser.
  std::vector<std::string> ours;
  std::vector<std::string> command;
  bool dashdash = false;
  for (int i = 1; i < argc; ++i) {
    if (!dashdash && std::string_view(argv[i]) == "--") {
      dashdash = true;
      continue;
    }
    (dashdash ? command : ours).emplace_back(argv[i]);
  }

  CLI::App app{"crunch-secrets: put Vault/OpenBao secrets into a process just before it starts",
               "crunch-secrets"};
  app.set_version_flag(
      "--version",
      [] {
        return std::string("crunch-secrets " CS_VERSION " (git " CS_REVISION ")\n") +
               cs::vault::curl_version_line();
      },
      "Print the version, the git revision and the libcurl/TLS versions in use, and exit");
  app.footer(cs::cli::help_epilog());
  app.require_subcommand(1);
  std::string log_format = "text";
  bool quiet = false;
  bool verbose = false;
  cs::core::CommonOptions options;
  std::string wait = "60s";
  bool online = false;
  bool json = false;
  for (CLI::App* target : {&app}) {
    target->add_option("--log-format", log_format, "text or json")
        ->check(CLI::IsMember({"text", "json"}));
    target->add_flag("-q,--quiet", quiet, "Only errors");
    target->add_flag("-v,--verbose", verbose, "Debug lines (never values)");
  }
  CLI::App* run = app.add_subcommand("run", "Fetch secrets and exec COMMAND: run [OPTIONS] -- "
                                            "COMMAND [ARG...]");
  CLI::App* check = app.add_subcommand("check", "Validate references and print the plan");
  for (CLI::App* sub : {run, check}) {
    add_common(*sub, options, wait);
    sub->add_option("--log-format", log_format, "text or json")
        ->check(CLI::IsMember({"text", "json"}));
    sub->add_flag("-q,--quiet", quiet, "Only errors");
    sub->add_flag("-v,--verbose", verbose, "Debug lines (never values)");
  }
  // The host-side protocol (docs/crunch-run-protocol.md).
  cs::core::PrepareOptions prepare_options;
  int result_fd = -1;
  std::string state_file;
  CLI::App* prepare = app.add_subcommand(
      "prepare", "Resolve a container record's secrets on the host (docs/crunch-run-protocol.md)");
  prepare
      ->add_option("--container", prepare_options.container, "Container record (JSON), - = stdin")
      ->required();
  prepare
      ->add_option("--secrets-dir", prepare_options.secrets_dir,
                   "Fresh host directory on tmpfs for the files")
      ->required();
  prepare->add_option("--result-fd", result_fd, "Write the result on this descriptor")
      ->check(CLI::NonNegativeNumber);
  prepare->add_option("--vault-addr", prepare_options.vault_addr, "Vault address");
  CLI::App* cleanup =
      app.add_subcommand("cleanup", "Remove what prepare wrote and revoke its token");
  cleanup->add_option("--state", state_file, "The state file prepare named")->required();
  for (CLI::App* sub : {prepare, cleanup}) {
    sub->add_option("--wait", wait, "How long to retry an unavailable Vault (30, 30s, 1m30s)");
    sub->add_option("--log-format", log_format, "text or json")
        ->check(CLI::IsMember({"text", "json"}));
    sub->add_flag("-q,--quiet", quiet, "Only errors");
    sub->add_flag("-v,--verbose", verbose, "Debug lines (never values)");
  }
  // Without "--", the first word that is not an option starts the command.
  run->prefix_command(!dashdash);
  run->add_flag("--supervise", options.supervise.supervise,
                "Stay the parent of COMMAND: renew leases, rotate credentials, revoke at exit");
  run->add_flag("--redact", options.supervise.redact,
                "Replace secret values in COMMAND's output (implies --supervise)");
  run->add_flag("--keep-token", options.supervise.keep_token,
                "Do not revoke the Vault token crunch-secrets obtained");
  run->add_flag("--signal-group", options.supervise.signal_group,
                "Forward signals to COMMAND's process group (implies --supervise)");
  check->add_flag("--online", online, "Log in and check read capability for each path");
  check->add_flag("--json", json, "Print the plan as JSON");

  // The build generates the man page and the completions from the definitions above.
  if (ours.size() == 2 && ours[0] == "--generate") {
    if (ours[1] == "man") {
      cs::cli::write_man(std::cout, app, CS_VERSION);
    } else if (ours[1] == "bash") {
      cs::cli::write_bash_completion(std::cout, app);
    } else if (ours[1] == "zsh") {
      cs::cli::write_zsh_completion(std::cout, app);
    } else {
      return fail(ExitCode::usage, "--generate: use man, bash or zsh");
    }
    return std::cout.flush() ? 0 : static_cast<int>(ExitCode::cannot_create);
  }

  std::reverse(ours.begin(), ours.end());
  try {
    app.parse(ours);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      return app.exit(e); // --help or --version
    }
    return fail(ExitCode::usage, std::string(e.what()) + ": see crunch-secrets --help");
  }
  log::configure(verbose ? log::Level::debug
                 : quiet ? log::Level::error
                         : log::Level::info,
                 log_format == "json" ? log::Format::json : log::Format::text);

  auto d = cs::util::parse_duration(wait);
  if (!d) {
    return fail(ExitCode::usage, "--wait: " + d.error());
  }
  options.wait = *d;
  try {
    if (prepare->parsed() || cleanup->parsed()) {
      if (!command.empty()) {
        return fail(ExitCode::usage, "prepare and cleanup take no command: see crunch-secrets "
                                     "--help");
      }
      if (cleanup->parsed()) {
        return cs::core::cleanup_command(state_file, options.wait);
      }
      if (result_fd >= 0) {
        prepare_options.result_fd = result_fd;
      }
      prepare_options.wait = options.wait;
      return cs::core::prepare_command(prepare_options);
    }
    if (run->parsed()) {
      for (auto& extra : run->remaining()) {
        options.command.insert(options.command.end(), extra);
      }
      options.command.insert(options.command.end(), command.begin(), command.end());
      if (options.command.empty()) {
        return fail(ExitCode::usage, "run needs a command: crunch-secrets run [OPTIONS] -- "
                                     "COMMAND [ARG...]");
      }
      return cs::core::run_command(options);
    }
    options.command = command;
    return cs::core::check_command(options, online, json);
  } catch (const cs::core::Error& e) {
    return fail(e.code(), e.what());
  } catch (const std::bad_alloc&) {
    return fail(ExitCode::internal, "out of memory");
  } catch (const std::exception& e) {
    return fail(ExitCode::internal,
                std::string("internal error: ") + e.what() + ": please report this bug");
  }
}
