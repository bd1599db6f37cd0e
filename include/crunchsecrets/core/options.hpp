// The options of `run` and `check` as data: names, metavariable, help, and the environment
// variable that sets an option when the command line does not. main() registers them with
// CLI11 from this table, so --help, the man page and the completions (src/cli/docgen) show
// them; the long help (references, environment, exit codes) is src/cli/help_text.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace cs::core {

// Where an option is accepted.
enum class OptionScope {
  global, // before or after the subcommand: logging options
  common, // `run` and `check`
  run,    // `run` only
  check,  // `check` only
};

struct OptionDoc {
  std::string_view names;   // CLI11 spelling, e.g. "-m,--manifest"
  std::string_view metavar; // e.g. "FILE"; empty for a flag
  std::string_view help;    // one sentence, no trailing period
  OptionScope scope = OptionScope::common;
  // The environment variable that sets the option when it is not given on the command line
  // (the command line wins), or empty. Only when `env_is_default` is true does main() apply
  // it generically; otherwise the variable is documented here and read where its precedence
  // is decided (e.g. CRUNCH_SECRETS_DIR ranks below the manifest's `secrets_dir`).
  std::string_view env;
  bool env_is_default = false;
  // The values allowed, comma-separated ("text,json"), or empty for any; CLI11 checks them and
  // the completions offer them.
  std::string_view choices;
};

// Every option of `run` and `check`, in --help order.
std::span<const OptionDoc> option_docs();

// The option whose long name (e.g. "--wait") is `long_name`; throws std::out_of_range if none.
const OptionDoc& option_doc(std::string_view long_name);

// The usage line of `subcommand` ("run", "check", or "" for the program).
std::string usage_text(std::string_view subcommand);

} // namespace cs::core
