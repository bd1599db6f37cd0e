// crunch-secrets' own log lines on stderr, as text or JSON. Callers pass references, paths
// and keys, never values: `Secret` formats as "[redacted]" even if passed by mistake.
#pragma once

#include <fmt/format.h>
#include <optional>
#include <string>
#include <string_view>

namespace cs::util::log {

enum class Level { debug, info, warning, error };
enum class Format { text, json };

// Structured fields of a line. In JSON each set field becomes a member of the object; text
// lines carry them in the message already and ignore them.
struct Fields {
  std::string reference; // the reference as written, e.g. "vault:secret/data/app#password"
  std::string path;      // an API path, e.g. "secret/data/app"
  long status = 0;       // an HTTP status; 0 = none
  unsigned attempt = 0;  // a 1-based attempt number; 0 = none
  int exit_code = 0;     // the exit code the line announces; 0 = none
};

// Sets the least severe level written and the line format.
void configure(Level least, Format line_format);

// The level and format currently configured (for callers that must agree with them).
Level min_level();
Format format();

// Parses "error", "info" or "debug" (the values of --log-level and CRUNCH_SECRETS_LOG_LEVEL);
// "warning" is accepted as well.
std::optional<Level> parse_level(std::string_view text);

// Writes one line at `level`. A JSON line is one object with `time` (RFC 3339, UTC), `level`,
// `msg` and the set `fields`.
void write(Level level, std::string_view message, const Fields& fields);

// Writes one line at `level`; `exit_code`, when not 0, is added to JSON lines.
void write(Level level, std::string_view message, int exit_code = 0);

// The line `write` would produce (without writing it), for unit tests; `time` is the
// timestamp to put in JSON lines.
std::string format_line(Level level, std::string_view message, const Fields& fields,
                        Format line_format, std::string_view time);

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
