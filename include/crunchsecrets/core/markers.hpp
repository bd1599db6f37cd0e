// Zero-flag container markers (README.md, "Zero-flag container markers"): how `run` inside a
// container, and `prepare` for a container record, find the manifest, whether the command holds
// references, and which CA bundle verifies Vault, without any command-line option.
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
// The CA bundle crunch-run bind-mounts into a container with `runtime_constraints.API: true`;
// used for Vault when no CA is configured, because a private Vault CA belongs in it.
inline constexpr const char* k_container_ca_bundle = "/etc/arvados/ca-certificates.crt";

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

// When no CA is configured for Vault (no VAULT_CACERT/VAULT_CAPATH, verification not skipped)
// and the container CA bundle exists, uses it. Returns true when it did.
bool apply_container_ca(vault::Config& config, const FileExists& exists);

// `environ` ("NAME=VALUE") without the inline manifest: its templates are the manifest's to
// resolve, not an environment value to substitute (that would put values in the variable).
std::vector<std::string> without_manifest_marker(std::vector<std::string> environ);

// The real file system's answer for `FileExists`.
bool file_exists(const std::string& path);

} // namespace cs::core
