// The host-side protocol (docs/crunch-run-protocol.md): `prepare` resolves a container
// record's markers before the container starts and hands a launcher one JSON result; `cleanup`
// removes the files and revokes what prepare obtained.
#pragma once

#include "crunchsecrets/core/markers.hpp"
#include "crunchsecrets/core/plan.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace cs::core {

// Where the secrets directory appears in the container when neither the manifest's
// `secrets_dir` nor the record's `CRUNCH_SECRETS_DIR` says.
inline constexpr const char* k_default_container_secrets_dir = "/var/run/crunch-secrets";

// What prepare uses of a container record (`GET /arvados/v1/containers/{uuid}`).
struct ContainerRecord {
  std::string uuid;
  std::vector<std::pair<std::string, std::string>> environment; // in the record's order
  std::vector<std::string> command;
  // `json` and `text` mounts: target path -> content as text (JSON re-serialised).
  std::vector<std::pair<std::string, std::string>> content_mounts;

  std::optional<std::string> env(const std::string& name) const;
  const std::string* mount_content(const std::string& path) const;
};

// Parses a container record; `origin` names it in messages. Unknown fields are ignored (the
// record grows between Arvados releases). Throws `core::Error` (invalid_input).
ContainerRecord parse_container_record(std::string_view json, const std::string& origin);

// The offline part of prepare: the record's markers made into a plan.
struct PreparedRecord {
  std::shared_ptr<const Plan> plan;  // owns the manifest (`plan->manifest`)
  std::string container_secrets_dir; // where DIR is mounted in the container
  std::vector<std::string> unset_environment;
};

// Finds the record's markers (environment references, a manifest from
// CRUNCH_SECRETS_MANIFEST_JSON or a `json`/`text` mount, argv references when asked) and
// builds the plan. Refuses a manifest `template_file` (it would name a file on the host).
// Throws `core::Error`.
PreparedRecord plan_container(const ContainerRecord& record);

struct PrepareOptions {
  std::string container;        // a path, or "-" for stdin
  std::string secrets_dir;      // DIR on the host (tmpfs)
  std::optional<int> result_fd; // else stdout
  std::string vault_addr;       // --vault-addr
  std::chrono::milliseconds wait{60000};
};

// `crunch-secrets prepare`: returns 0 after writing the result; throws `core::Error` (and
// leaves no file and no valid token behind) otherwise.
int prepare_command(const PrepareOptions& options);

// `crunch-secrets cleanup --state FILE`: idempotent; returns 0 when everything is gone.
int cleanup_command(const std::string& state_file, std::chrono::milliseconds wait);

} // namespace cs::core
