// crunch-secrets entry point: parses arguments (options from core::option_docs(), the same
// table --help and the man page are made of) and forwards to core::run_command,
// core::check_command, core::prepare_command or core::cleanup_command; the one place that turns
// errors into exit codes.
#include "crunchsecrets/core/commands.hpp"
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/options.hpp"
#include "crunchsecrets/core/prepare.hpp"
#include "crunchsecrets/util/duration.hpp"
#include "crunchsecrets/util/fds.hpp"
#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/util/text.hpp"
#include "crunchsecrets/vault/curl_version.hpp"
#include "cs_revision.h"
#include "cs_version.h"
#include "docgen.hpp"
#include "help_text.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>

namespace {

using cs::core::ExitCode;
using cs::core::OptionScope;
namespace log = cs::util::log;

int fail(ExitCode code, const std::string& message) {
  log::write(log::Level::error, message, static_cast<int>(code));
  return static_cast<int>(code);
}

std::optional<std::string> getenv_opt(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    return std::nullopt;
  }
  return std::string(v);
}

// The usage lines come from core::usage_text, not from CLI11's generic "[OPTIONS] SUBCOMMAND".
class Formatter : public CLI::Formatter {
public:
  std::string make_usage(const CLI::App* app, std::string) const override {
    return "Usage: " + cs::core::usage_text(app->get_parent() != nullptr ? app->get_name() : "") +
           "\n";
  }
};

// Registers the options of the table on the apps and remembers them by long name, so that the
// environment can fill those the command line left unset.
class Binder {
public:
  template <typename T>
  void bind(CLI::App& app, std::string_view long_name, T& variable) {
    const cs::core::OptionDoc& doc = cs::core::option_doc(long_name);
    CLI::Option* opt = nullptr;
    if (doc.metavar.empty()) {
      opt = app.add_flag(std::string(doc.names), variable, std::string(doc.help));
    } else {
      opt = app.add_option(std::string(doc.names), variable, std::string(doc.help))
                ->type_name(std::string(doc.metavar));
      if (!doc.choices.empty()) {
        std::vector<std::string> choices;
        std::string_view rest = doc.choices;
        for (std::size_t comma; (comma = rest.find(',')) != std::string_view::npos;
             rest.remove_prefix(comma + 1)) {
          choices.emplace_back(rest.substr(0, comma));
        }
        choices.emplace_back(rest);
        opt->check(CLI::IsMember(choices));
      }
    }
    m_options[std::string(long_name)].push_back(opt);
  }

  // True when `long_name` was given on the command line (to the program or the subcommand).
  bool given(const std::string& long_name) const {
    auto it = m_options.find(long_name);
    if (it == m_options.end()) {
      return false;
    }
    for (const CLI::Option* o : it->second) {
      if (o->count() > 0) {
        return true;
      }
    }
    return false;
  }

  // The environment variable's value for `long_name` when the command line did not set it and
  // the table says the variable is the option's default; with the variable's name.
  std::optional<std::pair<std::string, std::string>> from_env(const std::string& long_name) const {
    const cs::core::OptionDoc& doc = cs::core::option_doc(long_name);
    if (!doc.env_is_default || given(long_name)) {
      return std::nullopt;
    }
    const std::string var(doc.env);
    if (auto v = getenv_opt(var.c_str())) {
      return std::make_pair(*v, var);
    }
    return std::nullopt;
  }

private:
  std::map<std::string, std::vector<CLI::Option*>> m_options;
};

// `auth_method` is the text of --auth, converted to the enum once parsing is done.
void add_common(CLI::App& cmd, Binder& b, cs::core::CommonOptions& o, std::string& auth_method,
                std::string& wait) {
  b.bind(cmd, "--manifest", o.manifest);
  b.bind(cmd, "--no-manifest", o.no_manifest);
  b.bind(cmd, "--secrets-dir", o.secrets_dir);
  b.bind(cmd, "--allow-non-tmpfs", o.allow_non_tmpfs);
  b.bind(cmd, "--argv-templates", o.argv_templates);
  b.bind(cmd, "--no-env-refs", o.no_env_refs);
  b.bind(cmd, "--auth", auth_method);
  b.bind(cmd, "--token-file", o.auth.token_file);
  b.bind(cmd, "--role-id", o.auth.role_id);
  b.bind(cmd, "--role-id-file", o.auth.role_id_file);
  b.bind(cmd, "--secret-id-file", o.auth.secret_id_file);
  b.bind(cmd, "--approle-mount", o.auth.approle_mount);
  b.bind(cmd, "--wrapped-token-file", o.auth.wrapped_token_file);
  b.bind(cmd, "--arvados-role", o.auth.arvados_role);
  b.bind(cmd, "--arvados-mount", o.auth.arvados_mount);
  b.bind(cmd, "--arvados-token-file", o.auth.arvados_token_file);
  b.bind(cmd, "--pass-auth-env", o.pass_auth_env);
  b.bind(cmd, "--scrub-arvados-token", o.scrub_arvados_token);
  b.bind(cmd, "--vault-addr", o.vault_addr);
  b.bind(cmd, "--wait", wait);
}

// The value of `--log-format` on the command line (before parsing, so that even a usage error
// is written in the requested format), else of CRUNCH_SECRETS_LOG_FORMAT.
std::string early_log_format(const std::vector<std::string>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--log-format" && i + 1 < args.size()) {
      return args[i + 1];
    }
    if (args[i].rfind("--log-format=", 0) == 0) {
      return args[i].substr(13);
    }
  }
  return getenv_opt("CRUNCH_SECRETS_LOG_FORMAT").value_or("text");
}

// The first word that is neither an option nor an option's value: the subcommand, if any.
std::optional<std::string> first_word(const std::vector<std::string>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--log-format" || a == "--log-level" || a == "--generate") {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-') {
      continue;
    }
    return a;
  }
  return std::nullopt;
}

// The first option before any subcommand that the program does not define, if any.
std::optional<std::string> unknown_option(const CLI::App& app,
                                          const std::vector<std::string>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.empty() || a[0] != '-') {
      return std::nullopt; // a subcommand: CLI11's own message names what is wrong there
    }
    const std::size_t eq = a.find('=');
    const std::string name = a.substr(0, eq);
    if (name == "-h" || name == "--help" || name == "--version") {
      continue;
    }
    const CLI::Option* opt = app.get_option_no_throw(name);
    if (opt == nullptr) {
      return name;
    }
    if (eq == std::string::npos && opt->get_items_expected_min() > 0) {
      ++i; // its value
    }
  }
  return std::nullopt;
}

// The command line: every option's variable, the subcommands, and the binder that knows
// which options the command line set.
struct CommandLine {
  CLI::App app{"crunch-secrets: put Vault/OpenBao secrets into a process just before it starts",
               "crunch-secrets"};
  Binder binder;
  std::vector<std::string> ours;    // the arguments before "--", for the parser
  std::vector<std::string> command; // the arguments after "--", untouched
  bool dashdash = false;
  std::string log_format;
  std::string log_level;
  bool quiet = false;
  bool verbose = false;
  cs::core::CommonOptions options;
  std::string auth_method;
  std::string wait;
  bool online = false;
  bool json = false;
  bool consume = false;
  // The host-side protocol (docs/crunch-run-protocol.md).
  cs::core::PrepareOptions prepare_options;
  int result_fd = -1;
  std::string state_file;
  CLI::App* run = nullptr;
  CLI::App* check = nullptr;
  CLI::App* prepare = nullptr;
  CLI::App* cleanup = nullptr;
};

// Splits at the first "--": everything after it is the command, untouched by the parser.
void split_args(CommandLine& cl, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!cl.dashdash && std::string_view(argv[i]) == "--") {
      cl.dashdash = true;
      continue;
    }
    (cl.dashdash ? cl.command : cl.ours).emplace_back(argv[i]);
  }
}

void add_host_commands(CommandLine& cl) {
  cl.prepare = cl.app.add_subcommand(
      "prepare", "Resolve a container record's secrets on the host (docs/crunch-run-protocol.md)");
  cl.prepare
      ->add_option("--container", cl.prepare_options.container,
                   "Container record (JSON), - = stdin")
      ->type_name("FILE")
      ->required();
  cl.prepare
      ->add_option("--secrets-dir", cl.prepare_options.secrets_dir,
                   "Fresh host directory on tmpfs for the files")
      ->type_name("DIR")
      ->required();
  cl.prepare->add_option("--result-fd", cl.result_fd, "Write the result on this descriptor")
      ->type_name("FD")
      ->check(CLI::NonNegativeNumber);
  cl.prepare->add_option("--vault-addr", cl.prepare_options.vault_addr, "Vault address")
      ->type_name("URL");
  cl.cleanup = cl.app.add_subcommand("cleanup", "Remove what prepare wrote and revoke its token");
  cl.cleanup->add_option("--state", cl.state_file, "The state file prepare named")
      ->type_name("FILE")
      ->required();
}

void define(CommandLine& cl) {
  CLI::App& app = cl.app;
  Binder& binder = cl.binder;
  app.formatter(std::make_shared<Formatter>());
  app.footer(cs::cli::help_epilog());
  app.set_version_flag(
      "--version",
      [] {
        return std::string("crunch-secrets " CS_VERSION " (git " CS_REVISION ")\n") +
               cs::vault::curl_version_line();
      },
      "Print the version, the git revision and the libcurl/TLS versions in use, and exit");
  app.require_subcommand(1);
  cl.run = app.add_subcommand("run", "Fetch the secrets, deliver them and exec COMMAND");
  cl.check =
      app.add_subcommand("check", "Validate references and print the plan; never runs COMMAND");
  add_host_commands(cl);
  for (CLI::App* target : {&app, cl.run, cl.check, cl.prepare, cl.cleanup}) {
    binder.bind(*target, "--log-format", cl.log_format);
    binder.bind(*target, "--log-level", cl.log_level);
    binder.bind(*target, "--quiet", cl.quiet);
    binder.bind(*target, "--verbose", cl.verbose);
  }
  for (CLI::App* sub : {cl.run, cl.check}) {
    add_common(*sub, binder, cl.options, cl.auth_method, cl.wait);
    sub->footer(cs::cli::help_epilog());
  }
  for (CLI::App* sub : {cl.prepare, cl.cleanup}) {
    binder.bind(*sub, "--wait", cl.wait);
  }
  // Without "--", the first word that is not an option starts the command.
  cl.run->prefix_command(!cl.dashdash);
  binder.bind(*cl.run, "--supervise", cl.options.supervise.supervise);
  binder.bind(*cl.run, "--redact", cl.options.supervise.redact);
  binder.bind(*cl.run, "--keep-token", cl.options.supervise.keep_token);
  binder.bind(*cl.run, "--signal-group", cl.options.supervise.signal_group);
  binder.bind(*cl.check, "--online", cl.online);
  binder.bind(*cl.check, "--consume-credentials", cl.consume);
  binder.bind(*cl.check, "--json", cl.json);
}

// `--generate man|bash|zsh`: the build generates the man page and the completions from the
// definitions.
int generate(CLI::App& app, const std::string& what) {
  if (what == "man") {
    cs::cli::write_man(std::cout, app, CS_VERSION);
  } else if (what == "bash") {
    cs::cli::write_bash_completion(std::cout, app);
  } else if (what == "zsh") {
    cs::cli::write_zsh_completion(std::cout, app);
  } else {
    return fail(ExitCode::usage, "--generate: use man, bash or zsh");
  }
  return std::cout.flush() ? 0 : static_cast<int>(ExitCode::cannot_create);
}

// Fills the options the command line left unset from their environment variables, checks
// them and configures logging. Returns an exit code when a setting is wrong.
std::optional<int> apply_settings(CommandLine& cl) {
  // A variable whose option the command line sets is not read: the command line wins, even
  // over a value that would be invalid (which is then ignored with a warning).
  std::vector<std::string> ignored;
  auto setting = [&](const std::string& name, std::string& value, const std::string& fallback,
                     bool given_otherwise = false) -> std::string {
    const cs::core::OptionDoc& doc = cs::core::option_doc(name);
    if (given_otherwise && doc.env_is_default) {
      if (auto v = getenv_opt(std::string(doc.env).c_str())) {
        ignored.push_back(fmt::format("{}='{}'", doc.env, cs::util::excerpt(*v)));
      }
    } else if (auto env = cl.binder.from_env(name)) {
      value = env->first;
      return env->second + "='" + cs::util::excerpt(env->first) + "'";
    }
    if (value.empty()) {
      value = fallback;
    }
    return name + " " + cs::util::excerpt(value);
  };
  const std::string format_source = setting("--log-format", cl.log_format, "text");
  if (cl.log_format != "text" && cl.log_format != "json") {
    return fail(ExitCode::usage,
                format_source + ": the log format must be text or json: see crunch-secrets --help");
  }
  // -v and -q are the command line too: they win over CRUNCH_SECRETS_LOG_LEVEL.
  const std::string level_source =
      setting("--log-level", cl.log_level, "info", cl.verbose || cl.quiet);
  auto level = log::parse_level(cl.log_level);
  if (!level) {
    return fail(ExitCode::usage, level_source + ": the log level must be error, info or debug: "
                                                "see crunch-secrets --help");
  }
  if (cl.verbose) {
    level = log::Level::debug;
  } else if (cl.quiet) {
    level = log::Level::error;
  }
  log::configure(*level, cl.log_format == "json" ? log::Format::json : log::Format::text);
  for (const std::string& var : ignored) {
    log::warning("{} is ignored: -q/-v on the command line set the log level", var);
  }

  const std::string auth_source = setting("--auth", cl.auth_method, "auto");
  const auto& methods = cs::core::auth_method_names();
  if (auto method = methods.parse(cl.auth_method)) {
    cl.options.auth.method = *method;
  } else {
    return fail(ExitCode::usage, auth_source + ": unknown login method: use " +
                                     methods.list(" or ") + " (see crunch-secrets --help)");
  }
  const std::string wait_source = setting("--wait", cl.wait, "60s");
  auto d = cs::util::parse_duration(cl.wait);
  if (!d) {
    return fail(ExitCode::usage, wait_source + ": " + cs::util::excerpt(d.error(), 160));
  }
  cl.options.wait = *d;
  if (cl.consume && !cl.online) {
    return fail(ExitCode::usage, "--consume-credentials applies only with --online: see "
                                 "crunch-secrets --help");
  }
  cl.options.consume_credentials = cl.consume;
  return std::nullopt;
}

// Runs the parsed subcommand. Throws `core::Error`.
int dispatch(CommandLine& cl) {
  cs::core::CommonOptions& options = cl.options;
  if (cl.prepare->parsed() || cl.cleanup->parsed()) {
    if (!cl.command.empty()) {
      return fail(ExitCode::usage, "prepare and cleanup take no command: see crunch-secrets "
                                   "--help");
    }
    if (cl.cleanup->parsed()) {
      return cs::core::cleanup_command(cl.state_file, options.wait);
    }
    if (cl.result_fd >= 0) {
      cl.prepare_options.result_fd = cl.result_fd;
    }
    cl.prepare_options.wait = options.wait;
    return cs::core::prepare_command(cl.prepare_options);
  }
  if (cl.run->parsed()) {
    for (auto& extra : cl.run->remaining()) {
      options.command.insert(options.command.end(), extra);
    }
    options.command.insert(options.command.end(), cl.command.begin(), cl.command.end());
    if (options.command.empty()) {
      return fail(ExitCode::usage, "run needs a command: crunch-secrets run [OPTIONS] -- "
                                   "COMMAND [ARG...]");
    }
    return cs::core::run_command(options);
  }
  options.command = cl.command;
  return cs::core::check_command(
      options, cs::core::CheckOptions{cl.online, cl.json ? cs::core::CheckOptions::Format::json
                                                         : cs::core::CheckOptions::Format::text});
}

} // namespace

int main(int argc, char** argv) {
  // Before anything opens a descriptor: COMMAND inherits exactly these (util/fds.hpp).
  cs::util::record_inherited_fds();
  CommandLine cl;
  split_args(cl, argc, argv);
  const std::string early_format = early_log_format(cl.ours);
  log::configure(log::Level::info, early_format == "json" ? log::Format::json : log::Format::text);
  if (auto word = first_word(cl.ours);
      word && *word != "run" && *word != "check" && *word != "prepare" && *word != "cleanup") {
    return fail(ExitCode::usage, fmt::format("unknown subcommand '{}': use run or check (or, on "
                                             "the host, prepare or cleanup; see crunch-secrets "
                                             "--help)",
                                             cs::util::excerpt(*word)));
  }
  define(cl);
  if (cl.ours.size() == 2 && cl.ours[0] == "--generate") {
    return generate(cl.app, cl.ours[1]);
  }
  const std::vector<std::string> given = cl.ours;
  std::reverse(cl.ours.begin(), cl.ours.end());
  try {
    cl.app.parse(cl.ours);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      return cl.app.exit(e); // --help or --version
    }
    // Without a subcommand CLI11 only says one is required; an option it does not know is
    // the likelier mistake, so name it.
    if (auto unknown = unknown_option(cl.app, given)) {
      return fail(ExitCode::usage, fmt::format("unknown option '{}': see crunch-secrets --help",
                                               cs::util::excerpt(*unknown)));
    }
    return fail(ExitCode::usage, cs::util::excerpt(e.what(), 512) + ": see crunch-secrets --help");
  }
  if (auto code = apply_settings(cl)) {
    return *code;
  }
  try {
    return dispatch(cl);
  } catch (const cs::core::Error& e) {
    log::Fields fields = e.fields();
    fields.exit_code = static_cast<int>(e.code());
    log::write(log::Level::error, e.what(), fields);
    return fields.exit_code;
  } catch (const std::bad_alloc&) {
    return fail(ExitCode::internal, "out of memory");
  } catch (const std::exception& e) {
    return fail(ExitCode::internal,
                std::string("internal error: ") + e.what() + ": please report this bug");
  }
}
