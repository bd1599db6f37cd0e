// The long-form help: one source for the epilog of `--help` and for the sections of the
// crunch-secrets(1) man page that are not options, so the two cannot say different things.
#pragma once

#include "crunchsecrets/core/error.hpp"

#include <string>
#include <vector>

namespace cs::cli {

// A term and what it means: an exit code, a variable, a manifest field, a file.
struct Entry {
  std::string term;
  std::string text;
};

// One section of the long-form help. `intro` holds paragraphs separated by "\n\n"; a paragraph
// starting with two spaces is preformatted (an example) and printed as it is.
struct Section {
  std::string title; // upper case, as a man page section
  std::string intro;
  std::vector<Entry> entries;
  bool in_help = false; // also printed after --help (man-only sections are long)
};

// What `code` means and what to do about it, one line.
std::string exit_code_meaning(core::ExitCode code);

// Every section, in man page order.
const std::vector<Section>& help_sections();

// The sections marked `in_help`, as plain text wrapped for a terminal.
std::string help_epilog();

} // namespace cs::cli
