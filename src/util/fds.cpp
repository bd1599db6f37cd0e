#include "crunchsecrets/util/fds.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace cs::util {

namespace {

struct Inherited {
  int fd;
  dev_t dev;
  ino_t ino;
};

std::vector<Inherited>& inherited() {
  static std::vector<Inherited> fds;
  return fds;
}

bool recorded = false;

// Calls `f(fd)` for every open descriptor, from /proc/self/fd when it is mounted (a minimal
// container may lack it), otherwise for every number below the descriptor limit that
// F_GETFD accepts.
template <typename F>
void for_each_open_fd(F&& f) {
  if (DIR* d = ::opendir("/proc/self/fd"); d != nullptr) {
    std::vector<int> fds;
    const int own = ::dirfd(d);
    while (const dirent* e = ::readdir(d)) {
      char* end = nullptr;
      const long n = std::strtol(e->d_name, &end, 10);
      if (end != e->d_name && *end == '\0' && n != own) {
        fds.push_back(static_cast<int>(n));
      }
    }
    ::closedir(d);
    for (int fd : fds) {
      f(fd);
    }
    return;
  }
  rlimit lim{};
  const rlim_t max = ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY
                         ? std::min<rlim_t>(lim.rlim_cur, 1 << 20)
                         : 65536;
  for (int fd = 0; static_cast<rlim_t>(fd) < max; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1) {
      f(fd);
    }
  }
}

} // namespace

void record_inherited_fds() {
  recorded = true;
  inherited().clear();
  for_each_open_fd([](int fd) {
    struct stat st {};
    if (::fstat(fd, &st) == 0) {
      inherited().push_back(Inherited{fd, st.st_dev, st.st_ino});
    }
  });
  std::sort(inherited().begin(), inherited().end(),
            [](const Inherited& a, const Inherited& b) { return a.fd < b.fd; });
}

bool close_others_on_exec() {
  if (!recorded) {
    return true;
  }
  // The recorded descriptors that are still what they were at the start.
  std::vector<int> keep;
  for (const auto& i : inherited()) {
    struct stat st {};
    if (::fstat(i.fd, &st) == 0 && st.st_dev == i.dev && st.st_ino == i.ino) {
      keep.push_back(i.fd);
    }
  }
  // One system call per gap between kept descriptors.
  bool ranges_ok = true;
  unsigned int from = 0;
  for (std::size_t k = 0; k <= keep.size() && ranges_ok; ++k) {
    const unsigned int to = k < keep.size() ? static_cast<unsigned int>(keep[k]) : ~0U;
    if (to > from) {
      ranges_ok =
          ::syscall(SYS_close_range, from, k < keep.size() ? to - 1 : to, CLOSE_RANGE_CLOEXEC) == 0;
    }
    from = to + 1;
  }
  if (ranges_ok) {
    return true;
  }
  // An older kernel: one descriptor at a time.
  bool any = false;
  for_each_open_fd([&](int fd) {
    any = true;
    if (!std::binary_search(keep.begin(), keep.end(), fd)) {
      const int flags = ::fcntl(fd, F_GETFD);
      if (flags != -1) {
        ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
      }
    }
  });
  return any;
}

} // namespace cs::util
