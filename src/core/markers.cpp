#include "crunchsecrets/core/markers.hpp"

#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/util/fs.hpp"
#include "crunchsecrets/util/text.hpp"

#include <sys/stat.h>

namespace cs::core {

namespace {

std::optional<std::string> non_empty(const vault::EnvLookup& env, const char* name) {
  auto v = env(name);
  if (v && v->empty()) {
    return std::nullopt;
  }
  return v;
}

} // namespace

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

ManifestSource find_manifest_source(const std::string& explicit_path, bool disabled,
                                    const vault::EnvLookup& env, const FileExists& exists) {
  ManifestSource s;
  if (disabled) {
    return s;
  }
  if (!explicit_path.empty()) {
    s.kind = ManifestSource::Kind::file;
    s.name = explicit_path;
    return s;
  }
  const auto path = non_empty(env, k_manifest_var);
  const auto inline_text = non_empty(env, k_manifest_json_var);
  if (path && inline_text) {
    throw Error(ExitCode::usage,
                "both {} and {} are set: set only one (a manifest path or an inline manifest)",
                k_manifest_var, k_manifest_json_var);
  }
  if (path) {
    s.kind = ManifestSource::Kind::file;
    s.name = *path;
    return s;
  }
  if (inline_text) {
    s.kind = ManifestSource::Kind::inline_text;
    s.name = fmt::format("${}", k_manifest_json_var);
    s.text = *inline_text;
    return s;
  }
  for (const char* p : k_conventional_manifests) {
    if (exists(p)) {
      s.kind = ManifestSource::Kind::file;
      s.name = p;
      return s;
    }
  }
  return s;
}

std::unique_ptr<Manifest> load_manifest_source(const ManifestSource& source) {
  switch (source.kind) {
  case ManifestSource::Kind::none:
    return nullptr;
  case ManifestSource::Kind::file:
    return std::make_unique<Manifest>(load_manifest(source.name));
  case ManifestSource::Kind::inline_text:
    // A template_file of an inline manifest is read from the file system, as for a file.
    return std::make_unique<Manifest>(parse_manifest(source.text, source.name, util::read_file));
  }
  return nullptr;
}

bool argv_marker(const vault::EnvLookup& env) {
  const auto v = env(k_argv_var);
  if (!v || v->empty() || *v == "0" || *v == "false" || *v == "no") {
    return false;
  }
  if (*v == "1" || *v == "true" || *v == "yes") {
    return true;
  }
  throw Error(ExitCode::usage, "{}='{}' must be 1 (substitute references in the command) or 0",
              k_argv_var, util::excerpt(*v));
}

std::vector<std::string> without_manifest_marker(std::vector<std::string> environ) {
  const std::string prefix = std::string(k_manifest_json_var) + "=";
  std::erase_if(environ, [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
  return environ;
}

} // namespace cs::core
