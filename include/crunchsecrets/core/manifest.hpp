// The manifest (README.md, "Manifest"): one schema, `version: 1`, written in YAML or JSON.
#pragma once

#include "crunchsecrets/core/reference.hpp"
#include "crunchsecrets/util/names.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cs::core {

enum class Engine { automatic, kv2, kv1, generic };

// "auto", "kv2", "kv1", "generic": the manifest's `engine:` values.
const util::NameTable<Engine>& engine_names();
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

// "raw", "json", "dotenv", "ini", "aws-credentials", "template": the `format:` values.
const util::NameTable<FileFormat>& file_format_names();
std::string_view to_string(FileFormat format);

// The login method (README.md, "Authentication"); `automatic` picks the first that applies.
enum class AuthMethod { automatic, token, approle, wrapped, arvados };

// "auto", "token", "approle", "wrapped", "arvados": for --auth, `auth.method` and log lines.
const util::NameTable<AuthMethod>& auth_method_names();
std::string_view to_string(AuthMethod method);

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
  std::optional<AuthMethod> method; // nullopt = not given
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

// Reads a `template_file` for the manifest parser: the file's text or an error message.
using TemplateReader = std::function<util::Result<std::string>(const std::string& path)>;

// Parses manifest text `content`; `file` names it in messages. A pure function of its
// arguments: `template_file` contents come from `read_template`. Throws `core::Error`
// (invalid_input, or no_input for an unreadable template_file) with file:line.
Manifest parse_manifest(std::string_view content, const std::string& file,
                        const TemplateReader& read_template);

// As above, for a manifest held in memory: every `template_file` is refused (no_input).
Manifest parse_manifest(std::string_view content, const std::string& file);

// Reads and parses the manifest at `path`, reading template files from the file system.
Manifest load_manifest(const std::string& path);

// True when `name` is a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*).
bool is_env_name(std::string_view name);

} // namespace cs::core
