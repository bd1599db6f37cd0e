#include "crunchsecrets/core/deliver.hpp"

#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/util/fds.hpp"
#include "crunchsecrets/util/log.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <random>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cs::core {

using util::Result;
using util::Secret;

namespace {

// The configured secrets directory split into its parent and its last component.
struct DirPath {
  std::string parent;
  std::string name;
};

Result<DirPath> split_dir(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') {
    p.pop_back();
  }
  const std::size_t slash = p.rfind('/');
  DirPath d;
  d.parent = slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
  d.name = slash == std::string::npos ? p : p.substr(slash + 1);
  if (d.name.empty() || d.name == "." || d.name == ".." || p == "/") {
    return util::err(fmt::format("{} does not name a directory that crunch-secrets can manage; "
                                 "give a path such as /dev/shm/app",
                                 path));
  }
  return d;
}

std::string run_prefix(const std::string& name) {
  return "." + name + ".run-";
}

std::string link_prefix(const std::string& name) {
  return "." + name + ".new-";
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Opens the parent of the secrets directory. It must belong to this user or root and, when
// others may write in it, be sticky (as /dev/shm is): otherwise another user could replace
// the directory crunch-secrets makes there.
Result<util::Fd> open_parent(const std::string& parent) {
  util::Fd fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) {
    return util::err(fmt::format("cannot open {}: {}", parent, std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return util::err(fmt::format("cannot stat {}: {}", parent, std::strerror(errno)));
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return util::err(fmt::format("{} (the parent of the secrets directory) is owned by uid {}, "
                                 "neither this user (uid {}) nor root",
                                 parent, st.st_uid, ::geteuid()));
  }
  if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0) {
    return util::err(fmt::format("{} (the parent of the secrets directory) is writable by "
                                 "others and not sticky (mode {:04o})",
                                 parent, st.st_mode & 07777));
  }
  return fd;
}

// What the configured name is now: missing, crunch-secrets' symlink (its target is returned),
// or an empty private directory (replaced by the symlink). Anything else is an error.
enum class Current { missing, symlink, empty_dir };

Result<Current> inspect(int parentfd, const std::string& name, const std::string& path,
                        std::string* target) {
  struct stat st {};
  if (::fstatat(parentfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return Current::missing;
    }
    return util::err(fmt::format("cannot stat {}: {}", path, std::strerror(errno)));
  }
  if (S_ISLNK(st.st_mode)) {
    char buf[512];
    const ssize_t n = ::readlinkat(parentfd, name.c_str(), buf, sizeof buf);
    const std::string to = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
    if (st.st_uid != ::geteuid() || !starts_with(to, run_prefix(name)) ||
        to.find('/') != std::string::npos) {
      return util::err(fmt::format("{} is a symlink that crunch-secrets did not make", path));
    }
    *target = to;
    return Current::symlink;
  }
  if (!S_ISDIR(st.st_mode)) {
    return util::err(fmt::format("{} exists and is not a directory", path));
  }
  if (st.st_uid != ::geteuid()) {
    return util::err(fmt::format("{} is owned by uid {}, not by this user (uid {})", path,
                                 st.st_uid, ::geteuid()));
  }
  if ((st.st_mode & 022) != 0) {
    return util::err(
        fmt::format("{} is writable by group or others (mode {:04o})", path, st.st_mode & 07777));
  }
  const int fd = ::openat(parentfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR* dir = fd < 0 ? nullptr : ::fdopendir(fd);
  if (dir == nullptr) {
    if (fd >= 0) {
      ::close(fd);
    }
    return util::err(fmt::format("cannot read directory {}: {}", path, std::strerror(errno)));
  }
  bool empty = true;
  while (const dirent* e = ::readdir(dir)) {
    const std::string_view n = e->d_name;
    empty = empty && (n == "." || n == "..");
  }
  ::closedir(dir);
  if (!empty) {
    return util::err(fmt::format("{} is a directory holding files that crunch-secrets did not "
                                 "put there (an older version wrote into it directly, or another "
                                 "program did): remove it",
                                 path));
  }
  return Current::empty_dir;
}

// Removes run directories (and half-made symlinks) that no live run holds, except `keep`.
void sweep(int parentfd, const std::string& name, const std::string& keep) noexcept {
  const int fd = ::openat(parentfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* dir = fd < 0 ? nullptr : ::fdopendir(fd);
  if (dir == nullptr) {
    if (fd >= 0) {
      ::close(fd);
    }
    return;
  }
  std::vector<std::string> runs;
  std::vector<std::string> links;
  while (const dirent* e = ::readdir(dir)) {
    const std::string n = e->d_name;
    if (starts_with(n, run_prefix(name)) && n != keep) {
      runs.push_back(n);
    } else if (starts_with(n, link_prefix(name))) {
      links.push_back(n);
    }
  }
  ::closedir(dir);
  for (const auto& run : runs) {
    if (util::is_unlocked_dir(parentfd, run)) {
      (void)util::remove_tree(parentfd, run);
    }
  }
  for (const auto& link : links) {
    // A symlink about to be renamed into place belongs to a live run whose directory (same
    // random suffix) is locked; one whose directory is gone was left by a run that died.
    const std::string run = run_prefix(name) + link.substr(link_prefix(name).size());
    struct stat st {};
    if (::fstatat(parentfd, run.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      struct stat lst {};
      if (::fstatat(parentfd, link.c_str(), &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(lst.st_mode) && lst.st_uid == ::geteuid()) {
        ::unlinkat(parentfd, link.c_str(), 0);
      }
    }
  }
}

// The names in the directory `fd` other than "." and "..".
std::vector<std::string> list_entries(int fd) {
  std::vector<std::string> out;
  const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  DIR* dir = dup < 0 ? nullptr : ::fdopendir(dup);
  if (dir == nullptr) {
    if (dup >= 0) {
      ::close(dup);
    }
    return out;
  }
  ::rewinddir(dir);
  while (const dirent* e = ::readdir(dir)) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") {
      out.emplace_back(n);
    }
  }
  ::closedir(dir);
  return out;
}

std::string random_suffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

} // namespace

FileDelivery::FileDelivery(FileDelivery&& other) noexcept
    : m_dir(std::move(other.m_dir)), m_parentfd(std::move(other.m_parentfd)),
      m_name(std::move(other.m_name)), m_run_name(std::move(other.m_run_name)),
      m_dirfd(std::move(other.m_dirfd)), m_swapped(other.m_swapped), m_in_place(other.m_in_place),
      m_created_dir(other.m_created_dir), m_files(std::move(other.m_files)),
      m_parent_fds(std::move(other.m_parent_fds)), m_keep(other.m_keep) {
  other.m_run_name.clear();
  other.m_swapped = false;
  other.m_in_place = false;
  other.m_created_dir = false;
  other.m_files.clear();
  other.m_keep = true;
}

FileDelivery::~FileDelivery() {
  if (!m_keep) {
    remove_all();
  }
}

void FileDelivery::remove_all() noexcept {
  m_files.clear(); // destructors remove uncommitted temporary files
  m_parent_fds.clear();
  if (m_in_place) {
    // The directory was empty before this run wrote into it: everything in it is ours.
    if (m_dirfd.valid()) {
      for (const auto& entry : list_entries(m_dirfd.get())) {
        (void)util::remove_tree(m_dirfd.get(), entry);
      }
    }
    if (m_created_dir) {
      ::rmdir(m_dir.c_str());
    }
    m_in_place = false;
    m_created_dir = false;
    m_dirfd = util::Fd();
    return;
  }
  if (m_run_name.empty() || !m_parentfd.valid()) {
    return;
  }
  if (m_swapped) {
    // Only while the name still points here: a later run may have swapped in meanwhile.
    std::string target;
    auto now = inspect(m_parentfd.get(), m_name, m_dir, &target);
    if (now && *now == Current::symlink && target == m_run_name) {
      ::unlinkat(m_parentfd.get(), m_name.c_str(), 0);
    }
    m_swapped = false;
  }
  (void)util::remove_tree(m_parentfd.get(), m_run_name);
  m_run_name.clear();
  m_dirfd = util::Fd();
}

namespace {

Error dir_error(const std::string& why) {
  return Error(ExitCode::cannot_create, "secrets directory: {}: choose another --secrets-dir", why);
}

} // namespace

std::string FileDelivery::open_configured(const SecretsDirOptions& options,
                                          std::string& old_target) {
  auto where = split_dir(options.path);
  if (!where) {
    throw dir_error(where.error());
  }
  m_name = where->name;
  m_parentfd = value_or_throw(open_parent(where->parent), ExitCode::cannot_create,
                              "secrets directory: {}: choose another --secrets-dir");
  if (options.in_place) {
    struct stat st {};
    m_created_dir = ::lstat(options.path.c_str(), &st) != 0 && errno == ENOENT;
    auto dirfd = util::open_private_dir(options.path, true);
    if (!dirfd) {
      m_created_dir = false;
      throw dir_error(dirfd.error());
    }
    m_in_place = true;
    m_dirfd = std::move(*dirfd);
    if (!list_entries(m_dirfd.get()).empty()) {
      m_in_place = false; // not ours to empty
      throw dir_error(fmt::format("{} is not empty", options.path));
    }
  }
  auto mem = util::is_memory_fs(m_parentfd.get());
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
  if (auto current = inspect(m_parentfd.get(), m_name, options.path, &old_target); !current) {
    throw dir_error(current.error());
  }
  return where->parent;
}

void FileDelivery::make_run_dir(const std::string& parent, const std::string& suffix) {
  m_run_name = run_prefix(m_name) + suffix;
  if (::mkdirat(m_parentfd.get(), m_run_name.c_str(), 0700) != 0) {
    const int e = errno;
    m_run_name.clear();
    throw dir_error(fmt::format("cannot create a directory in {}: {}", parent, std::strerror(e)));
  }
  m_dirfd = util::Fd(::openat(m_parentfd.get(), m_run_name.c_str(),
                              O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

void FileDelivery::write_files(const Plan& plan, std::vector<Secret>& contents) {
  // Each file is written under a temporary name; its parent directory fd stays open with it.
  for (std::size_t i = 0; i < plan.files.size(); ++i) {
    const FileSpec& f = plan.files[i];
    auto segments = value_or_throw(util::split_safe_relative_path(f.path), ExitCode::cannot_create,
                                   "file {} ({}): {}", f.path, f.origin);
    auto parent = value_or_throw(util::open_parent_dir(m_dirfd.get(), segments, nullptr),
                                 ExitCode::cannot_create,
                                 "file {} ({}): {}: the path must stay inside the secrets "
                                 "directory and not pass through a symlink",
                                 f.path, f.origin);
    auto owned = std::make_unique<util::AtomicFile>(
        value_or_throw(util::AtomicFile::create(parent.get(), segments.back(), f.mode),
                       ExitCode::cannot_create, "file {} ({}): {}", f.path, f.origin));
    ok_or_throw(owned->write_all(contents[i].reveal()), ExitCode::cannot_create, "file {} ({}): {}",
                f.path, f.origin);
    contents[i].clear();
    m_files.push_back(std::move(owned));
    m_parent_fds.push_back(std::move(parent));
  }
  for (std::size_t i = 0; i < m_files.size(); ++i) {
    ok_or_throw(m_files[i]->commit(), ExitCode::cannot_create, "file {} ({}): {}",
                plan.files[i].path, plan.files[i].origin);
  }
}

void FileDelivery::swap_in(const SecretsDirOptions& options, const std::string& parent,
                           const std::string& suffix, std::string& old_target) {
  // A new symlink renamed over the configured name, so it names either the earlier state or
  // this run's complete set of files, never a mix.
  auto current = inspect(m_parentfd.get(), m_name, options.path, &old_target);
  if (!current) {
    throw dir_error(current.error());
  }
  if (*current == Current::empty_dir &&
      ::unlinkat(m_parentfd.get(), m_name.c_str(), AT_REMOVEDIR) != 0) {
    throw dir_error(fmt::format("cannot replace the empty directory {}: {}", options.path,
                                std::strerror(errno)));
  }
  const std::string link = link_prefix(m_name) + suffix;
  if (::symlinkat(m_run_name.c_str(), m_parentfd.get(), link.c_str()) != 0) {
    throw dir_error(fmt::format("cannot create a symlink in {}: {}", parent, std::strerror(errno)));
  }
  if (::renameat(m_parentfd.get(), link.c_str(), m_parentfd.get(), m_name.c_str()) != 0) {
    const int e = errno;
    ::unlinkat(m_parentfd.get(), link.c_str(), 0);
    throw dir_error(fmt::format("cannot rename into place {}: {}", options.path, std::strerror(e)));
  }
  m_swapped = true;
  if (*current == Current::symlink && old_target != m_run_name &&
      util::is_unlocked_dir(m_parentfd.get(), old_target)) {
    (void)util::remove_tree(m_parentfd.get(), old_target);
  }
  sweep(m_parentfd.get(), m_name, m_run_name);
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
  std::string old_target;
  const std::string parent = d.open_configured(options, old_target);
  // This run's own directory, locked so that a concurrent run's sweep leaves it alone.
  const std::string suffix = random_suffix();
  if (!options.in_place) {
    d.make_run_dir(parent, suffix);
  }
  if (!d.m_dirfd.valid() || ::flock(d.m_dirfd.get(), LOCK_EX) != 0) {
    throw dir_error(
        fmt::format("cannot open the directory made in {}: {}", parent, std::strerror(errno)));
  }
  d.write_files(plan, contents);
  if (!options.in_place) {
    d.swap_in(options, parent, suffix, old_target);
  }
  return d;
}

void retire_secrets_dir(const std::string& path) noexcept {
  try {
    auto where = split_dir(path);
    if (!where) {
      return;
    }
    auto parentfd = open_parent(where->parent);
    if (!parentfd) {
      return;
    }
    std::string target;
    auto current = inspect(parentfd->get(), where->name, path, &target);
    if (current && *current == Current::symlink && util::is_unlocked_dir(parentfd->get(), target)) {
      ::unlinkat(parentfd->get(), where->name.c_str(), 0);
      (void)util::remove_tree(parentfd->get(), target);
      util::log::debug("removed the files of an earlier run in {}", path);
    }
    sweep(parentfd->get(), where->name, "");
  } catch (...) {
    // Best effort: a failure here shows again, with its reason, when files are written.
  }
}

std::string describe_secrets_dir(const std::string& path) {
  auto where = split_dir(path);
  if (!where) {
    return "unusable: " + where.error();
  }
  auto parentfd = open_parent(where->parent);
  if (!parentfd) {
    return "unusable: " + parentfd.error();
  }
  auto mem = util::is_memory_fs(parentfd->get());
  const std::string fs = mem && *mem ? "tmpfs" : "NOT tmpfs (refused unless --allow-non-tmpfs)";
  std::string target;
  auto current = inspect(parentfd->get(), where->name, path, &target);
  if (!current) {
    return "unusable: " + current.error();
  }
  switch (*current) {
  case Current::missing:
    return fs + ", missing (will be created)";
  case Current::symlink:
    return fs + ", an earlier run's files (replaced by the next run)";
  case Current::empty_dir:
    break;
  }
  return fs + ", empty directory (will be replaced)";
}

namespace {

sigset_t delivery_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) {
    sigaddset(&set, s);
  }
  return set;
}

} // namespace

BlockedSignals::BlockedSignals() {
  const sigset_t set = delivery_signals();
  ::sigprocmask(SIG_BLOCK, &set, &m_old);
}

BlockedSignals::~BlockedSignals() {
  restore();
}

int BlockedSignals::pending() const {
  sigset_t pending;
  sigemptyset(&pending);
  ::sigpending(&pending);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) {
    struct sigaction sa {};
    // A signal the parent told this process to ignore (nohup) does not interrupt it.
    if (sigismember(&pending, s) == 1 && sigismember(&m_old, s) == 0 &&
        ::sigaction(s, nullptr, &sa) == 0 && sa.sa_handler != SIG_IGN) {
      return s;
    }
  }
  return 0;
}

void BlockedSignals::restore() noexcept {
  if (!m_restored) {
    ::sigprocmask(SIG_SETMASK, &m_old, nullptr);
    m_restored = true;
  }
}

void BlockedSignals::die_of(int signal) noexcept {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  ::sigaction(signal, &sa, nullptr);
  restore();
  ::raise(signal);
  ::_exit(128 + signal); // only if the signal did not end the process
}

const std::vector<std::string>& auth_env_names() {
  static const std::vector<std::string> names{
      "VAULT_TOKEN", "BAO_TOKEN", "CRUNCH_SECRETS_SECRET_ID", "CRUNCH_SECRETS_WRAPPED_TOKEN"};
  return names;
}

namespace {

// Environment variables and arguments are C strings: a NUL would silently cut the value short.
void refuse_nul(const Secret& value, const std::string& where) {
  if (value.reveal().find('\0') != std::string_view::npos) {
    throw Error(ExitCode::invalid_input,
                "{}: the value contains a NUL byte, which an environment variable or argument "
                "cannot hold (it would be cut short there): deliver it in a file instead",
                where);
  }
}

} // namespace

EnvBlock build_child_env(const std::vector<std::string>& environ, const Plan& plan,
                         const Resolver* resolver, const ChildEnvOptions& options) {
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
  // Later assignments win: manifest env follows inherited-env references in the plan.
  std::map<std::string, Secret> assigned;
  for (const auto& a : plan.env) {
    if (!options.secrets_dir.empty() && a.name == "CRUNCH_SECRETS_DIR") {
      // One entry per name: the directory the files really are in wins.
      util::log::warning("{}: CRUNCH_SECRETS_DIR is set by crunch-secrets to the secrets "
                         "directory ({}); this assignment is ignored (set secrets_dir instead)",
                         a.origin, options.secrets_dir);
      continue;
    }
    if (removed(a.name) && a.origin != "environment") {
      util::log::warning("{}: {} is removed from the command's environment because it carries "
                         "Vault credentials; pass --pass-auth-env to keep it",
                         a.origin, a.name);
    }
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
    const std::string where = a.origin == "environment"
                                  ? fmt::format("environment variable {}", a.name)
                                  : fmt::format("environment variable {} ({})", a.name, a.origin);
    Secret value = resolver->render(a.value, where);
    refuse_nul(value, where);
    assigned[a.name] = std::move(value);
  }
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
      const std::string where = i == 0 ? std::string("COMMAND") : fmt::format("argument {}", i);
      Secret value = resolver->render(plan.argv[i], where);
      refuse_nul(value, where);
      argv.push_back(std::move(value));
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
  // Only the descriptors crunch-secrets was started with reach COMMAND.
  if (!util::close_others_on_exec()) {
    util::log::warning("cannot mark crunch-secrets' own descriptors close-on-exec: COMMAND may "
                       "inherit some of them");
  }
  ::execvpe(args[0], args.data(), envp.data());
  return errno;
}

} // namespace cs::core
