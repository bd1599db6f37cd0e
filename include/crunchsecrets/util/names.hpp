// One table of names per enumeration: parsing, printing, the list in error messages and the
// map the command-line parser checks against all come from the same entries.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cs::util {

template <typename E>
class NameTable {
public:
  NameTable(std::initializer_list<std::pair<E, std::string_view>> entries) : m_entries(entries) {}

  // The name of `value`; every enumerator has one entry.
  std::string_view name(E value) const {
    for (const auto& [v, n] : m_entries) {
      if (v == value) {
        return n;
      }
    }
    return m_entries.front().second;
  }

  // The enumerator called `text` (case-sensitive), or nullopt.
  std::optional<E> parse(std::string_view text) const {
    for (const auto& [v, n] : m_entries) {
      if (n == text) {
        return v;
      }
    }
    return std::nullopt;
  }

  // All names in table order, separated by ", " and the last one by `last_separator`:
  // "auto, kv2, kv1, generic" or, with " or ", "auto, token, approle, wrapped or arvados".
  std::string list(std::string_view last_separator = ", ") const {
    std::string out;
    for (std::size_t i = 0; i < m_entries.size(); ++i) {
      if (i > 0) {
        out += i + 1 == m_entries.size() ? last_separator : std::string_view(", ");
      }
      out += m_entries[i].second;
    }
    return out;
  }

  // All names in table order, for CLI11's IsMember validator.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& entry : m_entries) {
      out.emplace_back(entry.second);
    }
    return out;
  }

private:
  std::vector<std::pair<E, std::string_view>> m_entries;
};

} // namespace cs::util
