// `crunch-secrets run --supervise`: crunch-secrets stays the parent of COMMAND, keeps its
// credentials fresh (core::Session) and performs PID-1 duties (supervise::Supervisor), then
// revokes what it holds and removes the files (README.md, "Supervise mode").
#pragma once

#include "crunchsecrets/core/auth.hpp"
#include "crunchsecrets/core/plan.hpp"
#include "crunchsecrets/vault/config.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace cs::core {

// The command-line switches of supervise mode.
struct SuperviseOptions {
  bool supervise = false;    // --supervise
  bool redact = false;       // --redact
  bool keep_token = false;   // --keep-token
  bool signal_group = false; // --signal-group
};

// What run_command has already worked out, handed to the supervised run.
struct SuperviseContext {
  vault::Config config;
  AuthOptions auth;
  vault::EnvLookup env;
  std::vector<std::string> environ;
  std::string secrets_dir;
  bool allow_non_tmpfs = false;
  bool pass_auth_env = false;
  bool scrub_arvados_token = false;
  std::chrono::milliseconds wait{60000};
  SuperviseOptions options;
};

// True when the run should be supervised: --supervise, or the manifest asks for it.
bool wants_supervise(const SuperviseOptions& options, const Plan& plan);

// Logs in, fetches, writes the files, starts COMMAND (plan.argv) as a child and supervises it
// until it exits; then revokes the leases (and the token crunch-secrets obtained, unless
// --keep-token) and removes the files. Returns the child's exit status (128+N when killed by
// signal N). Throws `core::Error` only before the child starts.
int run_supervised(const std::shared_ptr<const Plan>& plan, const SuperviseContext& context);

} // namespace cs::core
