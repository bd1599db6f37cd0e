// libFuzzer target for the manifest parser: any input must parse or throw core::Error (which
// carries an exit code and a file:line message), never crash or throw anything else.
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/manifest.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // template_file would read the file system; the fuzzer stays on in-memory input.
  if (text.find("template_file") != std::string_view::npos) {
    return 0;
  }
  try {
    (void)cs::core::parse_manifest(text, "fuzz.yml");
  } catch (const cs::core::Error& e) {
    if (std::string_view(e.what()).substr(0, 9) != "fuzz.yml:") {
      std::abort(); // every manifest error names the file and line
    }
  }
  return 0;
}
