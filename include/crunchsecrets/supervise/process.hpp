// Running a child under supervision, the way catatonit and tini do: every asynchronous signal
// is blocked before the child starts and read from a signalfd; every signal but SIGCHLD is
// forwarded to the child (or its process group); zombies are reaped with waitpid(-1, WNOHANG);
// the child's output can pass through a `Redactor`. Nothing here knows about Vault: the caller
// plugs its timers and its reactions to the child's exit in through `Hooks`.
#pragma once

#include "crunchsecrets/supervise/redact.hpp"
#include "crunchsecrets/supervise/schedule.hpp"
#include "crunchsecrets/util/fs.hpp"
#include "crunchsecrets/util/result.hpp"

#include <csignal>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

namespace cs::supervise {

// Blocks every signal except the synchronous ones the kernel raises for a faulting thread
// (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS); remembers the mask it replaced, which
// the child gets back before exec.
class SignalBlock {
public:
  SignalBlock();
  SignalBlock(const SignalBlock&) = delete;
  SignalBlock& operator=(const SignalBlock&) = delete;
  // Restores the original mask (used when crunch-secrets goes on to exec instead).
  ~SignalBlock();
  const sigset_t& original() const { return m_original; }
  const sigset_t& blocked() const { return m_blocked; }

private:
  sigset_t m_original;
  sigset_t m_blocked;
};

// The exit status a shell would report: the code for a normal exit, 128+N for signal N.
int shell_status(int wait_status);

// Where the child's standard output and error go.
enum class OutputMode {
  inherit, // the child writes to crunch-secrets' own stdout/stderr (no redaction possible)
  pipe,    // through a pipe, filtered by the redactor
  pty,     // through a pseudo-terminal, filtered: the child still sees a terminal
};

struct SpawnOptions {
  // The child becomes the leader of its own process group (and, when crunch-secrets' stdin
  // is the controlling terminal, the terminal's foreground group).
  bool own_process_group = false;
};

// The result of starting a child. When exec failed, `pid` has already exited and
// `exec_errno` says why (ENOENT: 127; anything else: 126).
struct Spawned {
  pid_t pid = -1;
  int exec_errno = 0;
};

struct SupervisorOptions {
  OutputMode stdout_mode = OutputMode::inherit;
  OutputMode stderr_mode = OutputMode::inherit;
  // Where the filtered streams are copied to (crunch-secrets' own stdout and stderr; tests
  // pass other descriptors).
  int stdout_target = 1;
  int stderr_target = 2;
  // Forward signals to the child's process group rather than to the child alone.
  bool forward_to_group = false;
};

// The supervisor's reactions, supplied by the caller.
class Hooks {
public:
  virtual ~Hooks() = default;
  // When `on_timer` should next run (`Clock::time_point::max()`: never).
  virtual Clock::time_point next_wakeup() = 0;
  virtual void on_timer(Clock::time_point now) = 0;
  // The main child exited with `wait_status`. Return true to end the loop (the usual case);
  // false when the caller started a replacement with `Supervisor::spawn` (a restart).
  virtual bool on_child_exit(int wait_status) = 0;
  // Called for every signal before it is forwarded; return true to swallow it.
  virtual bool on_signal(int /*signo*/) { return false; }
};

class Supervisor {
public:
  // Opens the signalfd for `block`'s set and, when crunch-secrets is not PID 1, makes it a
  // child subreaper so that orphaned grandchildren are reparented to it and reaped.
  Supervisor(const SignalBlock& block, const SupervisorOptions& options);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts `argv[0]` (PATH lookup) with `envp`, restoring the original signal mask and default
  // dispositions in the child, and wiring its stdout/stderr per the output modes. Becomes the
  // main child. Throws nothing: a failed fork is reported as `exec_errno`.
  Spawned spawn(char* const* argv, char* const* envp, const SpawnOptions& options);

  // Adds a value to redact from both output streams (see `Redactor::add`).
  void redact(const std::string& name, const util::Secret& value);

  // Sends `signo` to the main child (or its process group when forwarding to the group).
  void signal_child(int signo);

  // Runs until `hooks.on_child_exit` returns true, then drains the child's output. Returns the
  // shell status of the last main child. Errors after the child started are logged, never
  // thrown.
  int run(Hooks& hooks);

  pid_t child() const { return m_child; }
  bool is_subreaper() const { return m_subreaper; }

private:
  struct Stream;
  void reap(Hooks& hooks, bool& done);
  void pump(Stream& s, bool drain);
  void handle_signal(int signo, Hooks& hooks, bool& done);

  const SignalBlock& m_block;
  util::Fd m_signalfd;
  std::vector<std::unique_ptr<Stream>> m_streams; // index 0: stdout, 1: stderr (when piped)
  bool m_forward_to_group;
  bool m_subreaper = false;
  pid_t m_child = -1;
  int m_last_status = 0;
};

} // namespace cs::supervise
