// Delivery: files into the secrets directory (all or nothing), the child's environment and
// argument vector, and exec.
#pragma once

#include "crunchsecrets/core/resolve.hpp"
#include "crunchsecrets/util/fs.hpp"

#include <csignal>
#include <memory>
#include <string>
#include <vector>

namespace cs::core {

struct SecretsDirOptions {
  std::string path;
  bool allow_non_tmpfs = false;
  // Write straight into `path` (created 0700, or an existing empty private directory) instead
  // of a per-run directory behind a symlink: for `prepare`, whose directory is fresh per
  // container and bind-mounted by the launcher.
  bool in_place = false;
};

// Files written into the secrets directory (SECURITY.md, "Secret files"). The configured path
// `PARENT/NAME` is a symlink, made by crunch-secrets, to a fresh 0700 directory
// `PARENT/.NAME.run-RANDOM` holding only this run's files: every file is written there, and
// only when all are written does the symlink swap to it (one `rename`), so programs find the
// files at the paths the manifest names and never see an earlier run's. Until `keep()` is
// called, the destructor removes the run's directory (and the symlink if it was swapped).
class FileDelivery {
public:
  FileDelivery() = default;
  FileDelivery(FileDelivery&& other) noexcept;
  FileDelivery& operator=(FileDelivery&&) = delete;
  FileDelivery(const FileDelivery&) = delete;
  ~FileDelivery();
  // Renders and writes every file of `plan` into a new run directory and swaps it in behind
  // the configured path; an earlier run's directory is removed. Throws `core::Error`
  // (cannot_create) naming the file or directory; leaves nothing behind.
  static FileDelivery write(const Plan& plan, const Resolver& resolver,
                            const SecretsDirOptions& options);
  // Supervise mode: renders the files at `indexes` (into plan.files) again and replaces each
  // atomically. Throws `core::Error` (cannot_create); files not yet replaced keep their old
  // content. Defined in supervise_run.cpp.
  void rewrite(const Plan& plan, const std::vector<std::size_t>& indexes, const Resolver& resolver);
  // Removes what was written (used when exec fails, and when a supervised run ends).
  void remove_all() noexcept;
  void keep() noexcept { m_keep = true; }
  const std::string& directory() const { return m_dir; }
  std::size_t count() const { return m_files.size(); }

private:
  // The steps of `write`. Opens the configured path's parent (and, in place, the directory
  // itself), checks it is on tmpfs, and reads the current state of the name (`old_target`
  // when it is a symlink); returns the parent's path for messages.
  std::string open_configured(const SecretsDirOptions& options, std::string& old_target);
  // Creates this run's directory `.NAME.run-SUFFIX` and opens it.
  void make_run_dir(const std::string& parent, const std::string& suffix);
  // Writes every file under a temporary name, then commits them all.
  void write_files(const Plan& plan, std::vector<util::Secret>& contents);
  // Swaps the run directory in behind the configured name; removes an earlier run's.
  void swap_in(const SecretsDirOptions& options, const std::string& parent,
               const std::string& suffix, std::string& old_target);

  std::string m_dir;      // the configured path
  util::Fd m_parentfd;    // its parent directory
  std::string m_name;     // its last component
  std::string m_run_name; // the run directory's name in the parent
  util::Fd m_dirfd;       // the run directory, flock()ed while this run owns it
  bool m_swapped = false;
  bool m_in_place = false;    // SecretsDirOptions::in_place: m_dirfd is the configured path
  bool m_created_dir = false; // in place: the directory did not exist before
  std::vector<std::unique_ptr<util::AtomicFile>> m_files;
  std::vector<util::Fd> m_parent_fds; // the directories the files live in
  bool m_keep = false;
};

// Removes the files an earlier run left at the configured secrets directory `path` (the
// symlink crunch-secrets made and the run directory it names) and any run directory of a run
// that died, so a run never starts with an earlier run's secrets in place and a failed run
// leaves none behind. Touches nothing crunch-secrets did not make; never throws.
void retire_secrets_dir(const std::string& path) noexcept;

// One line on the state of the secrets directory `path`, for `check`.
std::string describe_secrets_dir(const std::string& path);

// Blocks SIGTERM, SIGINT, SIGHUP and SIGQUIT from the first file written until exec, so a
// signal cannot end the process while temporary or half-delivered files exist; `pending()`
// then tells the caller to roll back and die of the signal. The destructor restores the mask.
class BlockedSignals {
public:
  BlockedSignals();
  ~BlockedSignals();
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;
  // The first blocked signal that arrived and is not ignored, or 0.
  int pending() const;
  // Restores the original mask (exec must not pass the blocked mask to the command).
  void restore() noexcept;
  // Restores the mask and ends the process by `signal` (its default action), as if it had
  // arrived unblocked. Call after cleaning up.
  [[noreturn]] void die_of(int signal) noexcept;

private:
  sigset_t m_old{};
  bool m_restored = false;
};

// Secret-bearing "NAME=VALUE" strings for execve.
using EnvBlock = std::vector<util::Secret>;

struct ChildEnvOptions {
  bool pass_auth_env = false;
  bool scrub_arvados_token = false;
  std::string secrets_dir; // set CRUNCH_SECRETS_DIR when not empty
};

// The child's environment: `environ` with plan assignments applied, auth material removed.
EnvBlock build_child_env(const std::vector<std::string>& environ, const Plan& plan,
                         const Resolver* resolver, const ChildEnvOptions& options);

// The child's arguments: substituted when the plan has argv templates, else as given.
std::vector<util::Secret> build_child_argv(const Plan& plan, const Resolver* resolver);

// Variables that carry Vault auth material and are removed from the child's environment.
const std::vector<std::string>& auth_env_names();

// Replaces the process with `argv[0]` (PATH lookup). Returns only on failure, with the
// errno of the failed exec.
int exec_child(const std::vector<util::Secret>& argv, const EnvBlock& env);

} // namespace cs::core
