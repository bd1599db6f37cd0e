#include "crunchsecrets/util/log.hpp"

#include "crunchsecrets/util/text.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <unistd.h>

namespace cs::util::log {

namespace {
Level g_min = Level::info;
Format g_format = Format::text;

std::string_view level_name(Level level) {
  switch (level) {
  case Level::debug:
    return "debug";
  case Level::info:
    return "info";
  case Level::warning:
    return "warning";
  case Level::error:
    return "error";
  }
  return "error";
}

// The current time as RFC 3339 in UTC with milliseconds, e.g. 2026-12-04T20:41:07.123Z.
std::string now_rfc3339() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms));
}

} // namespace

void configure(Level least, Format line_format) {
  g_min = least;
  g_format = line_format;
}

Level min_level() {
  return g_min;
}

Format format() {
  return g_format;
}

std::optional<Level> parse_level(std::string_view text) {
  if (text == "error") {
    return Level::error;
  }
  if (text == "warning") {
    return Level::warning;
  }
  if (text == "info") {
    return Level::info;
  }
  if (text == "debug") {
    return Level::debug;
  }
  return std::nullopt;
}

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  append_json_string(out, text);
  out += '"';
  return out;
}

std::string format_line(Level level, std::string_view message, const Fields& fields,
                        Format line_format, std::string_view time) {
  // Messages are single lines by contract; fold any stray newline so a line stays a line. Each
  // input a message echoes is cut to a sane length where it is named (util::excerpt); a message
  // longer than this still echoed one whole, and is cut rather than flood the log.
  constexpr std::size_t k_max_message = 4096;
  std::string clean =
      message.size() > k_max_message ? excerpt(message, k_max_message) : std::string(message);
  for (char& c : clean) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  if (line_format == Format::text) {
    // A file name or a server's message must not drive the terminal: controls are shown
    // escaped (util::printable), never written raw.
    return fmt::format("crunch-secrets: {}: {}\n", level_name(level), printable(clean));
  }
  std::string line = fmt::format("{{\"time\":{},\"level\":\"{}\",\"msg\":{}", json_quote(time),
                                 level_name(level), json_quote(clean));
  if (!fields.reference.empty()) {
    line += fmt::format(",\"reference\":{}", json_quote(fields.reference));
  }
  if (!fields.path.empty()) {
    line += fmt::format(",\"path\":{}", json_quote(fields.path));
  }
  if (fields.status != 0) {
    line += fmt::format(",\"status\":{}", fields.status);
  }
  if (fields.attempt != 0) {
    line += fmt::format(",\"attempt\":{}", fields.attempt);
  }
  if (fields.exit_code != 0) {
    line += fmt::format(",\"exit_code\":{}", fields.exit_code);
  }
  line += "}\n";
  return line;
}

void write(Level level, std::string_view message, int exit_code) {
  Fields fields;
  fields.exit_code = exit_code;
  write(level, message, fields);
}

void write(Level level, std::string_view message, const Fields& fields) {
  if (level < g_min) {
    return;
  }
  const std::string line =
      format_line(level, message, fields, g_format, g_format == Format::json ? now_rfc3339() : "");
  // One write(2) per line so concurrent writers do not interleave within a line.
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) {
      break;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

} // namespace cs::util::log
