// The `run` and `check` commands, called by main() after argument parsing.
#pragma once

#include "crunchsecrets/core/auth.hpp"
#include "crunchsecrets/core/deliver.hpp"
#include "crunchsecrets/core/supervise_run.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace cs::core {

struct CommonOptions {
  std::string manifest;
  bool no_manifest = false;
  std::string secrets_dir;
  bool allow_non_tmpfs = false;
  bool argv_templates = false;
  bool no_env_refs = false;
  AuthOptions auth;
  bool pass_auth_env = false;
  bool scrub_arvados_token = false;
  std::string vault_addr;
  std::chrono::milliseconds wait{60000};
  // `check --online` only: also log in with credentials that may be single use.
  bool consume_credentials = false;
  std::vector<std::string> command;
  SuperviseOptions supervise; // run only
};

// Runs COMMAND with its secrets. Returns only on failure (an exit code); throws `core::Error`.
int run_command(const CommonOptions& options);

struct CheckOptions {
  enum class Format { text, json };
  bool online = false; // log in and check read capability for each path
  Format format = Format::text;
};

// Validates and prints the plan; when `check.online`, checks capabilities in Vault.
int check_command(const CommonOptions& options, const CheckOptions& check);

} // namespace cs::core
