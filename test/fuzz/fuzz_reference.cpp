// libFuzzer target for the reference and template grammar: any input must parse or fail with a
// message, never crash, and a successful parse must describe itself back to a parsable form.
#include "crunchsecrets/core/reference.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto whole = cs::core::parse_whole_value(text); whole && *whole) {
    // describe() of a parsed reference must parse again to the same reference.
    const std::string again = cs::core::describe(cs::core::Ref{**whole});
    auto reparsed = cs::core::parse_whole_value(again);
    if (!reparsed || !*reparsed || !(**reparsed == **whole)) {
      std::abort();
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
