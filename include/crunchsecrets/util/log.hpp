// crunch-secrets' own log lines on stderr, as text or JSON. Callers pass references, paths
// and keys, never values: `Secret` formats as "[redacted]" even if passed by mistake.
#pragma once

#include <fmt/format.h>
#include <string_view>

namespace cs::util::log {

enum class Level { debug, info, warning, error };
enum class Format { text, json };

// Sets the least severe level written and the line format.
void configure(Level min_level, Format format);

// Writes one line at `level`; `exit_code`, when not 0, is added to JSON lines.
void write(Level level, std::string_view message, int exit_code = 0);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warning(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::warning, fmt::format(f, std::forward<Args>(args)...));
}

// Renders `text` as a JSON string literal (used by the JSON line format and `check --json`).
std::string json_quote(std::string_view text);

} // namespace cs::util::log
