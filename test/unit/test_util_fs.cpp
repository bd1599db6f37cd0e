// Spying on openat64 below needs the plain (unfortified) declaration.
#undef _FORTIFY_SOURCE

#include "crunchsecrets/util/fs.hpp"
#include "testutil.hpp"

#include <cerrno>
#include <cstdarg>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

using cs::test::mode_of;
using cs::test::on_memory_fs;
using cs::test::TempDir;
using cs::util::AtomicFile;
using cs::util::Fd;

// The flags of every openat64 call made while `g_spy_openat` is set. The library is linked
// statically into this executable, so this definition takes the place of libc's.
namespace {
bool g_spy_openat = false;
std::vector<int> g_openat_flags;
} // namespace

extern "C" int openat64(int dirfd, const char* path, int flags, ...) {
  mode_t mode = 0;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  if (g_spy_openat) {
    g_openat_flags.push_back(flags);
  }
  return static_cast<int>(::syscall(SYS_openat, dirfd, path, flags, mode));
}

namespace {

Fd open_dir(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(fd.valid());
  return fd;
}

std::vector<std::string> segs(std::initializer_list<const char*> list) {
  return {list.begin(), list.end()};
}

} // namespace

TEST_SUITE_BEGIN("util::split_safe_relative_path");

TEST_CASE("a relative path splits into its segments") {
  auto r = cs::util::split_safe_relative_path("db/password");
  REQUIRE(r.ok());
  CHECK(*r == segs({"db", "password"}));
  CHECK(cs::util::split_safe_relative_path("app.env").value() == segs({"app.env"}));
  CHECK(cs::util::split_safe_relative_path("a/b/c").value() == segs({"a", "b", "c"}));
}

TEST_CASE("dot files and names with dots are fine") {
  CHECK(cs::util::split_safe_relative_path(".hidden").value() == segs({".hidden"}));
  CHECK(cs::util::split_safe_relative_path("a/...").value() == segs({"a", "..."}));
  CHECK(cs::util::split_safe_relative_path("..a/b..").value() == segs({"..a", "b.."}));
}

TEST_CASE("paths that could leave the directory are refused") {
  for (const char* bad : {"", "/etc/passwd", "/", "..", "../x", "a/../../x", "a/..", ".", "./a",
                          "a/./b", "a//b", "a/", "//a"}) {
    CAPTURE(bad);
    CHECK_FALSE(cs::util::split_safe_relative_path(bad).ok());
  }
}

TEST_CASE("the error says why") {
  CHECK_CONTAINS(cs::util::split_safe_relative_path("../x").error(), "'..'");
  CHECK_CONTAINS(cs::util::split_safe_relative_path("/x").error(), "absolute");
  CHECK_CONTAINS(cs::util::split_safe_relative_path("a//b").error(), "empty path segment");
}

TEST_CASE("a NUL byte is refused") {
  CHECK_FALSE(cs::util::split_safe_relative_path(std::string_view("a\0b", 3)).ok());
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("util::AtomicFile");

TEST_CASE("create, write and commit put the file in place with its mode") {
  TempDir tmp;
  Fd dir = open_dir(tmp.path());
  {
    auto f = AtomicFile::create(dir.get(), "secret.txt", 0440);
    REQUIRE_MESSAGE(f.ok(), f.error());
    CHECK(f->name() == "secret.txt");
    // Until commit, only a hidden temporary file exists.
    CHECK_FALSE(cs::test::exists_nofollow(tmp / "secret.txt"));
    const std::string listing = cs::test::list_dir(tmp.path());
    CHECK(listing.rfind(".secret.txt.tmp-", 0) == 0);
    REQUIRE(f->write_all("value\n").ok());
    CHECK_FALSE(cs::test::exists_nofollow(tmp / "secret.txt"));
    REQUIRE(f->commit().ok());
    CHECK(cs::test::list_dir(tmp.path()) == "secret.txt");
  }
  // Destroying a committed file keeps it.
  CHECK(cs::test::read_text(tmp / "secret.txt") == "value\n");
  CHECK(mode_of(tmp / "secret.txt") == 0440);
}

TEST_CASE("an AtomicFile owns its directory descriptor: closing the caller's changes nothing") {
  TempDir tmp;
  std::optional<AtomicFile> kept;
  {
    Fd dir = open_dir(tmp.path());
    auto f = AtomicFile::create(dir.get(), "owned", 0400);
    REQUIRE_MESSAGE(f.ok(), f.error());
    kept.emplace(std::move(*f));
  } // the caller's descriptor is closed here
  // A descriptor opened now may reuse the closed number; the file must not use it.
  Fd other = open_dir("/");
  REQUIRE(kept->write_all("v").ok());
  REQUIRE(kept->commit().ok());
  CHECK(cs::test::read_text(tmp / "owned") == "v");
  kept->remove_committed();
  CHECK_FALSE(cs::test::exists_nofollow(tmp / "owned"));
}

TEST_CASE("the temporary file is created 0600 until write_all sets the final mode") {
  TempDir tmp;
  Fd dir = open_dir(tmp.path());
  auto f = AtomicFile::create(dir.get(), "x", 0400);
  REQUIRE(f.ok());
  const std::string tmp_name = tmp / cs::test::list_dir(tmp.path());
  CHECK((mode_of(tmp_name) & 077) == 0);
  REQUIRE(f->write_all("").ok());
  CHECK(mode_of(tmp_name) == 0400);
}

TEST_CASE("an uncommitted file is removed on destruction, even after writing") {
  TempDir tmp;
  Fd dir = open_dir(tmp.path());
  {
    auto f = AtomicFile::create(dir.get(), "never", 0400);
    REQUIRE(f.ok());
    REQUIRE(f->write_all("half-written").ok());
    CHECK(cs::test::list_dir(tmp.path()) != "");
  }
  CHECK(cs::test::list_dir(tmp.path()) == "");
}

TEST_CASE("a moved-from AtomicFile does not remove the moved temporary file") {
  TempDir tmp;
  Fd dir = open_dir(tmp.path());
  auto f = AtomicFile::create(dir.get(), "moved", 0400);
  REQUIRE(f.ok());
  {
    AtomicFile owner(std::move(*f));
    REQUIRE(owner.write_all("v").ok());
    REQUIRE(owner.commit().ok());
  }
  CHECK(cs::test::read_text(tmp / "moved") == "v");
}

TEST_CASE("the temporary file is opened with O_CREAT|O_EXCL|O_NOFOLLOW") {
  TempDir tmp;
  Fd dir = open_dir(tmp.path());
  g_openat_flags.clear();
  g_spy_openat = true;
  auto f = AtomicFile::create(dir.get(), "spied", 0400);
  g_spy_openat = false;
  REQUIRE(f.ok());
  REQUIRE(g_openat_flags.size() == 1);
  const int flags = g_openat_flags[0];
  CHECK((flags & O_CREAT) != 0);
  CHECK((flags & O_EXCL) != 0);
  CHECK((flags & O_NOFOLLOW) != 0);
  CHECK((flags & O_CLOEXEC) != 0);
  CHECK((flags & O_TRUNC) == 0);
}

TEST_CASE("two files for the same name get different temporary names") {
  TempDir tmp;
  Fd dir = open_dir(tmp.path());
  auto a = AtomicFile::create(dir.get(), "same", 0400);
  auto b = AtomicFile::create(dir.get(), "same", 0400);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const std::string listing = cs::test::list_dir(tmp.path());
  CHECK(std::count(listing.begin(), listing.end(), ' ') == 1);
}

TEST_CASE("commit refuses to replace a symlink and leaves its target alone") {
  TempDir tmp;
  cs::test::write_text(tmp / "target", "original");
  REQUIRE(::symlink((tmp / "target").c_str(), (tmp / "link").c_str()) == 0);
  Fd dir = open_dir(tmp.path());
  {
    auto f = AtomicFile::create(dir.get(), "link", 0400);
    REQUIRE(f.ok());
    REQUIRE(f->write_all("attacker-chosen").ok());
    auto s = f->commit();
    REQUIRE_FALSE(s.ok());
    CHECK_CONTAINS(s.error(), "symlink");
  }
  CHECK(cs::test::read_text(tmp / "target") == "original");
  struct stat st {};
  REQUIRE(::lstat((tmp / "link").c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  CHECK(cs::test::list_dir(tmp.path()) == "link target"); // the temp file is gone
}

TEST_CASE("commit refuses to replace a directory") {
  TempDir tmp;
  REQUIRE(::mkdir((tmp / "d").c_str(), 0700) == 0);
  Fd dir = open_dir(tmp.path());
  auto f = AtomicFile::create(dir.get(), "d", 0400);
  REQUIRE(f.ok());
  REQUIRE(f->write_all("x").ok());
  auto s = f->commit();
  REQUIRE_FALSE(s.ok());
  CHECK_CONTAINS(s.error(), "directory");
}

TEST_CASE("commit replaces an existing regular file atomically") {
  // A restarted container finds the files of its previous run in place.
  TempDir tmp;
  cs::test::write_text(tmp / "f", "old");
  Fd dir = open_dir(tmp.path());
  auto f = AtomicFile::create(dir.get(), "f", 0400);
  REQUIRE(f.ok());
  REQUIRE(f->write_all("new").ok());
  REQUIRE(f->commit().ok());
  CHECK(cs::test::read_text(tmp / "f") == "new");
}

TEST_CASE("remove_committed takes a committed file away again") {
  TempDir tmp;
  Fd dir = open_dir(tmp.path());
  auto f = AtomicFile::create(dir.get(), "gone", 0400);
  REQUIRE(f.ok());
  REQUIRE(f->write_all("x").ok());
  REQUIRE(f->commit().ok());
  CHECK(cs::test::exists_nofollow(tmp / "gone"));
  f->remove_committed();
  CHECK(cs::test::list_dir(tmp.path()) == "");
}

TEST_CASE("remove_committed does nothing to an uncommitted file's final name") {
  TempDir tmp;
  cs::test::write_text(tmp / "other", "keep me");
  Fd dir = open_dir(tmp.path());
  {
    auto f = AtomicFile::create(dir.get(), "other", 0400);
    REQUIRE(f.ok());
    f->remove_committed();
  }
  CHECK(cs::test::read_text(tmp / "other") == "keep me");
}

TEST_CASE("create fails cleanly in a directory that does not accept files") {
  TempDir tmp;
  Fd dir = open_dir(tmp.path());
  REQUIRE(::rmdir(tmp.path().c_str()) == 0); // the fd now names a deleted directory
  auto f = AtomicFile::create(dir.get(), "x", 0400);
  CHECK_FALSE(f.ok());
  CHECK_CONTAINS(f.error(), "cannot create x");
  REQUIRE(::mkdir(tmp.path().c_str(), 0700) == 0); // for TempDir's cleanup
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("util::open_parent_dir");

TEST_CASE("missing intermediate directories are created 0700 and reported parents first") {
  TempDir tmp;
  Fd root = open_dir(tmp.path());
  std::vector<std::string> created;
  auto parent = cs::util::open_parent_dir(root.get(), segs({"a", "b", "file"}), &created);
  REQUIRE_MESSAGE(parent.ok(), parent.error());
  CHECK(created == segs({"a", "a/b"}));
  CHECK(mode_of(tmp / "a") == 0700);
  CHECK(mode_of(tmp / "a/b") == 0700);
  CHECK_FALSE(cs::test::exists_nofollow(tmp / "a/b/file"));
  // The returned fd is the parent: a file created through it lands in a/b.
  auto f = AtomicFile::create(parent->get(), "file", 0400);
  REQUIRE(f.ok());
  REQUIRE(f->write_all("v").ok());
  REQUIRE(f->commit().ok());
  CHECK(cs::test::read_text(tmp / "a/b/file") == "v");
}

TEST_CASE("existing directories are used and not reported as created") {
  TempDir tmp;
  REQUIRE(::mkdir((tmp / "a").c_str(), 0700) == 0);
  Fd root = open_dir(tmp.path());
  std::vector<std::string> created;
  auto parent = cs::util::open_parent_dir(root.get(), segs({"a", "b", "f"}), &created);
  REQUIRE(parent.ok());
  CHECK(created == segs({"a/b"}));
}

TEST_CASE("a single segment opens the root itself") {
  TempDir tmp;
  Fd root = open_dir(tmp.path());
  std::vector<std::string> created;
  auto parent = cs::util::open_parent_dir(root.get(), segs({"f"}), &created);
  REQUIRE(parent.ok());
  CHECK(created.empty());
  CHECK(parent->get() != root.get());
}

TEST_CASE("a symlinked directory on the way is refused") {
  TempDir tmp;
  TempDir elsewhere;
  REQUIRE(::symlink(elsewhere.path().c_str(), (tmp / "link").c_str()) == 0);
  Fd root = open_dir(tmp.path());
  std::vector<std::string> created;
  auto parent = cs::util::open_parent_dir(root.get(), segs({"link", "sub", "f"}), &created);
  REQUIRE_FALSE(parent.ok());
  CHECK_CONTAINS(parent.error(), "symlink");
  CHECK(cs::test::list_dir(elsewhere.path()) == "");
}

TEST_CASE("a symlink deeper down is refused too") {
  TempDir tmp;
  TempDir elsewhere;
  REQUIRE(::mkdir((tmp / "a").c_str(), 0700) == 0);
  REQUIRE(::symlink(elsewhere.path().c_str(), (tmp / "a/link").c_str()) == 0);
  Fd root = open_dir(tmp.path());
  auto parent = cs::util::open_parent_dir(root.get(), segs({"a", "link", "f"}), nullptr);
  REQUIRE_FALSE(parent.ok());
  CHECK_CONTAINS(parent.error(), "a/link");
}

TEST_CASE("a regular file where a directory should be is refused") {
  TempDir tmp;
  cs::test::write_text(tmp / "file", "");
  Fd root = open_dir(tmp.path());
  auto parent = cs::util::open_parent_dir(root.get(), segs({"file", "x"}), nullptr);
  REQUIRE_FALSE(parent.ok());
  CHECK_CONTAINS(parent.error(), "not a directory");
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("util::open_private_dir");

TEST_CASE("a missing directory is created with mode 0700") {
  TempDir tmp;
  auto fd = cs::util::open_private_dir(tmp / "new", true);
  REQUIRE_MESSAGE(fd.ok(), fd.error());
  CHECK(mode_of(tmp / "new") == 0700);
}

TEST_CASE("a missing directory is an error without create") {
  TempDir tmp;
  auto fd = cs::util::open_private_dir(tmp / "missing", false);
  REQUIRE_FALSE(fd.ok());
  CHECK_FALSE(cs::test::exists_nofollow(tmp / "missing"));
}

TEST_CASE("an existing private directory is accepted") {
  TempDir tmp;
  REQUIRE(::mkdir((tmp / "d").c_str(), 0700) == 0);
  REQUIRE(::chmod((tmp / "d").c_str(), 0750) == 0);
  CHECK(cs::util::open_private_dir(tmp / "d", false).ok());
}

TEST_CASE("a symlink to a directory is refused") {
  TempDir tmp;
  REQUIRE(::mkdir((tmp / "real").c_str(), 0700) == 0);
  REQUIRE(::symlink((tmp / "real").c_str(), (tmp / "link").c_str()) == 0);
  auto fd = cs::util::open_private_dir(tmp / "link", true);
  REQUIRE_FALSE(fd.ok());
  CHECK_CONTAINS(fd.error(), "symlink");
}

TEST_CASE("a directory writable by group or others is refused") {
  TempDir tmp;
  for (unsigned mode : {0770u, 0702u, 0777u, 01777u}) {
    CAPTURE(mode);
    REQUIRE(::mkdir((tmp / "d").c_str(), 0700) == 0);
    REQUIRE(::chmod((tmp / "d").c_str(), mode) == 0);
    auto fd = cs::util::open_private_dir(tmp / "d", true);
    REQUIRE_FALSE(fd.ok());
    CHECK_CONTAINS(fd.error(), "writable by group or others");
    REQUIRE(::rmdir((tmp / "d").c_str()) == 0);
  }
}

TEST_CASE("a directory owned by another user is refused") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root to chown");
    return;
  }
  TempDir tmp;
  REQUIRE(::mkdir((tmp / "d").c_str(), 0700) == 0);
  REQUIRE(::chown((tmp / "d").c_str(), 4242, 4242) == 0);
  auto fd = cs::util::open_private_dir(tmp / "d", false);
  REQUIRE_FALSE(fd.ok());
  CHECK_CONTAINS(fd.error(), "owned by uid 4242");
}

TEST_CASE("a regular file is not a directory") {
  TempDir tmp;
  cs::test::write_text(tmp / "f", "");
  CHECK_FALSE(cs::util::open_private_dir(tmp / "f", true).ok());
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("util::is_memory_fs");

TEST_CASE("/dev/shm is memory-backed") {
  Fd fd = open_dir("/dev/shm");
  auto r = cs::util::is_memory_fs(fd.get());
  REQUIRE(r.ok());
  CHECK(*r == on_memory_fs("/dev/shm"));
  CHECK(*r);
}

TEST_CASE("a disk directory is not memory-backed") {
  TempDir tmp;
  if (on_memory_fs(tmp.path())) {
    MESSAGE("skipped: /tmp is on tmpfs here");
    return;
  }
  Fd fd = open_dir(tmp.path());
  auto r = cs::util::is_memory_fs(fd.get());
  REQUIRE(r.ok());
  CHECK_FALSE(*r);
}

TEST_CASE("a bad descriptor is an error, not an answer") {
  CHECK_FALSE(cs::util::is_memory_fs(-1).ok());
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("util::read_file");

TEST_CASE("read_file returns the whole content") {
  TempDir tmp;
  std::string big(100000, 'x');
  big += "end";
  cs::test::write_text(tmp / "f", big);
  auto r = cs::util::read_file(tmp / "f");
  REQUIRE(r.ok());
  CHECK(*r == big);
}

TEST_CASE("read_file names a missing file") {
  auto r = cs::util::read_file("/nonexistent/cs-unit");
  REQUIRE_FALSE(r.ok());
  CHECK_CONTAINS(r.error(), "/nonexistent/cs-unit");
}

TEST_CASE("read_secret_file drops one trailing newline and nothing else") {
  TempDir tmp;
  cs::test::write_text(tmp / "token", "s.abc\n");
  auto r = cs::util::read_secret_file(tmp / "token");
  REQUIRE(r.ok());
  CHECK(std::string(r->data(), r->size()) == "s.abc");
  // The rest is kept for the caller to refuse (util::credential_problem), never repaired.
  cs::test::write_text(tmp / "token", "  s.abc def\t \r\n\n");
  r = cs::util::read_secret_file(tmp / "token");
  REQUIRE(r.ok());
  CHECK(std::string(r->data(), r->size()) == "  s.abc def\t \r\n");
}

TEST_CASE("read_secret_file of a file of one newline is empty") {
  TempDir tmp;
  cs::test::write_text(tmp / "token", "\n");
  auto r = cs::util::read_secret_file(tmp / "token");
  REQUIRE(r.ok());
  CHECK(r->empty());
}

TEST_SUITE_END();
