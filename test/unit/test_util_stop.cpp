#include "crunchsecrets/util/stop.hpp"

#include <array>
#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <functional>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace stop = cs::util::stop;

namespace {

using Clock = std::chrono::steady_clock;

void set_handler(int signo, void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  ::sigaction(signo, &sa, nullptr);
}

// Reads what earlier stops left in the armed stop's pipe. The pipe stays open once made and is
// shared with the forked children, whose handlers wrote into it; a process that acts dies, so
// only tests see it again.
void drain_stop_fd() {
  char buf[64];
  while (::read(stop::fd(), buf, sizeof buf) > 0) {
  }
}

// Runs `body` in a forked child, which exits 0 when `body` returns, and returns the child's
// wait status. A stop that acts ends the process, so those cases cannot run in the test
// process; the child reports a failed expectation by its exit code (`expect`), since doctest's
// results in a child are lost. The child starts with the default dispositions (doctest catches
// these signals to report crashes) and writes no core file (SIGQUIT's default action would).
int in_child(const std::function<void()>& body) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const struct rlimit none { 0, 0 };
    ::setrlimit(RLIMIT_CORE, &none);
    for (const int signo : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) {
      set_handler(signo, SIG_DFL);
    }
    body();
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

// In a child: ends it with `code` unless `ok`.
void expect(bool ok, int code) {
  if (!ok) {
    ::_exit(code);
  }
}

bool readable(int fd) {
  struct pollfd p {
    fd, POLLIN, 0
  };
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// Whether `signo`'s handler is now `handler` (a bool: doctest cannot print function pointers).
bool has_handler(int signo, void (*handler)(int)) {
  struct sigaction sa {};
  ::sigaction(signo, nullptr, &sa);
  return sa.sa_handler == handler;
}

void a_handler_of_the_caller(int) {}

// The bytes a child wrote to the pipe `fd` (its write end closed), as a string.
std::string drain(int fd) {
  std::string out;
  char buf[64];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

} // namespace

TEST_SUITE_BEGIN("util::stop");

TEST_CASE("unarmed, nothing is requested, sleeps are whole and acting does nothing") {
  CHECK(stop::requested() == 0);
  CHECK(stop::fd() == -1);
  const auto t0 = Clock::now();
  stop::sleep_for(std::chrono::milliseconds(30));
  CHECK(Clock::now() - t0 >= std::chrono::milliseconds(30));
  stop::act_if_requested();
  stop::disarm_or_act();
  CHECK(stop::fd() == -1);
}

TEST_CASE("arming catches the stop signals the caller did not ignore; disarming restores them") {
  // doctest's own handlers, put back at the end.
  std::array<struct sigaction, 4> saved{};
  const std::array<int, 4> signals{SIGTERM, SIGINT, SIGHUP, SIGQUIT};
  for (std::size_t i = 0; i < signals.size(); ++i) {
    ::sigaction(signals[i], nullptr, &saved[i]);
  }
  set_handler(SIGTERM, a_handler_of_the_caller);
  set_handler(SIGHUP, SIG_IGN);
  set_handler(SIGINT, SIG_DFL);
  set_handler(SIGQUIT, SIG_DFL);
  bool acted = false;
  stop::set_action([&acted] { acted = true; });
  stop::arm();
  REQUIRE(stop::fd() >= 0);
  drain_stop_fd();
  CHECK_FALSE(readable(stop::fd()));
  CHECK_FALSE(has_handler(SIGTERM, a_handler_of_the_caller));
  CHECK_FALSE(has_handler(SIGTERM, SIG_DFL));
  CHECK_FALSE(has_handler(SIGINT, SIG_DFL));
  CHECK_FALSE(has_handler(SIGQUIT, SIG_DFL));
  CHECK(has_handler(SIGHUP, SIG_IGN)); // a nohup'd run stays deaf to SIGHUP
  stop::disarm_or_act();
  CHECK(stop::fd() == -1);
  CHECK(has_handler(SIGTERM, a_handler_of_the_caller));
  CHECK(has_handler(SIGINT, SIG_DFL));
  CHECK(has_handler(SIGQUIT, SIG_DFL));
  CHECK(has_handler(SIGHUP, SIG_IGN));
  CHECK_FALSE(acted); // no stop was requested
  for (std::size_t i = 0; i < signals.size(); ++i) {
    ::sigaction(signals[i], &saved[i], nullptr);
  }
}

TEST_CASE("a guard disarms when its scope ends, without running the action") {
  struct sigaction before {};
  ::sigaction(SIGTERM, nullptr, &before); // doctest's own, in this process
  bool acted = false;
  {
    stop::Guard guard;
    stop::set_action([&acted] { acted = true; });
    stop::arm();
    CHECK(stop::fd() >= 0);
    CHECK_FALSE(has_handler(SIGTERM, before.sa_handler));
  }
  CHECK(stop::fd() == -1);
  CHECK(has_handler(SIGTERM, before.sa_handler));
  CHECK_FALSE(acted);
  // A second disarm, as run_command does before its guard ends, changes nothing.
  stop::disarm_or_act();
  CHECK(stop::fd() == -1);
}

TEST_CASE("a caught signal is recorded and wakes the descriptor; the first one is kept") {
  const int status = in_child([] {
    stop::arm();
    drain_stop_fd();
    expect(!readable(stop::fd()), 14);
    ::raise(SIGTERM);
    expect(stop::requested() == SIGTERM, 10); // and the process goes on
    expect(readable(stop::fd()), 11);
    ::raise(SIGINT);
    expect(stop::requested() == SIGTERM, 12);
    const auto t0 = Clock::now();
    stop::sleep_for(std::chrono::seconds(10));
    expect(Clock::now() - t0 < std::chrono::seconds(1), 13); // a requested stop sleeps no more
  });
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a signal from elsewhere cuts a sleep short") {
  const int status = in_child([] {
    stop::arm();
    std::thread other([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      ::kill(::getpid(), SIGTERM); // to the process: any thread may run the handler
    });
    const auto t0 = Clock::now();
    stop::sleep_for(std::chrono::seconds(10));
    const auto slept = Clock::now() - t0;
    other.join();
    expect(stop::requested() == SIGTERM, 20);
    expect(slept < std::chrono::seconds(2), 21);
  });
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a signal the caller ignored is not caught") {
  const int status = in_child([] {
    set_handler(SIGHUP, SIG_IGN);
    stop::arm();
    drain_stop_fd();
    ::raise(SIGHUP);
    expect(stop::requested() == 0, 30);
    expect(!readable(stop::fd()), 31);
  });
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("acting runs the action disarmed, then dies of the signal") {
  for (const int signo : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) {
    CAPTURE(signo);
    int report[2];
    REQUIRE(::pipe(report) == 0);
    const int status = in_child([&] {
      ::close(report[0]);
      stop::set_action([&] {
        // Disarmed: the action's own requests are not cut short, and nothing is requested.
        const char byte = stop::fd() == -1 && stop::requested() == 0 ? 'd' : 'a';
        [[maybe_unused]] const ssize_t n = ::write(report[1], &byte, 1);
      });
      stop::arm();
      ::raise(signo);
      stop::act_if_requested();
      ::_exit(40); // not reached: the process died of the signal
    });
    ::close(report[1]);
    CHECK(drain(report[0]) == "d");
    ::close(report[0]);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == signo);
  }
}

TEST_CASE("disarming acts on a stop that arrived before") {
  int report[2];
  REQUIRE(::pipe(report) == 0);
  const int status = in_child([&] {
    ::close(report[0]);
    stop::set_action([&] { [[maybe_unused]] const ssize_t n = ::write(report[1], "x", 1); });
    stop::arm();
    ::raise(SIGTERM);
    stop::disarm_or_act();
    ::_exit(50);
  });
  ::close(report[1]);
  CHECK(drain(report[0]) == "x");
  ::close(report[0]);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
}

TEST_CASE("a second signal while the action runs ends the process at once") {
  int report[2];
  REQUIRE(::pipe(report) == 0);
  const int status = in_child([&] {
    ::close(report[0]);
    stop::set_action([&] {
      ::raise(SIGINT); // the dispositions are restored: this one is not caught
      [[maybe_unused]] const ssize_t n = ::write(report[1], "late", 4);
    });
    stop::arm();
    ::raise(SIGTERM);
    stop::act_if_requested();
    ::_exit(60);
  });
  ::close(report[1]);
  CHECK(drain(report[0]).empty());
  ::close(report[0]);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGINT);
}

TEST_CASE("an action that throws does not keep the process alive") {
  const int status = in_child([] {
    stop::set_action([] { throw std::runtime_error("revocation failed"); });
    stop::arm();
    ::raise(SIGTERM);
    stop::act_if_requested();
    ::_exit(70);
  });
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
}

TEST_SUITE_END();
