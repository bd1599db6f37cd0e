/*
 * sigprobe: the child of the supervise-mode signal tests. It records every signal it receives
 * and its own view of the world, one line each, appended to the file $SIGPROBE_LOG:
 *
 *   ready <pid> <ppid> blocked=<hex mask>   once at start
 *   sig <N>                                  for every signal received (from the handler)
 *
 * It exits with $SIGPROBE_EXIT (default 0) after $SIGPROBE_SECONDS (default: never) seconds,
 * or dies of SIGTERM/SIGINT (default action, re-raised after recording) so the supervisor can
 * report 128+N. With $SIGPROBE_ORPHANS=N it first starts N grandchildren that outlive it by
 * a moment (they sleep 0.3 s and exit), to check that orphans are reaped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;

static void put(const char* text) {
  if (log_fd >= 0) {
    ssize_t ignored = write(log_fd, text, strlen(text));
    (void)ignored;
  }
}

static void on_signal(int signo) {
  char line[32];
  int n = snprintf(line, sizeof line, "sig %d\n", signo);
  if (n > 0 && log_fd >= 0) {
    ssize_t ignored = write(log_fd, line, (size_t)n);
    (void)ignored;
  }
  if (signo == SIGTERM || signo == SIGINT) {
    signal(signo, SIG_DFL);
    raise(signo);
  }
}

int main(void) {
  const char* path = getenv("SIGPROBE_LOG");
  if (path != NULL) {
    log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  }
  const char* orphans = getenv("SIGPROBE_ORPHANS");
  for (int i = 0; orphans != NULL && i < atoi(orphans); ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      struct timespec ts = {0, 300 * 1000 * 1000};
      nanosleep(&ts, NULL);
      _exit(0);
    }
  }
  for (int s = 1; s < NSIG; ++s) {
    if (s == SIGKILL || s == SIGSTOP || s == SIGCHLD || (s > 31 && s < SIGRTMIN)) {
      continue;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(s, &sa, NULL);
  }
  sigset_t cur;
  sigprocmask(SIG_SETMASK, NULL, &cur);
  unsigned long long mask = 0;
  for (int s = 1; s < 64; ++s) {
    if (sigismember(&cur, s) == 1) {
      mask |= 1ULL << (s - 1);
    }
  }
  char line[96];
  snprintf(line, sizeof line, "ready %d %d blocked=%llx\n", (int)getpid(), (int)getppid(), mask);
  put(line);
  const char* secs = getenv("SIGPROBE_SECONDS");
  const char* code = getenv("SIGPROBE_EXIT");
  struct timespec end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  double limit = secs != NULL ? atof(secs) : 1e9;
  for (;;) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double elapsed = (double)(now.tv_sec - end.tv_sec) + (double)(now.tv_nsec - end.tv_nsec) / 1e9;
    if (elapsed >= limit) {
      break;
    }
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return code != NULL ? atoi(code) : 0;
}
