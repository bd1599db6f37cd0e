#include "crunchsecrets/core/deliver.hpp"
#include "crunchsecrets/core/error.hpp"
#include "resolve_fixture.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

using namespace cs::core;
using cs::test::read_text;
using cs::test::ResolveFixture;
using cs::test::TempDir;

namespace {

const char* k_manifest = R"(version: 1
secrets:
  db:
    path: kv/db
  other:
    path: kv/other
files:
  - path: sub/db.json
    secret: db
    format: json
    mode: "0440"
  - path: other
    secret: other
    key: v
)";

SecretsDirOptions in(const TempDir& d) {
  SecretsDirOptions o;
  o.path = d.path() + "/secrets";
  o.allow_non_tmpfs = true;
  return o;
}

} // namespace

TEST_SUITE_BEGIN("core::FileDelivery rewrite");

TEST_CASE("rewrite replaces only the named files, with their mode, by rename") {
  TempDir d("/dev/shm");
  ResolveFixture before(k_manifest, {},
                        {{"kv/db", {R"({"user":"u1","password":"CANARY-rw-1"})"}},
                         {"kv/other", {R"({"v":"first"})"}}});
  FileDelivery files = FileDelivery::write(before.plan(), before.resolver(), in(d));
  const std::string db = d.path() + "/secrets/sub/db.json";
  struct stat st1 {};
  REQUIRE(::stat(db.c_str(), &st1) == 0);
  ResolveFixture after(k_manifest, {},
                       {{"kv/db", {R"({"user":"u2","password":"CANARY-rw-2"})"}},
                        {"kv/other", {R"({"v":"second"})"}}});
  files.rewrite(after.plan(), {0}, after.resolver());
  CHECK(read_text(db) == R"({"password":"CANARY-rw-2","user":"u2"})");
  CHECK(read_text(d.path() + "/secrets/other") == "first");
  struct stat st2 {};
  REQUIRE(::stat(db.c_str(), &st2) == 0);
  CHECK((st2.st_mode & 07777) == 0440);
  CHECK(st2.st_ino != st1.st_ino); // a new file renamed over the old one, not rewritten in place
  files.remove_all();
  CHECK(::access(db.c_str(), F_OK) != 0);
}

TEST_CASE("a file that cannot be rendered leaves every old file in place") {
  TempDir d("/dev/shm");
  ResolveFixture before(k_manifest, {},
                        {{"kv/db", {R"({"user":"u1"})"}}, {"kv/other", {R"({"v":"first"})"}}});
  FileDelivery files = FileDelivery::write(before.plan(), before.resolver(), in(d));
  ResolveFixture after(k_manifest, {},
                       {{"kv/db", {R"({"user":"u2"})"}}, {"kv/other", {R"({"w":"no v"})"}}});
  const auto e = cs::test::error_of([&] { files.rewrite(after.plan(), {0, 1}, after.resolver()); });
  REQUIRE(e.has_value());
  CHECK(read_text(d.path() + "/secrets/sub/db.json") == R"({"user":"u1"})");
  CHECK(read_text(d.path() + "/secrets/other") == "first");
}

TEST_SUITE_END();
