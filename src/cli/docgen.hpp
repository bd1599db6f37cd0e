// The man page and the shell completions, generated from the same CLI11 definition that
// parses the command line and prints --help, so that none of them can list a different option.
// The build runs `crunch-secrets --generate man|bash|zsh` to produce the installed files.
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>

namespace cs::cli {

// crunch-secrets(1) in roff (man(7) macros) for `app`, its subcommands and `help_sections()`.
// `version` goes into the page's footer; the date is left out so builds are reproducible.
void write_man(std::ostream& out, const CLI::App& app, const std::string& version);

// A bash completion script (for bash-completion's `complete -F`).
void write_bash_completion(std::ostream& out, const CLI::App& app);

// A zsh completion function (`#compdef crunch-secrets`, for a directory on $fpath).
void write_zsh_completion(std::ostream& out, const CLI::App& app);

} // namespace cs::cli
