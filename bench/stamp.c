/*
 * stamp: the child every benchmarked tool starts. It reads CLOCK_MONOTONIC first thing, so the
 * driver can measure the wall time from its own spawn to the child's first instruction, then
 * checks that the secrets arrived (without reading or printing any value) and writes one line
 * to the file named by $BENCH_STAMP:
 *
 *   <monotonic ns> <env vars named BS_*> <entries in $BENCH_FILES_DIR, or -1 without it>
 *
 * It is linked statically so that its own start-up (no dynamic loader) adds almost nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

int main(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);

  long env_count = 0;
  for (char** ep = environ; *ep; ep++) {
    if (strncmp(*ep, "BS_", 3) == 0)
      env_count++;
  }

  long file_count = -1;
  const char* dir = getenv("BENCH_FILES_DIR");
  if (dir && *dir) {
    DIR* d = opendir(dir);
    if (d) {
      file_count = 0;
      struct dirent* e;
      while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
          file_count++;
      }
      closedir(d);
    }
  }

  const char* out = getenv("BENCH_STAMP");
  if (!out || !*out)
    return 2;
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return 3;
  char line[96];
  int n = snprintf(line, sizeof line, "%lld %ld %ld\n",
                   (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, env_count, file_count);
  if (n <= 0 || write(fd, line, (size_t)n) != n)
    return 4;
  return close(fd) == 0 ? 0 : 5;
}
