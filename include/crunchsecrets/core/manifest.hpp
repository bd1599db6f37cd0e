// The manifest (README.md, "Manifest"): one schema, `version: 1`, written in YAML or JSON.
#pragma once

#include "crunchsecrets/core/reference.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cs::core {

enum class Engine { automatic, kv2, kv1, generic };

std::string_view to_string(Engine engine);

// A secret declared in the manifest.
struct SecretSpec {
  std::string name;
  std::string path;
  Engine engine = Engine::automatic;
  std::optional<std::string> key;
  std::optional<std::uint64_t> version;
  std::string origin; // "file:line" for messages
  // Supervise mode (README.md, "Supervise mode"): how often to re-check a KV v2 secret's
  // version (absent: never), and what to do when the secret's data changes.
  std::optional<std::chrono::milliseconds> refresh;
  std::string on_change; // "signal", "restart", "none"; empty = the default (signal)
  int change_signal = 0; // for on_change signal; 0 = the default (SIGHUP)
  // `source: arvados-credential`: the credential (uuid or name) whose `external_id` and
  // `secret` make this secret's fields; `path` is then empty.
  std::string credential;
  bool from_arvados() const { return !credential.empty(); }
};

// The manifest's `supervise:` block: its presence selects supervise mode.
struct SuperviseSpec {
  bool present = false;
  int stop_signal = 0;                            // 0 = SIGTERM
  std::optional<std::chrono::milliseconds> grace; // before SIGKILL; default 10 s
  std::string on_expiry;                          // "stop" or "keep"; empty = stop
  bool signal_group = false;                      // forward signals to the process group
  bool redact = false;                            // same as --redact
};

enum class FileFormat { raw, json, dotenv, ini, aws_credentials, templated };

std::string_view to_string(FileFormat format);

// A file to write in the secrets directory.
struct FileSpec {
  std::string path; // relative to the secrets directory
  FileFormat format = FileFormat::raw;
  std::optional<Ref> source; // for every format but `templated`
  Template body;             // for `templated`
  std::string template_file; // where `body` came from, if a file
  std::string section;       // ini section / aws profile
  unsigned mode = 0400;
  std::string origin;
};

// An environment variable set from a template.
struct EnvSpec {
  std::string name;
  Template value;
  std::string origin;
};

struct AuthSpec {
  std::string method; // empty = not given
  std::string role;
  std::string mount;
};

struct Manifest {
  std::string file; // where it was read from
  std::vector<SecretSpec> secrets;
  std::vector<EnvSpec> env;
  std::vector<FileSpec> files;
  AuthSpec auth;
  bool argv_templates = false;
  std::string secrets_dir;
  SuperviseSpec supervise;

  // True when the manifest asks for supervise mode: a `supervise:` block, or a secret with
  // `refresh` or `on_change`.
  bool wants_supervise() const;
  const SecretSpec* find_secret(std::string_view name) const;
};

// Parses manifest text `content`; `file` names it in messages. Throws `core::Error`
// (invalid_input, or no_input for an unreadable template_file) with file:line.
Manifest parse_manifest(std::string_view content, const std::string& file);

// Reads and parses the manifest at `path`.
Manifest load_manifest(const std::string& path);

// True when `name` is a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*).
bool is_env_name(std::string_view name);

} // namespace cs::core
