#include "crunchsecrets/util/fs.hpp"

#include "crunchsecrets/util/stop.hpp"

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <poll.h>
#include <random>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

namespace cs::util {

namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

// A random suffix for temporary names; not secret, only unpredictable enough to avoid races.
std::string random_suffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

} // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (m_fd >= 0) {
      ::close(m_fd);
    }
    m_fd = other.release();
  }
  return *this;
}

Fd::~Fd() {
  if (m_fd >= 0) {
    ::close(m_fd);
  }
}

Result<bool> is_memory_fs(int fd) {
  struct statfs st {};
  if (::fstatfs(fd, &st) != 0) {
    return err(fmt::format("statfs failed: {}", errno_text(errno)));
  }
  const auto type = static_cast<unsigned long>(st.f_type);
  return type == static_cast<unsigned long>(TMPFS_MAGIC) ||
         type == static_cast<unsigned long>(RAMFS_MAGIC);
}

Result<std::vector<std::string>> split_safe_relative_path(std::string_view rel) {
  if (rel.empty()) {
    return err("empty path");
  }
  if (rel.front() == '/') {
    return err("absolute path; give a path relative to the secrets directory");
  }
  if (rel.find('\0') != std::string_view::npos) {
    return err("path contains a NUL byte");
  }
  std::vector<std::string> segments;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = rel.find('/', start);
    const std::string_view seg =
        rel.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty()) {
      return err("empty path segment ('//' or trailing '/')");
    }
    if (seg == "." || seg == "..") {
      return err("'.' and '..' segments are not allowed: the path must stay inside the "
                 "secrets directory");
    }
    segments.emplace_back(seg);
    if (slash == std::string_view::npos) {
      break;
    }
    start = slash + 1;
  }
  return segments;
}

Result<Fd> open_private_dir(const std::string& path, bool create) {
  if (path.empty()) {
    return err("empty directory path");
  }
  if (create) {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return err(fmt::format("cannot create directory {}: {}", path, errno_text(errno)));
    }
  }
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    const int e = errno;
    if (e == ELOOP || e == ENOTDIR) {
      return err(fmt::format("{} is a symlink or not a directory", path));
    }
    return err(fmt::format("cannot open directory {}: {}", path, errno_text(e)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return err(fmt::format("cannot stat {}: {}", path, errno_text(errno)));
  }
  if (st.st_uid != ::geteuid()) {
    return err(fmt::format("{} is owned by uid {}, not by this user (uid {})", path, st.st_uid,
                           ::geteuid()));
  }
  if ((st.st_mode & 022) != 0) {
    return err(fmt::format("{} is writable by group or others (mode {:04o}); use a private "
                           "directory (mode 0700)",
                           path, st.st_mode & 07777));
  }
  return fd;
}

Result<Fd> open_parent_dir(int root, const std::vector<std::string>& segments,
                           std::vector<std::string>* created) {
  Fd current(::fcntl(root, F_DUPFD_CLOEXEC, 0));
  if (!current.valid()) {
    return err(fmt::format("dup failed: {}", errno_text(errno)));
  }
  std::string so_far;
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    const std::string& seg = segments[i];
    so_far += (so_far.empty() ? "" : "/") + seg;
    if (::mkdirat(current.get(), seg.c_str(), 0700) == 0) {
      if (created != nullptr) {
        created->push_back(so_far);
      }
    } else if (errno != EEXIST) {
      return err(fmt::format("cannot create directory {}: {}", so_far, errno_text(errno)));
    }
    Fd next(::openat(current.get(), seg.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) {
      const int e = errno;
      if (e == ELOOP || e == ENOTDIR) {
        return err(fmt::format("{} is a symlink or not a directory", so_far));
      }
      return err(fmt::format("cannot open directory {}: {}", so_far, errno_text(e)));
    }
    current = std::move(next);
  }
  return current;
}

AtomicFile::AtomicFile(Fd dirfd, Fd fd, std::string name, std::string tmp_name, unsigned mode)
    : m_dirfd(std::move(dirfd)), m_fd(std::move(fd)), m_name(std::move(name)),
      m_tmp_name(std::move(tmp_name)), m_mode(mode) {}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : m_dirfd(std::move(other.m_dirfd)), m_fd(std::move(other.m_fd)),
      m_name(std::move(other.m_name)), m_tmp_name(std::move(other.m_tmp_name)),
      m_mode(other.m_mode), m_committed(other.m_committed) {
  other.m_tmp_name.clear();
  other.m_committed = false;
  other.m_name.clear();
}

Result<AtomicFile> AtomicFile::create(int dirfd, std::string name, unsigned mode) {
  Fd own_dir(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
  if (!own_dir.valid()) {
    return err(fmt::format("cannot create {}: dup failed: {}", name, errno_text(errno)));
  }
  std::string tmp = fmt::format(".{}.tmp-{}", name, random_suffix());
  Fd fd(::openat(own_dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 0600));
  if (!fd.valid()) {
    return err(fmt::format("cannot create {}: {}", name, errno_text(errno)));
  }
  return AtomicFile(std::move(own_dir), std::move(fd), std::move(name), std::move(tmp), mode);
}

AtomicFile::~AtomicFile() {
  if (!m_committed && !m_tmp_name.empty()) {
    ::unlinkat(m_dirfd.get(), m_tmp_name.c_str(), 0);
  }
}

Status AtomicFile::write_all(std::string_view data) {
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(m_fd.get(), p, left);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return err(fmt::format("cannot write {}: {}", m_name, errno_text(errno)));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fchmod(m_fd.get(), static_cast<mode_t>(m_mode)) != 0) {
    return err(fmt::format("cannot set the mode of {}: {}", m_name, errno_text(errno)));
  }
  if (::fsync(m_fd.get()) != 0) {
    return err(fmt::format("cannot sync {}: {}", m_name, errno_text(errno)));
  }
  return {};
}

Status AtomicFile::commit() {
  struct stat st {};
  if (::fstatat(m_dirfd.get(), m_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) {
      return err(fmt::format("{} is a symlink; refusing to replace it", m_name));
    }
    if (S_ISDIR(st.st_mode)) {
      return err(fmt::format("{} is a directory", m_name));
    }
  }
  if (::renameat(m_dirfd.get(), m_tmp_name.c_str(), m_dirfd.get(), m_name.c_str()) != 0) {
    return err(fmt::format("cannot rename into place {}: {}", m_name, errno_text(errno)));
  }
  m_committed = true;
  m_fd = Fd();
  return {};
}

void AtomicFile::remove_committed() noexcept {
  if (m_committed) {
    ::unlinkat(m_dirfd.get(), m_name.c_str(), 0);
    m_committed = false;
    m_tmp_name.clear();
  }
}

Status remove_tree(int dirfd, const std::string& name) {
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return {};
    }
    return err(fmt::format("cannot stat {}: {}", name, errno_text(errno)));
  }
  if (S_ISDIR(st.st_mode)) {
    const int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return err(fmt::format("cannot open directory {}: {}", name, errno_text(errno)));
    }
    DIR* dir = ::fdopendir(fd); // takes ownership of fd
    if (dir == nullptr) {
      ::close(fd);
      return err(fmt::format("cannot read directory {}: {}", name, errno_text(errno)));
    }
    std::vector<std::string> children;
    while (const dirent* e = ::readdir(dir)) {
      const std::string_view n = e->d_name;
      if (n != "." && n != "..") {
        children.emplace_back(n);
      }
    }
    Status status;
    for (const auto& child : children) {
      if (auto s = remove_tree(::dirfd(dir), child); !s && status) {
        status = s;
      }
    }
    ::closedir(dir);
    if (!status) {
      return status;
    }
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return err(fmt::format("cannot remove directory {}: {}", name, errno_text(errno)));
    }
    return {};
  }
  if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
    return err(fmt::format("cannot remove {}: {}", name, errno_text(errno)));
  }
  return {};
}

bool is_unlocked_dir(int dirfd, const std::string& name) {
  Fd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || st.st_uid != ::geteuid()) {
    return false;
  }
  return ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0; // released when fd closes
}

namespace {
template <typename S>
Result<S> read_whole(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return err(fmt::format("cannot read {}: {}", path, errno_text(errno)));
  }
  S out;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      wipe(buf, sizeof buf);
      return err(fmt::format("cannot read {}: {}", path, errno_text(errno)));
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > 16 * 1024 * 1024) {
      wipe(buf, sizeof buf);
      return err(fmt::format("{} is larger than 16 MiB", path));
    }
  }
  wipe(buf, sizeof buf);
  return out;
}
} // namespace

Result<std::string> read_file(const std::string& path) {
  return read_whole<std::string>(path);
}

// Drops the one trailing newline a file (or a pipe) ends its line with.
void drop_line_end(SecureString& s) {
  if (!s.empty() && s.back() == '\n') {
    s.back() = '\0';
    s.pop_back();
  }
}

Result<SecureString> read_secret_stdin(std::chrono::steady_clock::time_point deadline) {
  SecureString out;
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    // A stop signal (util/stop.hpp) ends the wait at once, whichever thread it reached.
    const int stop_fd = stop::fd();
    pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    const int ready =
        ::poll(p, stop_fd >= 0 ? 2 : 1, static_cast<int>(std::max<long long>(left.count(), 0)));
    if (stop_fd >= 0 && stop::requested() != 0) {
      wipe(buf, sizeof buf);
      wipe_string(out);
      return err(std::string("stopped by a signal while reading standard input"));
    }
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready == 0) {
      wipe(buf, sizeof buf);
      wipe_string(out);
      return err(std::string("standard input did not end before the deadline"));
    }
    const ssize_t n = ready < 0 ? -1 : ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      wipe(buf, sizeof buf);
      return err(fmt::format("cannot read standard input: {}", errno_text(errno)));
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > 16 * 1024 * 1024) {
      wipe(buf, sizeof buf);
      return err(std::string("standard input holds more than 16 MiB"));
    }
  }
  wipe(buf, sizeof buf);
  drop_line_end(out);
  return out;
}

Result<SecureString> read_secret_file(const std::string& path) {
  auto r = read_whole<SecureString>(path);
  if (!r) {
    return r;
  }
  // Only the file's own line end goes: anything else around the credential is the caller's to
  // judge (util::credential_problem), not to repair silently.
  SecureString& s = *r;
  if (!s.empty() && s.back() == '\n') {
    s.back() = '\0';
    s.pop_back();
  }
  return r;
}

} // namespace cs::util
