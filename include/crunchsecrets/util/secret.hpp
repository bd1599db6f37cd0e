// Types that hold secret values: wiped when freed, formatted as "[redacted]".
#pragma once

#include <cstddef>
#include <fmt/format.h>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace cs::util {

// The text every secret-carrying value formats as.
inline constexpr std::string_view k_redacted = "[redacted]";

// Overwrites `size` bytes at `p` in a way the compiler may not optimise away.
void wipe(void* p, std::size_t size) noexcept;

// An allocator that wipes memory before returning it, so that secret bytes do not linger on
// the heap after a string or buffer holding them grows or dies.
template <typename T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() noexcept = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    wipe(p, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }
  template <typename U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};

// A string whose heap buffer is wiped when freed. Short strings live inside the object
// (small-string optimisation); `Secret` and `wipe_json` also wipe those.
using SecureString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;

// Parsed Vault responses: all strings (keys and values) use `SecureString`.
using SecretJson = nlohmann::basic_json<std::map, std::vector, SecureString>;

// Wipes every string in `j` in place (including short strings stored inside the object).
void wipe_json(SecretJson& j) noexcept;

// True when arrays and objects in the JSON text `text` nest deeper than `limit` (brackets in
// strings do not count). One pass, no recursion: a server's answer is checked with it before
// parsing, because the parsed value is walked recursively (dump, `wipe_json`) and a hostile
// answer a million levels deep would overflow the stack.
bool json_nests_deeper_than(const SecureString& text, std::size_t limit) noexcept;

// Wipes the bytes of `s`, including its capacity, then clears it.
void wipe_string(SecureString& s) noexcept;

// A secret value. It cannot be printed: formatting or streaming it yields "[redacted]"; the
// bytes are reachable only through `reveal()`, which names every place that uses them.
class Secret {
public:
  Secret() = default;
  explicit Secret(std::string_view value) : m_value(value.data(), value.size()) {}
  explicit Secret(const char* value) : Secret(std::string_view(value)) {}
  explicit Secret(SecureString value) : m_value(std::move(value)) {}
  Secret(const Secret& other) : m_value(other.m_value) {}
  Secret(Secret&& other) noexcept : m_value(std::move(other.m_value)) { other.clear(); }
  Secret& operator=(const Secret& other) {
    if (this != &other) {
      clear();
      m_value = other.m_value;
    }
    return *this;
  }
  Secret& operator=(Secret&& other) noexcept {
    if (this != &other) {
      clear();
      m_value = std::move(other.m_value);
      other.clear();
    }
    return *this;
  }
  ~Secret() { clear(); }

  std::string_view reveal() const noexcept { return {m_value.data(), m_value.size()}; }
  const SecureString& reveal_string() const noexcept { return m_value; }
  SecureString& mutable_string() noexcept { return m_value; }
  bool empty() const noexcept { return m_value.empty(); }
  std::size_t size() const noexcept { return m_value.size(); }
  void append(std::string_view s) { m_value.append(s.data(), s.size()); }
  void clear() noexcept { wipe_string(m_value); }
  bool operator==(const Secret& other) const noexcept { return reveal() == other.reveal(); }

private:
  SecureString m_value;
};

inline std::ostream& operator<<(std::ostream& os, const Secret&) {
  return os << k_redacted;
}

} // namespace cs::util

template <>
struct fmt::formatter<cs::util::Secret> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const cs::util::Secret&, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(cs::util::k_redacted, ctx);
  }
};
