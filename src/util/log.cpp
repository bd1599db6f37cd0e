#include "crunchsecrets/util/log.hpp"

#include <cstdio>
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
} // namespace

void configure(Level min_level, Format format) {
  g_min = min_level;
  g_format = format;
}

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\r':
      out += "\\r";
      break;
    default:
      if (u < 0x20 || u == 0x7f) {
        out += fmt::format("\\u{:04x}", u);
      } else {
        out += c;
      }
    }
  }
  out += '"';
  return out;
}

void write(Level level, std::string_view message, int exit_code) {
  if (level < g_min) {
    return;
  }
  // Messages are single lines by contract; fold any stray newline so a line stays a line.
  std::string clean(message);
  for (char& c : clean) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  std::string line;
  if (g_format == Format::json) {
    line = fmt::format("{{\"level\":\"{}\",\"message\":{}", level_name(level), json_quote(clean));
    if (exit_code != 0) {
      line += fmt::format(",\"exit_code\":{}", exit_code);
    }
    line += "}\n";
  } else {
    line = fmt::format("crunch-secrets: {}: {}\n", level_name(level), clean);
  }
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
