// Parsing of durations given on the command line or in the environment.
#pragma once

#include "crunchsecrets/util/result.hpp"

#include <chrono>
#include <string_view>

namespace cs::util {

// Parses `text` as plain seconds ("30", "1.5") or a Go-style duration ("30s", "1m30s",
// "500ms", "2h"). Negative durations are refused.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

} // namespace cs::util
