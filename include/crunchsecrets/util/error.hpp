// Errors that end crunch-secrets before the command starts, each with the documented exit code
// (README.md, "Exit codes"). They live in util so that every layer (vault, arvados, core) can
// throw them without depending on core; core/error.hpp names them in core's namespace.
#pragma once

#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/util/result.hpp"

#include <fmt/format.h>
#include <stdexcept>
#include <string>
#include <utility>

namespace cs::util {

enum class ExitCode : int {
  ok = 0,
  usage = 64,
  invalid_input = 65,
  no_input = 66,
  unavailable = 69,
  internal = 70,
  cannot_create = 73,
  protocol = 76,
  permission_denied = 77,
  config = 78,
  not_found = 79,
  auth_failed = 80,
  not_executable = 126,
  command_not_found = 127,
};

// An error that ends crunch-secrets before the command starts. `what()` is one line that
// names the reference, file:line or path and says what to do; it never holds a value.
class Error : public std::runtime_error {
public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), m_code(code) {}
  template <typename... Args>
  Error(ExitCode code, fmt::format_string<Args...> f, Args&&... args)
      : std::runtime_error(fmt::format(f, std::forward<Args>(args)...)), m_code(code) {}
  ExitCode code() const noexcept { return m_code; }

  // Structured fields for JSON log lines (reference, path, HTTP status); the exit code is
  // added by whoever writes the line.
  const log::Fields& fields() const noexcept { return m_fields; }
  Error& with_fields(log::Fields fields) {
    m_fields = std::move(fields);
    return *this;
  }

private:
  ExitCode m_code;
  log::Fields m_fields;
};

// Returns the value of `result`, or throws `Error(code, ...)` whose message is `f` formatted
// with `args` followed by the result's error message as the last argument. Replaces the
// pattern `if (!r) throw Error(code, "...: {}", ..., r.error());`.
template <typename T, typename... Args>
T value_or_throw(Result<T>&& result, ExitCode code,
                 fmt::format_string<Args..., const std::string&> f, Args&&... args) {
  if (!result) {
    throw Error(code, fmt::format(f, std::forward<Args>(args)..., result.error()));
  }
  return std::move(result).value();
}

// Throws `Error(code, ...)` like `value_or_throw` when `status` is a failure.
template <typename... Args>
void ok_or_throw(const Status& status, ExitCode code,
                 fmt::format_string<Args..., const std::string&> f, Args&&... args) {
  if (!status) {
    throw Error(code, fmt::format(f, std::forward<Args>(args)..., status.error()));
  }
}

} // namespace cs::util
