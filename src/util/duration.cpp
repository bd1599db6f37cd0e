#include "crunchsecrets/util/duration.hpp"

#include "crunchsecrets/util/text.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

namespace cs::util {

namespace {

// Parses a non-negative decimal number ("1", "1.5") at the start of `text`; advances it.
bool take_number(std::string_view& text, double& out) {
  std::size_t i = 0;
  bool digits = false;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) != 0)) {
    ++i;
    digits = true;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) != 0)) {
      ++i;
      digits = true;
    }
  }
  if (!digits) {
    return false;
  }
  // strtod, unlike stod, reports overflow as HUGE_VAL instead of throwing; the caller checks
  // that the total is finite and in range.
  out = std::strtod(std::string(text.substr(0, i)).c_str(), nullptr);
  text.remove_prefix(i);
  return true;
}

} // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  // The text is echoed in the error: cut to a sane length, control characters escaped.
  const std::string shown = excerpt(text);
  if (text.empty()) {
    return err("empty duration");
  }
  double total_ms = 0;
  double number = 0;
  std::string_view rest = text;
  if (!take_number(rest, number)) {
    return err("invalid duration '" + shown + "': use seconds (30) or a unit (30s, 1m30s, 500ms)");
  }
  if (rest.empty()) {
    total_ms = number * 1000.0;
  } else {
    while (true) {
      struct Unit {
        std::string_view name;
        double ms;
      };
      static constexpr Unit units[] = {{"ms", 1.0},     {"h", 3600000.0}, {"m", 60000.0},
                                       {"s", 1000.0},   {"us", 0.001},    {"µs", 0.001},
                                       {"ns", 0.000001}};
      bool matched = false;
      for (const auto& unit : units) {
        if (rest.substr(0, unit.name.size()) == unit.name) {
          total_ms += number * unit.ms;
          rest.remove_prefix(unit.name.size());
          matched = true;
          break;
        }
      }
      if (!matched) {
        return err("invalid duration '" + shown + "': unknown unit (use h, m, s or ms)");
      }
      if (rest.empty()) {
        break;
      }
      if (!take_number(rest, number)) {
        return err("invalid duration '" + shown + "': use seconds (30) or a unit (30s, 1m30s)");
      }
    }
  }
  if (!std::isfinite(total_ms) || total_ms > 1e12) {
    return err("invalid duration '" + shown + "': too large");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(total_ms)));
}

} // namespace cs::util
