// File-system helpers for writing secrets safely: tmpfs checks, safe relative paths, and
// atomic files created relative to a directory descriptor.
#pragma once

#include "crunchsecrets/util/result.hpp"
#include "crunchsecrets/util/secret.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace cs::util {

// An owned file descriptor, closed on destruction.
class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : m_fd(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : m_fd(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  ~Fd();
  int get() const noexcept { return m_fd; }
  bool valid() const noexcept { return m_fd >= 0; }
  int release() noexcept {
    int fd = m_fd;
    m_fd = -1;
    return fd;
  }

private:
  int m_fd = -1;
};

// True when `fd` is on a memory-backed file system (tmpfs or ramfs).
Result<bool> is_memory_fs(int fd);

// Checks that `rel` is a safe relative path: not empty, not absolute, no empty, "." or ".."
// segment, no NUL. Returns its segments.
Result<std::vector<std::string>> split_safe_relative_path(std::string_view rel);

// Opens (creating with mode 0700 when `create` and missing) the directory `path` without
// following a symlink in its last component, and checks it is owned by the current user and
// not writable by group or others.
Result<Fd> open_private_dir(const std::string& path, bool create);

// Opens the directory for the parent of `segments` below `root`, creating missing
// intermediate directories with mode 0700; never follows a symlink. The last segment is the
// file name and is not opened. Directories it creates are appended to `created` (relative to
// `root`, parents first) so a caller can undo them.
Result<Fd> open_parent_dir(int root, const std::vector<std::string>& segments,
                           std::vector<std::string>* created);

// A file written under a temporary name in a directory and renamed into place by
// `commit()`. The destructor removes an uncommitted temporary file. It keeps its own duplicate
// of the directory descriptor, so the caller's descriptor may be closed at any time.
class AtomicFile {
public:
  // Creates a temporary file next to `name` in `dirfd` with `O_EXCL|O_NOFOLLOW`.
  static Result<AtomicFile> create(int dirfd, std::string name, unsigned mode);
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  ~AtomicFile();

  // Writes all of `data`, fsyncs and sets the final mode; the file stays temporary.
  Status write_all(std::string_view data);
  // Renames the temporary file to its final name. Refuses to replace a directory or symlink.
  Status commit();
  // Removes the committed file again (used to undo a partial delivery).
  void remove_committed() noexcept;
  const std::string& name() const { return m_name; }
  // The file's directory (owned by the AtomicFile; valid while it lives).
  int dir_fd() const { return m_dirfd.get(); }

private:
  AtomicFile(Fd dirfd, Fd fd, std::string name, std::string tmp_name, unsigned mode);
  Fd m_dirfd;
  Fd m_fd;
  std::string m_name;
  std::string m_tmp_name;
  unsigned m_mode;
  bool m_committed = false;
};

// Removes the entry `name` of the directory `dirfd`: a file or symlink is unlinked, a directory
// emptied recursively (never following a symlink) and removed. A missing entry is success.
Status remove_tree(int dirfd, const std::string& name);

// True when the directory `name` in `dirfd` could be removed now: it is a directory owned by
// this user that no process holds `flock`ed (a run still writing holds its directory locked).
bool is_unlocked_dir(int dirfd, const std::string& name);

// Reads a whole (small) file into a string; used for manifests and template files.
Result<std::string> read_file(const std::string& path);

// Reads a file holding a credential (token, secret id); one trailing newline, the file's line
// end, is dropped, and nothing else.
Result<SecureString> read_secret_file(const std::string& path);

// Reads a credential from standard input until it ends, as `read_secret_file` does a file, but
// fails once `deadline` passes without the end: a terminal or a pipe nobody closes would
// otherwise hold the run forever.
Result<SecureString> read_secret_stdin(std::chrono::steady_clock::time_point deadline);

} // namespace cs::util
