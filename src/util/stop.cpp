#include "crunchsecrets/util/stop.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <thread>
#include <unistd.h>
#include <utility>

namespace cs::util::stop {

namespace {

constexpr std::array<int, 4> k_signals{SIGTERM, SIGINT, SIGHUP, SIGQUIT};

// The first stop signal, set by the handler. A lock-free atomic is as safe in a signal handler as
// volatile sig_atomic_t (C++17 [support.signal]: lock-free atomic operations are signal-safe), and
// it also orders the handler's write with the reads of the arming thread and of the transfer loop
// running elsewhere, which a volatile does not.
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free,
              "the stop handler needs a lock-free atomic to be async-signal-safe");
// The pipe stays open once made: a handler running in another thread while the stop is disarmed
// must not write into a descriptor number that something else reuses.
int g_pipe[2] = {-1, -1};
std::atomic<int> g_fd{-1};
std::array<struct sigaction, k_signals.size()> g_saved{};
std::array<bool, k_signals.size()> g_caught{};
std::function<void()> g_action;

void on_signal(int signo) {
  const int saved_errno = errno;
  // The first signal is the one the process dies of.
  int none = 0;
  g_signal.compare_exchange_strong(none, signo);
  const char byte = 1;
  // Nonblocking: a full pipe is already readable.
  [[maybe_unused]] const ssize_t n = ::write(g_pipe[1], &byte, 1);
  errno = saved_errno;
}

void restore_dispositions() noexcept {
  g_fd.store(-1);
  for (std::size_t i = 0; i < k_signals.size(); ++i) {
    if (g_caught[i]) {
      ::sigaction(k_signals[i], &g_saved[i], nullptr);
      g_caught[i] = false;
    }
  }
}

[[noreturn]] void die_of(int signo) noexcept {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  ::sigaction(signo, &sa, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(signo);
  ::_exit(128 + signo); // only if the signal did not end the process
}

} // namespace

void arm() {
  if (g_pipe[0] < 0 && ::pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    return; // without the pipe the signals keep their default action, as before
  }
  g_signal.store(0);
  for (std::size_t i = 0; i < k_signals.size(); ++i) {
    struct sigaction old {};
    if (g_caught[i] || ::sigaction(k_signals[i], nullptr, &old) != 0 || old.sa_handler == SIG_IGN) {
      continue;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(k_signals[i], &sa, &g_saved[i]) == 0) {
      g_caught[i] = true;
    }
  }
  g_fd.store(g_pipe[0]);
}

void set_action(std::function<void()> action) {
  g_action = std::move(action);
}

int requested() noexcept {
  return g_signal.load();
}

int fd() noexcept {
  return g_fd.load();
}

void sleep_for(std::chrono::milliseconds d) {
  const int watch = fd();
  if (watch < 0) {
    std::this_thread::sleep_for(d);
    return;
  }
  const auto until = std::chrono::steady_clock::now() + d;
  while (requested() == 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return;
    }
    struct pollfd p {
      watch, POLLIN, 0
    };
    // Rounded up, so that the wait is never cut short by a millisecond.
    if (::poll(&p, 1, static_cast<int>(left.count()) + 1) > 0) {
      return;
    }
  }
}

void act_if_requested() noexcept {
  const int signo = requested();
  if (signo == 0) {
    return;
  }
  restore_dispositions();
  // The action's own requests must not act again.
  g_signal.store(0);
  if (g_action) {
    try {
      g_action();
    } catch (...) {
      // The action reports its own failures; the process ends by the signal regardless.
    }
  }
  die_of(signo);
}

void disarm_or_act() noexcept {
  restore_dispositions();
  act_if_requested();
  g_action = nullptr;
}

Guard::~Guard() {
  disarm_or_act();
}

} // namespace cs::util::stop
