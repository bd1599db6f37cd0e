#include "crunchsecrets/util/secret.hpp"

#include <cstring>

namespace cs::util {

void wipe(void* p, std::size_t size) noexcept {
  if (p != nullptr && size > 0) {
    explicit_bzero(p, size);
  }
}

void wipe_string(SecureString& s) noexcept {
  // Wipe the whole capacity: this covers the small-string buffer inside the object, which the
  // allocator never sees.
  if (s.capacity() > 0) {
    wipe(s.data(), s.capacity());
  }
  s.clear();
}

bool json_nests_deeper_than(const SecureString& text, std::size_t limit) noexcept {
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) {
        return true;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

void wipe_json(SecretJson& j) noexcept {
  if (j.is_string()) {
    wipe_string(*j.get_ptr<SecretJson::string_t*>());
  } else if (j.is_object()) {
    for (auto& [key, value] : j.items()) {
      wipe_json(value);
    }
    // Keys are const inside the map; wipe them through a copy-free walk of the map itself.
    auto* obj = j.get_ptr<SecretJson::object_t*>();
    for (auto& entry : *obj) {
      auto& key = const_cast<SecureString&>(entry.first);
      wipe(key.data(), key.capacity());
    }
  } else if (j.is_array()) {
    for (auto& value : j) {
      wipe_json(value);
    }
  }
}

} // namespace cs::util
