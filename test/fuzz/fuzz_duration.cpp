// libFuzzer target for duration parsing (--wait, VAULT_CLIENT_TIMEOUT).
#include "crunchsecrets/util/duration.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto d = cs::util::parse_duration(text); d && d->count() < 0) {
    std::abort(); // negative durations are never accepted
  }
  return 0;
}
