// libFuzzer target for the reference and template grammar: any input must parse or fail with a
// message, never crash, and a successful parse must describe itself as a printable label that
// parses back to the same reference when nothing had to be escaped or cut.
#include "crunchsecrets/core/reference.hpp"
#include "crunchsecrets/util/text.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto whole = cs::core::parse_whole_value(text); whole && *whole) {
    const cs::core::VaultRef& ref = **whole;
    const std::string again = cs::core::describe(cs::core::Ref{ref});
    // describe() is a label for messages: it shows unprintable bytes as escapes and cuts a
    // path over 128 bytes and a key over 64. What it shows must be printable, and a reference
    // it leaves whole must parse back to itself.
    if (cs::util::printable(again) != again) {
      std::abort();
    }
    const bool whole_label = ref.path.size() <= 128 && ref.key.size() <= 64 &&
                             cs::util::printable(ref.path) == ref.path &&
                             cs::util::printable(ref.key) == ref.key;
    if (whole_label) {
      auto reparsed = cs::core::parse_whole_value(again);
      if (!reparsed || !*reparsed || !(**reparsed == ref)) {
        std::abort();
      }
    }
  }
  for (auto named : {cs::core::NamedRefs::refused, cs::core::NamedRefs::allowed}) {
    if (auto t = cs::core::parse_template(text, named)) {
      for (const auto& seg : t->segments) {
        if (seg.ref) {
          (void)cs::core::describe(*seg.ref);
        }
      }
    }
  }
  (void)cs::core::looks_like_reference(text);
  return 0;
}
