// Delivery: files into the secrets directory (all or nothing), the child's environment and
// argument vector, and exec.
#pragma once

#include "crunchsecrets/core/resolve.hpp"
#include "crunchsecrets/util/fs.hpp"

#include <memory>
#include <string>
#include <vector>

namespace cs::core {

struct SecretsDirOptions {
  std::string path;
  bool allow_non_tmpfs = false;
};

// Files written into the secrets directory. Until `keep()` is called, the destructor removes
// every file and directory it created.
class FileDelivery {
public:
  FileDelivery() = default;
  FileDelivery(FileDelivery&& other) noexcept;
  FileDelivery& operator=(FileDelivery&&) = delete;
  FileDelivery(const FileDelivery&) = delete;
  ~FileDelivery();
  // Renders and writes every file of `plan`, renaming them into place only when all were
  // written. Throws `core::Error` (cannot_create) naming the file; leaves nothing behind.
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
  std::string m_dir;
  util::Fd m_dirfd;
  bool m_created_dir = false;
  std::vector<std::string> m_created_subdirs;
  std::vector<std::unique_ptr<util::AtomicFile>> m_files;
  std::vector<util::Fd> m_parent_fds; // the directories the files live in
  bool m_keep = false;
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
