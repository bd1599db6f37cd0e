#include "crunchsecrets/core/deliver.hpp"

#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/util/log.hpp"

#include <cerrno>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

namespace cs::core {

using util::Secret;

FileDelivery::FileDelivery(FileDelivery&& other) noexcept
    : m_dir(std::move(other.m_dir)), m_dirfd(std::move(other.m_dirfd)),
      m_created_dir(other.m_created_dir), m_created_subdirs(std::move(other.m_created_subdirs)),
      m_files(std::move(other.m_files)), m_parent_fds(std::move(other.m_parent_fds)),
      m_keep(other.m_keep) {
  other.m_created_dir = false;
  other.m_created_subdirs.clear();
  other.m_files.clear();
  other.m_keep = true;
}

FileDelivery::~FileDelivery() {
  if (!m_keep) {
    remove_all();
  }
}

void FileDelivery::remove_all() noexcept {
  for (auto& f : m_files) {
    f->remove_committed();
  }
  m_files.clear(); // destructors remove uncommitted temporary files
  for (auto it = m_created_subdirs.rbegin(); it != m_created_subdirs.rend(); ++it) {
    ::unlinkat(m_dirfd.get(), it->c_str(), AT_REMOVEDIR);
  }
  m_created_subdirs.clear();
  if (m_created_dir && !m_dir.empty()) {
    ::rmdir(m_dir.c_str()); // only succeeds when empty: never removes what others put there
    m_created_dir = false;
  }
}

FileDelivery FileDelivery::write(const Plan& plan, const Resolver& resolver,
                                 const SecretsDirOptions& options) {
  FileDelivery d;
  if (plan.files.empty()) {
    d.m_keep = true;
    return d;
  }
  d.m_dir = options.path;
  // Render everything first: a missing key must fail before anything touches the disk.
  std::vector<Secret> contents;
  contents.reserve(plan.files.size());
  for (const auto& f : plan.files) {
    contents.push_back(resolver.render_file(f));
  }

  struct stat st {};
  d.m_created_dir = ::lstat(options.path.c_str(), &st) != 0 && errno == ENOENT;
  auto dirfd = util::open_private_dir(options.path, true);
  if (!dirfd) {
    throw Error(ExitCode::cannot_create, "secrets directory: {}: choose another --secrets-dir",
                dirfd.error());
  }
  d.m_dirfd = std::move(*dirfd);
  auto mem = util::is_memory_fs(d.m_dirfd.get());
  if (!mem) {
    throw Error(ExitCode::cannot_create, "secrets directory {}: {}", options.path, mem.error());
  }
  if (!*mem) {
    if (!options.allow_non_tmpfs) {
      throw Error(ExitCode::cannot_create,
                  "secrets directory {} is not on tmpfs or ramfs, so secrets would reach a disk: "
                  "use a directory under /dev/shm or another tmpfs mount, or pass "
                  "--allow-non-tmpfs to accept the risk",
                  options.path);
    }
    util::log::warning("secrets directory {} is not on tmpfs or ramfs (--allow-non-tmpfs)",
                       options.path);
  }

  // Each file is written under a temporary name; its parent directory fd stays open with it.
  for (std::size_t i = 0; i < plan.files.size(); ++i) {
    const FileSpec& f = plan.files[i];
    auto segments = util::split_safe_relative_path(f.path);
    if (!segments) {
      throw Error(ExitCode::cannot_create, "file {} ({}): {}", f.path, f.origin, segments.error());
    }
    auto parent = util::open_parent_dir(d.m_dirfd.get(), *segments, &d.m_created_subdirs);
    if (!parent) {
      throw Error(ExitCode::cannot_create,
                  "file {} ({}): {}: the path must stay inside the "
                  "secrets directory and not pass through a symlink",
                  f.path, f.origin, parent.error());
    }
    auto file = util::AtomicFile::create(parent->get(), segments->back(), f.mode);
    if (!file) {
      throw Error(ExitCode::cannot_create, "file {} ({}): {}", f.path, f.origin, file.error());
    }
    auto owned = std::make_unique<util::AtomicFile>(std::move(*file));
    if (auto s = owned->write_all(contents[i].reveal()); !s) {
      throw Error(ExitCode::cannot_create, "file {} ({}): {}", f.path, f.origin, s.error());
    }
    contents[i].clear();
    d.m_files.push_back(std::move(owned));
    d.m_parent_fds.push_back(std::move(*parent));
  }
  for (std::size_t i = 0; i < d.m_files.size(); ++i) {
    if (auto s = d.m_files[i]->commit(); !s) {
      throw Error(ExitCode::cannot_create, "file {} ({}): {}", plan.files[i].path,
                  plan.files[i].origin, s.error());
    }
  }
  return d;
}

const std::vector<std::string>& auth_env_names() {
  static const std::vector<std::string> names{
      "VAULT_TOKEN", "BAO_TOKEN", "CRUNCH_SECRETS_SECRET_ID", "CRUNCH_SECRETS_WRAPPED_TOKEN"};
  return names;
}

EnvBlock build_child_env(const std::vector<std::string>& environ, const Plan& plan,
                         const Resolver* resolver, const ChildEnvOptions& options) {
  // Later assignments win: manifest env follows inherited-env references in the plan.
  std::map<std::string, Secret> assigned;
  for (const auto& a : plan.env) {
    if (!a.value.has_refs()) {
      // Only "$${vault:" escapes: the literal text with the escapes undone.
      Secret literal;
      for (const auto& seg : a.value.segments) {
        literal.append(seg.literal);
      }
      assigned[a.name] = std::move(literal);
      continue;
    }
    if (resolver == nullptr) {
      throw Error(ExitCode::internal, "internal error: environment references without secrets");
    }
    assigned[a.name] =
        resolver->render(a.value, fmt::format("environment variable {} ({})", a.name, a.origin));
  }
  auto removed = [&](std::string_view name) {
    if (!options.pass_auth_env) {
      for (const auto& n : auth_env_names()) {
        if (name == n) {
          return true;
        }
      }
    }
    return options.scrub_arvados_token && name == "ARVADOS_API_TOKEN";
  };
  EnvBlock env;
  for (const auto& entry : environ) {
    const std::size_t eq = entry.find('=');
    const std::string name = entry.substr(0, eq);
    if (removed(name) || assigned.count(name) != 0 ||
        (!options.secrets_dir.empty() && name == "CRUNCH_SECRETS_DIR")) {
      continue;
    }
    env.emplace_back(entry);
  }
  for (auto& [name, value] : assigned) {
    if (removed(name)) {
      continue;
    }
    Secret line(name);
    line.append("=");
    line.append(value.reveal());
    env.push_back(std::move(line));
  }
  if (!options.secrets_dir.empty()) {
    env.emplace_back("CRUNCH_SECRETS_DIR=" + options.secrets_dir);
  }
  return env;
}

std::vector<Secret> build_child_argv(const Plan& plan, const Resolver* resolver) {
  std::vector<Secret> argv;
  for (std::size_t i = 0; i < plan.argv.size(); ++i) {
    if (!plan.argv_templates) {
      argv.emplace_back(plan.argv_text[i]);
    } else if (plan.argv[i].has_refs()) {
      argv.push_back(resolver->render(plan.argv[i], i == 0 ? std::string("COMMAND")
                                                           : fmt::format("argument {}", i)));
    } else {
      // Literal text only, but "$${vault:" escapes are already undone in the segments.
      Secret literal;
      for (const auto& seg : plan.argv[i].segments) {
        literal.append(seg.literal);
      }
      argv.push_back(std::move(literal));
    }
  }
  return argv;
}

int exec_child(const std::vector<Secret>& argv, const EnvBlock& env) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.reveal_string().c_str()));
  }
  args.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (const auto& e : env) {
    envp.push_back(const_cast<char*>(e.reveal_string().c_str()));
  }
  envp.push_back(nullptr);
  ::execvpe(args[0], args.data(), envp.data());
  return errno;
}

} // namespace cs::core
