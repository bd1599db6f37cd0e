// libFuzzer target for the manifest parser: any input must parse or throw core::Error (which
// carries an exit code and a file:line message), never crash or throw anything else. The
// parser is pure, so `template_file` is fuzzed too: the injected reader answers with the
// path itself as the template text, or with an error for paths starting with "!".
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/manifest.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto reader = [](const std::string& path) -> cs::util::Result<std::string> {
    if (!path.empty() && path.front() == '!') {
      return cs::util::err("cannot read " + path + ": No such file or directory");
    }
    return path;
  };
  try {
    (void)cs::core::parse_manifest(text, "fuzz.yml", reader);
  } catch (const cs::core::Error& e) {
    const std::string_view what(e.what());
    // Every manifest error names the file and line; a template file's own error names the
    // template file first and the manifest line after it.
    if (what.substr(0, 9) != "fuzz.yml:" &&
        what.find("(template_file of fuzz.yml:") == std::string_view::npos) {
      std::abort();
    }
  }
  return 0;
}
