// The plan: every reference found in the environment, the manifest and (opt-in) the
// arguments, reduced to a set of unique Vault reads. Built offline; `check` prints it.
#pragma once

#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/manifest.hpp"
#include "crunchsecrets/vault/client.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cs::core {

// An environment variable whose value has references.
struct EnvAssignment {
  std::string name;
  Template value;
  std::string origin; // "environment" or "file:line"
};

// Where one unique read comes from: the path, the version, and the engine it must be.
struct Fetch {
  vault::ReadSpec read;
  Engine engine = Engine::automatic;
  std::string first_user; // the first reference or manifest secret that needs it
};

// An Arvados credential (uuid or name as written) that references or manifest secrets need;
// each is fetched once.
struct CredentialNeed {
  std::string credential;
  std::vector<std::string> used_by; // "environment variable X", "file f (m.yml:3)", ...
};

// Built once per run and then shared read-only (std::shared_ptr<const Plan>) by the resolver
// and the supervise session, which outlive the function that built it.
struct Plan {
  std::shared_ptr<const Manifest> manifest; // null without a manifest
  std::vector<EnvAssignment> env;           // inherited-env references, then manifest env
  std::vector<FileSpec> files;
  bool argv_templates = false;
  std::vector<Template> argv;         // parsed COMMAND and ARGs
  std::vector<std::string> argv_text; // COMMAND and ARGs as given
  std::vector<Fetch> fetches;
  std::vector<CredentialNeed> credentials;

  // What `fetch_for` answers for a reference that reads an Arvados credential, not Vault.
  static constexpr std::size_t k_no_fetch = static_cast<std::size_t>(-1);
  // The credential `ref` reads (an `arvados:` reference, or a manifest secret with `source:
  // arvados-credential`), or null when it reads Vault.
  const std::string* credential_for(const Ref& ref) const;

  // Index into `fetches` for a path and version (asserts it exists).
  std::size_t fetch_index(const std::string& path,
                          const std::optional<std::uint64_t>& version) const;
  // The fetch index that `ref` reads, or `k_no_fetch` when it reads an Arvados credential.
  std::size_t fetch_for(const Ref& ref) const;
};

struct PlanInput {
  std::shared_ptr<const Manifest> manifest; // null without a manifest
  std::vector<std::string> environ;         // "NAME=VALUE" strings
  bool env_refs = true;
  bool argv_templates = false;
  std::vector<std::string> argv;
};

// The refused prefix ("auth/" or "sys/") that `path` starts with, or null. Answers under
// these carry Vault tokens (logins, token lookup and creation, wrapping) or administer Vault,
// so no reference may read them (SECURITY.md, "Tokens are never delivered").
const char* refused_path_prefix(std::string_view path);

// Builds the plan. Throws `core::Error` (invalid_input) naming the variable, argument or
// manifest file:line of a bad reference.
Plan build_plan(const PlanInput& input);

// The reads of `plan.fetches`, in order, for `vault::Client::read_all`.
std::vector<vault::ReadSpec> reads_of(const Plan& plan);

} // namespace cs::core
