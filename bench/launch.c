/*
 * launch: starts one benchmarked command and reports what it cost. The driver (bench.py) could
 * start the command itself, but a process forked from a Python interpreter starts with the
 * interpreter's resident-set high-water mark, which Linux keeps across exec (so every tool would
 * show at least Python's ~25 MiB). This small static program forks instead, so its own tiny
 * footprint is the floor.
 *
 * Usage: launch COMMAND [ARG...]
 * Prints one line on stdout (stderr and stdout of COMMAND go wherever launch's stderr goes):
 *
 *   <CLOCK_MONOTONIC ns just before fork> <wait status> <user µs> <system µs> <max RSS KiB>
 *
 * The times and the RSS come from wait4, so they cover COMMAND and every descendant it waited
 * for; the RSS is that of the largest single process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fputs("usage: launch COMMAND [ARG...]\n", stderr);
    return 64;
  }
  /* The command's output goes to launch's stderr; launch's stdout carries only the report. */
  int report = dup(1);
  if (report < 0 || dup2(2, 1) < 0) {
    perror("launch: dup");
    return 70;
  }
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) {
    perror("launch: fork");
    return 70;
  }
  if (pid == 0) {
    close(report);
    execv(argv[1], argv + 1);
    perror("launch: exec");
    _exit(127);
  }
  int status = 0;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("launch: wait4");
      return 70;
    }
  }
  dprintf(report, "%lld %d %lld %lld %ld\n", (long long)t0.tv_sec * 1000000000LL + t0.tv_nsec,
          status, (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec,
          (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec, ru.ru_maxrss);
  return 0;
}
