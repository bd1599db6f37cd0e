#include "crunchsecrets/util/fds.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <initializer_list>
#include <unistd.h>

namespace {

bool cloexec(int fd) {
  return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

} // namespace

TEST_SUITE_BEGIN("util::fds");

TEST_CASE("descriptors open at the start stay inheritable, later ones do not") {
  int passed[2];
  REQUIRE(::pipe(passed) == 0); // without O_CLOEXEC, as a launcher's pipe would be
  cs::util::record_inherited_fds();
  int mine[2];
  REQUIRE(::pipe(mine) == 0); // opened "by crunch-secrets", also without O_CLOEXEC
  REQUIRE(cs::util::close_others_on_exec());
  CHECK_FALSE(cloexec(passed[0]));
  CHECK_FALSE(cloexec(passed[1]));
  CHECK(cloexec(mine[0]));
  CHECK(cloexec(mine[1]));
  for (int fd : {passed[0], passed[1], mine[0], mine[1]}) {
    ::close(fd);
  }
  cs::util::record_inherited_fds();
}

TEST_CASE("a recorded number that was closed and reused is not kept") {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  cs::util::record_inherited_fds();
  const int number = p[1];
  ::close(number);
  const int reused = ::open("/dev/null", O_RDONLY); // the lowest free number: `number`
  REQUIRE(reused == number);
  REQUIRE(cs::util::close_others_on_exec());
  CHECK(cloexec(reused));
  CHECK_FALSE(cloexec(p[0]));
  ::close(reused);
  ::close(p[0]);
  cs::util::record_inherited_fds();
}

TEST_SUITE_END();
