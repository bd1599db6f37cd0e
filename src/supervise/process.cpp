#include "crunchsecrets/supervise/process.hpp"

#include "crunchsecrets/util/fds.hpp"
#include "crunchsecrets/util/log.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

namespace cs::supervise {

namespace {

// Signals a faulting thread receives synchronously: blocking them would make a crash hang.
constexpr int k_synchronous[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Gives the pty `slave` the window size and input/output settings of `terminal`, except that
// output post-processing is off: the real terminal translates newlines itself, so the bytes
// crunch-secrets passes on are exactly the bytes the child wrote.
void copy_terminal(int terminal, int slave) {
  termios t{};
  if (::tcgetattr(terminal, &t) == 0 || ::tcgetattr(slave, &t) == 0) {
    t.c_oflag &= ~static_cast<tcflag_t>(OPOST);
    ::tcsetattr(slave, TCSANOW, &t);
  }
  winsize ws{};
  if (::ioctl(terminal, TIOCGWINSZ, &ws) == 0) {
    ::ioctl(slave, TIOCSWINSZ, &ws);
  }
}

} // namespace

// One output of the child: the read end crunch-secrets polls, the write end the child gets
// (kept open here too, so a restarted child reuses it and EOF/EIO never races the exit), the
// descriptor of crunch-secrets' own output it is copied to, and its redactor.
struct Supervisor::Stream {
  OutputMode mode = OutputMode::inherit;
  util::Fd read_end;
  util::Fd write_end;
  int target = -1;
  Redactor redactor;
  bool broken = false; // the target refused a write: discard from now on
};

SignalBlock::SignalBlock() {
  sigfillset(&m_blocked);
  for (int s : k_synchronous) {
    sigdelset(&m_blocked, s);
  }
  ::sigprocmask(SIG_SETMASK, &m_blocked, &m_original);
}

SignalBlock::~SignalBlock() {
  ::sigprocmask(SIG_SETMASK, &m_original, nullptr);
}

int shell_status(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return WEXITSTATUS(wait_status);
  }
  if (WIFSIGNALED(wait_status)) {
    return 128 + WTERMSIG(wait_status);
  }
  return 70;
}

Supervisor::Supervisor(const SignalBlock& block, const SupervisorOptions& options)
    : m_block(block), m_forward_to_group(options.forward_to_group) {
  m_signalfd = util::Fd(::signalfd(-1, &block.blocked(), SFD_CLOEXEC | SFD_NONBLOCK));
  if (!m_signalfd.valid()) {
    util::log::warning("supervise: signalfd failed ({}); signals will not be forwarded",
                       std::strerror(errno));
  }
  if (::getpid() != 1) {
    m_subreaper = ::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
  }
  const OutputMode modes[] = {options.stdout_mode, options.stderr_mode};
  const int targets[] = {options.stdout_target, options.stderr_target};
  bool any_piped = false;
  for (int i = 0; i < 2; ++i) {
    auto s = std::make_unique<Stream>();
    s->mode = modes[i];
    s->target = targets[i];
    if (s->mode == OutputMode::pty) {
      int master = -1;
      int slave = -1;
      if (::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0) {
        s->read_end = util::Fd(master);
        s->write_end = util::Fd(slave);
        copy_terminal(s->target, slave);
      } else {
        util::log::warning("supervise: no pseudo-terminal ({}); using a pipe",
                           std::strerror(errno));
        s->mode = OutputMode::pipe;
      }
    }
    if (s->mode == OutputMode::pipe) {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) == 0) {
        s->read_end = util::Fd(fds[0]);
        s->write_end = util::Fd(fds[1]);
      } else {
        util::log::warning("supervise: pipe failed ({}); output is not redacted",
                           std::strerror(errno));
        s->mode = OutputMode::inherit;
      }
    }
    if (s->mode != OutputMode::inherit) {
      ::fcntl(s->read_end.get(), F_SETFD, FD_CLOEXEC);
      ::fcntl(s->write_end.get(), F_SETFD, FD_CLOEXEC);
      ::fcntl(s->read_end.get(), F_SETFL, ::fcntl(s->read_end.get(), F_GETFL) | O_NONBLOCK);
      any_piped = true;
    }
    m_streams.push_back(std::move(s));
  }
  if (any_piped) {
    // Writing to a closed reader must give EPIPE, not a SIGPIPE that would be forwarded to
    // the child as if someone had sent it. (An ignored signal is discarded, not queued.)
    ::signal(SIGPIPE, SIG_IGN);
  }
}

Supervisor::~Supervisor() = default;

void Supervisor::redact(const std::string& name, const util::Secret& value) {
  for (auto& s : m_streams) {
    s->redactor.add(name, value);
  }
}

Spawned Supervisor::spawn(char* const* argv, char* const* envp, const SpawnOptions& options) {
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    return Spawned{-1, errno};
  }
  const int out_fd = m_streams[0]->mode == OutputMode::inherit ? -1 : m_streams[0]->write_end.get();
  const int err_fd = m_streams[1]->mode == OutputMode::inherit ? -1 : m_streams[1]->write_end.get();
  const bool take_terminal =
      options.own_process_group && ::isatty(0) == 1 && ::tcgetpgrp(0) == ::getpgrp();
  // The child inherits only the descriptors crunch-secrets was started with: not libcurl's
  // wakeup socket pair, a connection to Vault, the signalfd or the output pipes. Marked in the
  // parent, which never execs, so the child needs no work between fork and exec.
  if (!util::close_others_on_exec()) {
    util::log::warning("supervise: cannot mark crunch-secrets' own descriptors close-on-exec: "
                       "the child may inherit some of them");
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(report[0]);
    ::close(report[1]);
    return Spawned{-1, e};
  }
  if (pid == 0) {
    // The child: only async-signal-safe calls from here to exec.
    if (options.own_process_group) {
      ::setpgid(0, 0);
      if (take_terminal) {
        // SIGTTOU is still blocked here, so a background group may take the terminal.
        ::tcsetpgrp(0, ::getpid());
      }
    }
    for (int s = 1; s < NSIG; ++s) {
      if (s != SIGKILL && s != SIGSTOP) {
        ::signal(s, SIG_DFL);
      }
    }
    if (out_fd >= 0) {
      ::dup2(out_fd, 1);
    }
    if (err_fd >= 0) {
      ::dup2(err_fd, 2);
    }
    ::sigprocmask(SIG_SETMASK, &m_block.original(), nullptr);
    ::execvpe(argv[0], argv, envp);
    int e = errno;
    ssize_t ignored = ::write(report[1], &e, sizeof e);
    (void)ignored;
    ::_exit(e == ENOENT ? 127 : 126);
  }
  ::close(report[1]);
  int e = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (options.own_process_group) {
    ::setpgid(pid, pid); // also here, so a signal sent right away finds the group
  }
  if (n == static_cast<ssize_t>(sizeof e)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return Spawned{pid, e};
  }
  m_child = pid;
  return Spawned{pid, 0};
}

void Supervisor::signal_child(int signo) {
  if (m_child <= 0) {
    return;
  }
  const pid_t target = m_forward_to_group ? -m_child : m_child;
  if (::kill(target, signo) != 0 && errno != ESRCH) {
    util::log::warning("supervise: forwarding signal {} failed: {}", signo, std::strerror(errno));
  }
}

void Supervisor::reap(Hooks& hooks, bool& done) {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      return; // 0: children left but none exited; -1/ECHILD: none left
    }
    if (pid == m_child) {
      m_child = -1;
      m_last_status = shell_status(status);
      if (hooks.on_child_exit(status)) {
        done = true;
      }
    }
  }
}

void Supervisor::handle_signal(int signo, Hooks& hooks, bool& done) {
  if (signo == SIGCHLD) {
    reap(hooks, done);
    return;
  }
  if (signo == SIGWINCH) {
    for (auto& s : m_streams) {
      if (s->mode == OutputMode::pty) {
        winsize ws{};
        if (::ioctl(s->target, TIOCGWINSZ, &ws) == 0) {
          ::ioctl(s->write_end.get(), TIOCSWINSZ, &ws);
        }
      }
    }
  }
  if (hooks.on_signal(signo)) {
    return;
  }
  signal_child(signo);
}

void Supervisor::pump(Stream& s, bool drain) {
  char buf[65536];
  std::string out;
  for (;;) {
    const ssize_t n = ::read(s.read_end.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break; // EAGAIN: nothing more now; EIO/0: no writer
    }
    out.clear();
    s.redactor.feed(std::string_view(buf, static_cast<std::size_t>(n)), out);
    if (!s.broken && !out.empty() && !write_all(s.target, out.data(), out.size())) {
      util::log::warning("supervise: writing the child's output to fd {} failed: {}", s.target,
                         std::strerror(errno));
      s.broken = true;
    }
    util::wipe(buf, static_cast<std::size_t>(n));
    if (!drain && static_cast<std::size_t>(n) < sizeof buf) {
      break;
    }
  }
  if (drain) {
    out.clear();
    s.redactor.finish(out);
    if (!s.broken && !out.empty()) {
      write_all(s.target, out.data(), out.size());
    }
  }
}

int Supervisor::run(Hooks& hooks) {
  bool done = m_child <= 0;
  // A child that exited before the loop started is reaped by the first pass.
  reap(hooks, done);
  while (!done) {
    std::vector<pollfd> fds;
    fds.push_back(pollfd{m_signalfd.get(), POLLIN, 0});
    for (auto& s : m_streams) {
      if (s->mode != OutputMode::inherit) {
        fds.push_back(pollfd{s->read_end.get(), POLLIN, 0});
      }
    }
    int timeout = -1;
    const auto wake = hooks.next_wakeup();
    if (wake != Clock::time_point::max()) {
      const auto now = Clock::now();
      const auto ms = std::chrono::ceil<Millis>(wake - now).count();
      timeout = static_cast<int>(std::clamp<long long>(ms, 0, INT_MAX));
    }
    const int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) {
      util::log::warning("supervise: poll failed: {}", std::strerror(errno));
    }
    // Output first, so the child's last words are copied before its exit ends the loop.
    std::size_t k = 1;
    for (auto& s : m_streams) {
      if (s->mode != OutputMode::inherit) {
        if (fds[k].revents != 0) {
          pump(*s, false);
        }
        ++k;
      }
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info[16];
      for (;;) {
        const ssize_t n = ::read(m_signalfd.get(), info, sizeof info);
        if (n <= 0) {
          break;
        }
        const auto count = static_cast<std::size_t>(n) / sizeof(signalfd_siginfo);
        for (std::size_t i = 0; i < count; ++i) {
          handle_signal(static_cast<int>(info[i].ssi_signo), hooks, done);
        }
      }
    }
    if (!done && hooks.next_wakeup() <= Clock::now()) {
      hooks.on_timer(Clock::now());
    }
  }
  for (auto& s : m_streams) {
    if (s->mode != OutputMode::inherit) {
      pump(*s, true);
    }
  }
  return m_last_status;
}

} // namespace cs::supervise
