#include "crunchsecrets/supervise/process.hpp"
#include "testutil.hpp"

#include <cerrno>
#include <csignal>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <functional>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern "C" char** environ;

using namespace cs::supervise;

namespace {

// Hooks that end the loop at the first exit and can run one action on a timer.
struct TestHooks : Hooks {
  Clock::time_point wake = Clock::time_point::max();
  std::function<void()> action;
  std::vector<int> seen;
  int exits = 0;
  Clock::time_point next_wakeup() override { return wake; }
  void on_timer(Clock::time_point) override {
    wake = Clock::time_point::max();
    if (action) {
      action();
    }
  }
  bool on_child_exit(int) override {
    ++exits;
    return true;
  }
  bool on_signal(int signo) override {
    seen.push_back(signo);
    return false;
  }
};

std::vector<char*> make_argv(std::vector<std::string>& args) {
  std::vector<char*> v;
  for (auto& a : args) {
    v.push_back(a.data());
  }
  v.push_back(nullptr);
  return v;
}

Spawned spawn_sh(Supervisor& sup, const std::string& script, SpawnOptions o = {}) {
  std::vector<std::string> args{"/bin/sh", "-c", script};
  auto argv = make_argv(args);
  return sup.spawn(argv.data(), environ, o);
}

std::string read_all(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    s.append(buf, static_cast<std::size_t>(n));
  }
  return s;
}

} // namespace

TEST_SUITE_BEGIN("supervise::Supervisor");

TEST_CASE("exit codes pass through, signals become 128+N") {
  SignalBlock block;
  for (int code : {0, 1, 2, 42, 126, 127, 128, 255}) {
    Supervisor sup(block, {});
    REQUIRE(spawn_sh(sup, "exit " + std::to_string(code)).exec_errno == 0);
    TestHooks hooks;
    CHECK(sup.run(hooks) == code);
    CHECK(hooks.exits == 1);
  }
  Supervisor sup(block, {});
  REQUIRE(spawn_sh(sup, "kill -KILL $$").exec_errno == 0);
  TestHooks hooks;
  CHECK(sup.run(hooks) == 128 + SIGKILL);
}

TEST_CASE("a command that is missing or not executable reports errno for 127/126") {
  SignalBlock block;
  Supervisor sup(block, {});
  std::vector<std::string> args{"/nonexistent/cs-command"};
  auto argv = make_argv(args);
  CHECK(sup.spawn(argv.data(), environ, {}).exec_errno == ENOENT);
  cs::test::TempDir dir;
  const std::string path = dir.path() + "/not-exec";
  cs::test::write_text(path, "#!/bin/sh\n");
  std::vector<std::string> args2{path};
  auto argv2 = make_argv(args2);
  CHECK(sup.spawn(argv2.data(), environ, {}).exec_errno == EACCES);
}

TEST_CASE("a signal sent to the supervisor reaches the child") {
  SignalBlock block;
  Supervisor sup(block, {});
  // The child waits for SIGUSR1 (trapped: exits 10), and dies of SIGTERM otherwise.
  REQUIRE(spawn_sh(sup, "trap 'exit 10' USR1; while :; do sleep 0.05; done").exec_errno == 0);
  TestHooks hooks;
  hooks.wake = Clock::now() + std::chrono::milliseconds(300);
  hooks.action = [] { ::kill(::getpid(), SIGUSR1); };
  CHECK(sup.run(hooks) == 10);
  CHECK(std::find(hooks.seen.begin(), hooks.seen.end(), SIGUSR1) != hooks.seen.end());
}

TEST_CASE("SIGTERM to the supervisor kills a child that does not trap it: 143") {
  SignalBlock block;
  Supervisor sup(block, {});
  REQUIRE(spawn_sh(sup, "exec sleep 30").exec_errno == 0);
  TestHooks hooks;
  hooks.wake = Clock::now() + std::chrono::milliseconds(100);
  hooks.action = [] { ::kill(::getpid(), SIGTERM); };
  CHECK(sup.run(hooks) == 143);
}

TEST_CASE("the child gets the original signal mask back") {
  SignalBlock block;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  SupervisorOptions o;
  o.stdout_mode = OutputMode::pipe;
  o.stdout_target = fds[1];
  Supervisor sup(block, o);
  REQUIRE(spawn_sh(sup, "grep SigBlk /proc/self/status").exec_errno == 0);
  TestHooks hooks;
  CHECK(sup.run(hooks) == 0);
  ::close(fds[1]);
  const auto out = read_all(fds[0]);
  ::close(fds[0]);
  CHECK(out == "SigBlk:\t0000000000000000\n");
}

TEST_CASE("piped output is redacted, split writes included, other bytes unchanged") {
  SignalBlock block;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  SupervisorOptions o;
  o.stdout_mode = OutputMode::pipe;
  o.stdout_target = fds[1];
  Supervisor sup(block, o);
  sup.redact("db", cs::util::Secret("canary-9f2e71"));
  REQUIRE(
      spawn_sh(sup, "printf 'a canary-9f'; sleep 0.2; printf '2e71 b\\001\\377\\n'").exec_errno ==
      0);
  TestHooks hooks;
  CHECK(sup.run(hooks) == 0);
  ::close(fds[1]);
  const auto out = read_all(fds[0]);
  ::close(fds[0]);
  CHECK(out == "a [redacted:db] b\001\377\n");
}

TEST_CASE("a pty keeps the child's output a terminal") {
  SignalBlock block;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  SupervisorOptions o;
  o.stdout_mode = OutputMode::pty;
  o.stdout_target = fds[1];
  Supervisor sup(block, o);
  REQUIRE(spawn_sh(sup, "test -t 1 && printf 'tty\\n' || printf 'no\\n'").exec_errno == 0);
  TestHooks hooks;
  CHECK(sup.run(hooks) == 0);
  ::close(fds[1]);
  const auto out = read_all(fds[0]);
  ::close(fds[0]);
  CHECK(out == "tty\n"); // no "\r\n": output post-processing is off
}

TEST_CASE("orphaned grandchildren are reaped by the subreaper") {
  SignalBlock block;
  Supervisor sup(block, {});
  REQUIRE(sup.is_subreaper());
  // The grandchild outlives its parent and is reparented to us; the main child exits last.
  REQUIRE(spawn_sh(sup, "sh -c 'sleep 0.1' & sleep 0.3").exec_errno == 0);
  TestHooks hooks;
  CHECK(sup.run(hooks) == 0);
  // Everything was reaped: no child of ours is left, zombie or not.
  errno = 0;
  CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);
  CHECK(errno == ECHILD);
}

TEST_CASE("signals go to the whole process group when asked") {
  SignalBlock block;
  SupervisorOptions o;
  o.forward_to_group = true;
  Supervisor sup(block, o);
  SpawnOptions so;
  so.own_process_group = true;
  REQUIRE(spawn_sh(sup, "trap 'exit 11' HUP; sleep 30 & wait", so).exec_errno == 0);
  TestHooks hooks;
  hooks.wake = Clock::now() + std::chrono::milliseconds(300);
  hooks.action = [] { ::kill(::getpid(), SIGHUP); };
  // The sleeping grandchild is in the group too, so it dies of SIGHUP and nothing lingers.
  CHECK(sup.run(hooks) == 11);
}

TEST_SUITE_END();
