/*
 * probe: the child process of the integration tests. It records what it really received from
 * crunch-secrets and writes it as one JSON object to the file named by $PROBE_REPORT, then
 * exits with $PROBE_EXIT (default 0).
 *
 * The report holds secrets, so tests put it on a tmpfs; the probe never writes a value to
 * stdout or stderr. Environment variables it understands (they appear in the report too):
 *
 *   PROBE_REPORT  file to write (created 0600, truncated). Without it, nothing is written.
 *   PROBE_FILES   colon-separated paths whose content, mode and type are recorded.
 *   PROBE_EXIT    exit status, 0-255 (default 0).
 *   PROBE_STDIN   if "1", read stdin to EOF and record it (key "stdin").
 *   PROBE_ECHO    written verbatim to stdout followed by a newline (a marker; never a secret).
 *
 * Report keys:
 *   argv        array of strings.
 *   env         object NAME -> value (an entry without '=' is recorded with a null value).
 *   files       object path -> {exists, regular, symlink, mode ("0400"), uid, size,
 *               content, content_b64, errno}. content is the bytes as a JSON string (see
 *               below); content_b64 is standard base64 of the exact bytes.
 *   stdio       object "0"/"1"/"2" -> {dev, ino, mode} from fstat, or {error}.
 *   open_fds    array of open fd numbers (from /proc/self/fd, before the report is opened).
 *   fd_targets  object fd -> readlink of /proc/self/fd/N.
 *   dumpable    prctl(PR_GET_DUMPABLE).
 *   sigmask     array of blocked signal numbers; sigignored: signals set to SIG_IGN.
 *   pid, ppid, uid, euid, cwd, stdin (when asked: {size, content, content_b64}).
 *
 * Strings: valid UTF-8 is kept as is (with the usual JSON escapes, and \u00XX for other
 * control bytes); each byte that is not part of valid UTF-8 is written as \udcXX (XX = the
 * byte), i.e. Python's "surrogateescape": s.encode("utf-8", "surrogateescape") gives back the
 * exact bytes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

extern char** environ;

/* A growable output buffer; allocation failure ends the process with status 70. */
struct buf {
  char* data;
  size_t len;
  size_t cap;
};

static void die(const char* what) {
  /* Only a fixed text and errno: never a value. */
  fprintf(stderr, "probe: %s: %s\n", what, strerror(errno));
  exit(70);
}

static void buf_put(struct buf* b, const char* s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (b->len + n + 1 > cap)
      cap *= 2;
    char* p = realloc(b->data, cap);
    if (!p)
      die("out of memory");
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void buf_str(struct buf* b, const char* s) {
  buf_put(b, s, strlen(s));
}

static void buf_fmt(struct buf* b, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void buf_fmt(struct buf* b, const char* fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0)
    die("vsnprintf");
  buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the valid UTF-8 sequence at `s` (at most `n` bytes), or 0 if it is not valid. */
static size_t utf8_len(const unsigned char* s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1Fu;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07u;
  } else {
    return 0;
  }
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3Fu);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF)
    return 0;
  return len;
}

/* Appends `s` (`n` bytes) as a quoted JSON string. */
static void buf_json(struct buf* b, const char* s, size_t n) {
  const unsigned char* u = (const unsigned char*)s;
  buf_put(b, "\"", 1);
  size_t i = 0;
  while (i < n) {
    unsigned char c = u[i];
    switch (c) {
    case '"':
      buf_put(b, "\\\"", 2);
      i++;
      continue;
    case '\\':
      buf_put(b, "\\\\", 2);
      i++;
      continue;
    case '\n':
      buf_put(b, "\\n", 2);
      i++;
      continue;
    case '\r':
      buf_put(b, "\\r", 2);
      i++;
      continue;
    case '\t':
      buf_put(b, "\\t", 2);
      i++;
      continue;
    default:
      break;
    }
    if (c < 0x20 || c == 0x7F) {
      buf_fmt(b, "\\u%04x", c);
      i++;
      continue;
    }
    size_t len = utf8_len(u + i, n - i);
    if (len == 0) {
      buf_fmt(b, "\\udc%02x", c);
      i++;
      continue;
    }
    buf_put(b, s + i, len);
    i += len;
  }
  buf_put(b, "\"", 1);
}

static void buf_jstr(struct buf* b, const char* s) {
  buf_json(b, s, strlen(s));
}

static void buf_b64(struct buf* b, const unsigned char* s, size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  buf_put(b, "\"", 1);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)s[i + 1] << 8;
    if (i + 2 < n)
      v |= s[i + 2];
    char out[4];
    out[0] = tbl[(v >> 18) & 63];
    out[1] = tbl[(v >> 12) & 63];
    out[2] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out[3] = i + 2 < n ? tbl[v & 63] : '=';
    buf_put(b, out, 4);
  }
  buf_put(b, "\"", 1);
}

/* Reads all of `fd` into a fresh buffer. */
static int read_all(int fd, struct buf* out) {
  char tmp[8192];
  for (;;) {
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (n == 0)
      return 0;
    buf_put(out, tmp, (size_t)n);
  }
}

static void report_file(struct buf* b, const char* path) {
  struct stat lst;
  buf_jstr(b, path);
  buf_str(b, ":{");
  if (lstat(path, &lst) != 0) {
    buf_fmt(b, "\"exists\":false,\"errno\":%d}", errno);
    return;
  }
  int is_link = S_ISLNK(lst.st_mode);
  buf_fmt(b,
          "\"exists\":true,\"symlink\":%s,\"regular\":%s,\"mode\":\"%04o\",\"uid\":%u,"
          "\"gid\":%u,\"nlink\":%lu,\"size\":%lld",
          is_link ? "true" : "false", S_ISREG(lst.st_mode) ? "true" : "false",
          (unsigned)(lst.st_mode & 07777), (unsigned)lst.st_uid, (unsigned)lst.st_gid,
          (unsigned long)lst.st_nlink, (long long)lst.st_size);
  if (!S_ISREG(lst.st_mode)) {
    buf_str(b, "}");
    return;
  }
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct buf content = {0};
  if (fd < 0 || read_all(fd, &content) != 0) {
    buf_fmt(b, ",\"errno\":%d}", errno);
    if (fd >= 0)
      close(fd);
    free(content.data);
    return;
  }
  close(fd);
  buf_str(b, ",\"content\":");
  buf_json(b, content.data ? content.data : "", content.len);
  buf_str(b, ",\"content_b64\":");
  buf_b64(b, (const unsigned char*)(content.data ? content.data : ""), content.len);
  buf_str(b, "}");
  if (content.data) {
    memset(content.data, 0, content.cap);
    free(content.data);
  }
}

int main(int argc, char** argv) {
  /* Take the fd snapshot before this program opens anything itself. */
  int fds[1024];
  size_t nfds = 0;
  struct buf targets = {0};
  DIR* d = opendir("/proc/self/fd");
  if (!d)
    die("opendir /proc/self/fd");
  int dfd = dirfd(d);
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    int fd = atoi(e->d_name);
    if (fd == dfd || nfds >= sizeof fds / sizeof fds[0])
      continue;
    fds[nfds++] = fd;
    char link[PATH_MAX], lpath[64];
    snprintf(lpath, sizeof lpath, "/proc/self/fd/%d", fd);
    ssize_t ln = readlink(lpath, link, sizeof link - 1);
    if (ln < 0)
      ln = 0;
    link[ln] = '\0';
    buf_fmt(&targets, "%s\"%d\":", targets.len ? "," : "", fd);
    buf_jstr(&targets, link);
  }
  closedir(d);

  struct buf b = {0};
  buf_str(&b, "{\"argv\":[");
  for (int i = 0; i < argc; i++) {
    if (i)
      buf_str(&b, ",");
    buf_jstr(&b, argv[i]);
  }
  buf_str(&b, "],\"env\":{");
  for (char** ep = environ; ep && *ep; ep++) {
    if (ep != environ)
      buf_str(&b, ",");
    const char* eq = strchr(*ep, '=');
    if (!eq) {
      buf_jstr(&b, *ep);
      buf_str(&b, ":null");
      continue;
    }
    buf_json(&b, *ep, (size_t)(eq - *ep));
    buf_str(&b, ":");
    buf_jstr(&b, eq + 1);
  }
  buf_str(&b, "},\"stdio\":{");
  for (int fd = 0; fd < 3; fd++) {
    struct stat st;
    buf_fmt(&b, "%s\"%d\":", fd ? "," : "", fd);
    if (fstat(fd, &st) != 0)
      buf_fmt(&b, "{\"error\":%d}", errno);
    else
      buf_fmt(&b, "{\"dev\":%llu,\"ino\":%llu,\"mode\":\"%06o\"}", (unsigned long long)st.st_dev,
              (unsigned long long)st.st_ino, (unsigned)st.st_mode);
  }
  buf_str(&b, "},\"open_fds\":[");
  for (size_t i = 0; i < nfds; i++)
    buf_fmt(&b, "%s%d", i ? "," : "", fds[i]);
  buf_str(&b, "],\"fd_targets\":{");
  if (targets.len)
    buf_put(&b, targets.data, targets.len);
  free(targets.data);

  buf_fmt(&b, "},\"dumpable\":%d", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));

  sigset_t mask;
  sigemptyset(&mask);
  if (sigprocmask(SIG_BLOCK, NULL, &mask) != 0)
    die("sigprocmask");
  buf_str(&b, ",\"sigmask\":[");
  int first = 1;
  for (int sig = 1; sig < NSIG; sig++) {
    if (sigismember(&mask, sig) == 1) {
      buf_fmt(&b, "%s%d", first ? "" : ",", sig);
      first = 0;
    }
  }
  buf_str(&b, "],\"sigignored\":[");
  first = 1;
  for (int sig = 1; sig < NSIG; sig++) {
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
      buf_fmt(&b, "%s%d", first ? "" : ",", sig);
      first = 0;
    }
  }
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd))
    cwd[0] = '\0';
  buf_fmt(&b, "],\"pid\":%d,\"ppid\":%d,\"uid\":%u,\"euid\":%u,\"cwd\":", (int)getpid(),
          (int)getppid(), (unsigned)getuid(), (unsigned)geteuid());
  buf_jstr(&b, cwd);

  buf_str(&b, ",\"files\":{");
  const char* files = getenv("PROBE_FILES");
  if (files && *files) {
    char* list = strdup(files);
    if (!list)
      die("out of memory");
    int n = 0;
    char* save = NULL;
    for (char* p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
      if (n++)
        buf_str(&b, ",");
      report_file(&b, p);
    }
    free(list);
  }
  buf_str(&b, "}");

  const char* want_stdin = getenv("PROBE_STDIN");
  if (want_stdin && strcmp(want_stdin, "1") == 0) {
    struct buf in = {0};
    if (read_all(0, &in) != 0)
      die("read stdin");
    buf_fmt(&b, ",\"stdin\":{\"size\":%zu,\"content\":", in.len);
    buf_json(&b, in.data ? in.data : "", in.len);
    buf_str(&b, ",\"content_b64\":");
    buf_b64(&b, (const unsigned char*)(in.data ? in.data : ""), in.len);
    buf_str(&b, "}");
    free(in.data);
  }
  buf_str(&b, "}\n");

  const char* report = getenv("PROBE_REPORT");
  if (report && *report) {
    int fd = open(report, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
      die("open PROBE_REPORT");
    size_t off = 0;
    while (off < b.len) {
      ssize_t n = write(fd, b.data + off, b.len - off);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        die("write PROBE_REPORT");
      }
      off += (size_t)n;
    }
    if (close(fd) != 0)
      die("close PROBE_REPORT");
  }
  memset(b.data, 0, b.cap);
  free(b.data);

  const char* echo = getenv("PROBE_ECHO");
  if (echo) {
    fputs(echo, stdout);
    fputc('\n', stdout);
    fflush(stdout);
  }

  int status = 0;
  const char* ex = getenv("PROBE_EXIT");
  if (ex && *ex) {
    char* end = NULL;
    long v = strtol(ex, &end, 10);
    if (*end != '\0' || v < 0 || v > 255) {
      fprintf(stderr, "probe: PROBE_EXIT must be 0-255\n");
      return 2;
    }
    status = (int)v;
  }
  return status;
}
