// Zero-flag container markers (README.md, "Zero-flag container markers"): how `run` inside a
// container, and `prepare` for a container record, find the manifest, whether the command holds
// references, without any command-line option. (The CA bundle crunch-run mounts is found by
// util/ca_bundle, for Vault and Arvados alike.)
#pragma once

#include "crunchsecrets/core/manifest.hpp"
#include "crunchsecrets/vault/config.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cs::core {

// A manifest path (inside the container, for `run`).
inline constexpr const char* k_manifest_var = "CRUNCH_SECRETS_MANIFEST";
// An inline manifest: what a container request author can put in `environment`.
inline constexpr const char* k_manifest_json_var = "CRUNCH_SECRETS_MANIFEST_JSON";
// `1` or `true`: references in the command are substituted (as `--argv-templates`).
inline constexpr const char* k_argv_var = "CRUNCH_SECRETS_ARGV";
// The conventional manifest paths, in the order they are tried. A `json` mount of a container
// request at the last one works without any environment variable.
inline constexpr const char* k_conventional_manifests[] = {
    "/etc/crunch-secrets/manifest.yml",
    "/etc/crunch-secrets/manifest.yaml",
    "/etc/crunch-secrets/manifest.json",
};
// Says whether a file exists (injectable so that tests need no real /etc).
using FileExists = std::function<bool(const std::string&)>;

// Where the manifest of a run comes from.
struct ManifestSource {
  enum class Kind { none, file, inline_text };
  Kind kind = Kind::none;
  // The file path, or for inline text the name messages use ("$CRUNCH_SECRETS_MANIFEST_JSON").
  std::string name;
  std::string text; // the inline manifest
};

// Picks the manifest by precedence: `explicit_path` (--manifest), then $CRUNCH_SECRETS_MANIFEST
// (a path), then $CRUNCH_SECRETS_MANIFEST_JSON (inline), then the first conventional path that
// exists. `disabled` (--no-manifest) gives none. Setting both variables is a usage error
// (exit 64): which one was meant cannot be known.
ManifestSource find_manifest_source(const std::string& explicit_path, bool disabled,
                                    const vault::EnvLookup& env, const FileExists& exists);

// Reads and parses the manifest `source` names; null for none. Throws `core::Error`.
std::unique_ptr<Manifest> load_manifest_source(const ManifestSource& source);

// The value of $CRUNCH_SECRETS_ARGV: true for `1`/`true`/`yes`, false when unset, empty, `0`,
// `false` or `no`; anything else is a usage error naming the variable (exit 64).
bool argv_marker(const vault::EnvLookup& env);

// `environ` ("NAME=VALUE") without the inline manifest: its templates are the manifest's to
// resolve, not an environment value to substitute (that would put values in the variable).
std::vector<std::string> without_manifest_marker(std::vector<std::string> environ);

// The real file system's answer for `FileExists`.
bool file_exists(const std::string& path);

} // namespace cs::core
