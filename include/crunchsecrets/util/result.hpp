// A value or an error message: the return type of utility code that must not throw.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace cs::util {

// Wraps an error message so that `Result<std::string>` can tell a value from an error.
struct Err {
  std::string message;
};

inline Err err(std::string message) {
  return Err{std::move(message)};
}

// `Result<T>` holds either a `T` or an error message (never a secret value).
template <typename T>
class Result {
public:
  Result(T value) : m_v(std::in_place_index<0>, std::move(value)) {}
  Result(Err e) : m_v(std::in_place_index<1>, std::move(e.message)) {}

  explicit operator bool() const { return m_v.index() == 0; }
  bool ok() const { return m_v.index() == 0; }
  T& value() & { return std::get<0>(m_v); }
  T&& value() && { return std::get<0>(std::move(m_v)); }
  const T& value() const& { return std::get<0>(m_v); }
  T* operator->() { return &std::get<0>(m_v); }
  const T* operator->() const { return &std::get<0>(m_v); }
  T& operator*() & { return std::get<0>(m_v); }
  const std::string& error() const { return std::get<1>(m_v); }

private:
  std::variant<T, std::string> m_v;
};

// `Status` is a `Result` without a value.
class Status {
public:
  Status() = default;
  Status(Err e) : m_error(std::move(e.message)), m_failed(true) {}
  explicit operator bool() const { return !m_failed; }
  bool ok() const { return !m_failed; }
  const std::string& error() const { return m_error; }

private:
  std::string m_error;
  bool m_failed = false;
};

} // namespace cs::util
