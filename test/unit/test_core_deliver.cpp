#include "crunchsecrets/core/deliver.hpp"
#include "crunchsecrets/core/error.hpp"
#include "resolve_fixture.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

using namespace cs::core;
using cs::test::code_of;
using cs::test::error_of;
using cs::test::exists_nofollow;
using cs::test::list_dir;
using cs::test::read_text;
using cs::test::ResolveFixture;
using cs::test::TempDir;

namespace {

constexpr const char* k_canary = "CANARY-d311";

const char* k_files_manifest = R"(version: 1
secrets:
  db:
    path: kv/db
    key: password
  aws:
    path: kv/aws
files:
  - path: db/password
    secret: db
  - path: aws/credentials
    secret: aws
    format: aws-credentials
  - path: app.conf
    mode: "0440"
    template: "password = ${secret:db}\n"
)";

std::map<std::string, cs::test::Canned> files_data() {
  return {{"kv/db", {R"({"password":"CANARY-d311-pw"})"}},
          {"kv/aws", {R"({"access_key":"AK","secret_key":"SK"})"}}};
}

SecretsDirOptions dir_options(std::string path, bool allow_non_tmpfs = false) {
  SecretsDirOptions o;
  o.path = std::move(path);
  o.allow_non_tmpfs = allow_non_tmpfs;
  return o;
}

Error delivery_error(const ResolveFixture& fx, const SecretsDirOptions& options) {
  auto e = error_of([&] { FileDelivery::write(fx.plan(), fx.resolver(), options); });
  REQUIRE_MESSAGE(e.has_value(), "the files were written");
  CHECK_NOT_CONTAINS(e->what(), k_canary);
  return *e;
}

std::vector<std::string> strings(const std::vector<cs::util::Secret>& block) {
  std::vector<std::string> out;
  for (const auto& s : block) {
    out.emplace_back(s.reveal());
  }
  return out;
}

using Strings = std::vector<std::string>;
using cs::test::mode_of;
using cs::test::on_memory_fs;

} // namespace

TEST_SUITE_BEGIN("core::FileDelivery");

TEST_CASE("every file is written with its content and mode into a new private directory") {
  TempDir shm("/dev/shm");
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  const std::string dir = shm / "secrets";
  {
    FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(dir));
    CHECK(d.count() == 3);
    CHECK(d.directory() == dir);
    d.keep();
  }
  CHECK(mode_of(dir) == 0700);
  CHECK(list_dir(dir) == "app.conf aws db");
  CHECK(read_text(dir + "/db/password") == "CANARY-d311-pw");
  CHECK(mode_of(dir + "/db/password") == 0400);
  CHECK(mode_of(dir + "/db") == 0700);
  CHECK(read_text(dir + "/aws/credentials") ==
        "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n");
  CHECK(read_text(dir + "/app.conf") == "password = CANARY-d311-pw\n");
  CHECK(mode_of(dir + "/app.conf") == 0440);
}

TEST_CASE("without keep() the destructor removes the files and the directories it made") {
  TempDir shm("/dev/shm");
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  const std::string dir = shm / "secrets";
  {
    FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(dir));
    CHECK(exists_nofollow(dir + "/db/password"));
  }
  CHECK_FALSE(exists_nofollow(dir));
}

TEST_CASE("remove_all leaves what others put in an existing directory") {
  TempDir shm("/dev/shm");
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  cs::test::write_text(shm / "theirs", "x");
  FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(shm.path()));
  CHECK(list_dir(shm.path()) == "app.conf aws db theirs");
  d.remove_all();
  CHECK(list_dir(shm.path()) == "theirs");
}

TEST_CASE("a plan without files touches nothing") {
  TempDir shm("/dev/shm");
  const ResolveFixture fx("version: 1\n", {}, {});
  FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(shm / "never"));
  CHECK(d.count() == 0);
  CHECK_FALSE(exists_nofollow(shm / "never"));
}

TEST_CASE("a file that cannot be rendered fails before anything is written") {
  TempDir shm("/dev/shm");
  const ResolveFixture fx(R"(version: 1
secrets:
  db:
    path: kv/db
files:
  - path: good
    secret: db
    key: password
  - path: bad
    secret: db
    key: missing
)",
                          {}, {{"kv/db", {R"({"password":"CANARY-d311"})"}}});
  const Error e = delivery_error(fx, dir_options(shm / "secrets"));
  CHECK(code_of(e) == 79);
  CHECK_CONTAINS(e.what(), "no key 'missing'");
  CHECK_FALSE(exists_nofollow(shm / "secrets"));
}

TEST_CASE("a failure while committing removes every file and directory already made") {
  // "d/one" is written as a temporary file, then "d/one/two" makes "one" a directory, so the
  // commit of "d/one" fails after everything was written.
  TempDir shm("/dev/shm");
  const ResolveFixture fx(R"(version: 1
secrets:
  db:
    path: kv/db
    key: password
files:
  - path: first
    secret: db
  - path: d/one
    secret: db
  - path: d/one/two
    secret: db
)",
                          {}, {{"kv/db", {R"({"password":"CANARY-d311"})"}}});
  const std::string dir = shm / "secrets";
  const Error e = delivery_error(fx, dir_options(dir));
  CHECK(code_of(e) == 73);
  CHECK_CONTAINS(e.what(), "file d/one (m.yml:");
  CHECK_CONTAINS(e.what(), "is a directory");
  CHECK_FALSE(exists_nofollow(dir));
}

TEST_CASE("a failed commit in an existing directory undoes the files committed before it") {
  TempDir shm("/dev/shm");
  REQUIRE(::mkdir((shm / "z").c_str(), 0700) == 0);
  const ResolveFixture fx(R"(version: 1
secrets:
  db:
    path: kv/db
    key: password
files:
  - path: a
    secret: db
  - path: z
    secret: db
)",
                          {}, {{"kv/db", {R"({"password":"CANARY-d311"})"}}});
  const Error e = delivery_error(fx, dir_options(shm.path()));
  CHECK(code_of(e) == 73);
  CHECK_CONTAINS(e.what(), "file z");
  CHECK(list_dir(shm.path()) == "z");
}

TEST_CASE("a directory on disk is refused unless --allow-non-tmpfs") {
  TempDir disk("/tmp");
  if (on_memory_fs(disk.path())) {
    MESSAGE("skipped: /tmp is memory-backed here");
    return;
  }
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  const std::string dir = disk / "secrets";
  const Error e = delivery_error(fx, dir_options(dir));
  CHECK(code_of(e) == 73);
  CHECK_CONTAINS(e.what(), "not on tmpfs or ramfs");
  CHECK_CONTAINS(e.what(), "--allow-non-tmpfs");
  CHECK_FALSE(exists_nofollow(dir)); // the directory it created is gone again
  CHECK(list_dir(disk.path()).empty());

  FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(dir, true));
  CHECK(d.count() == 3);
  CHECK(read_text(dir + "/db/password") == "CANARY-d311-pw");
}

TEST_CASE("a symlinked secrets directory is refused") {
  TempDir shm("/dev/shm");
  REQUIRE(::mkdir((shm / "real").c_str(), 0700) == 0);
  REQUIRE(::symlink((shm / "real").c_str(), (shm / "link").c_str()) == 0);
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  const Error e = delivery_error(fx, dir_options(shm / "link"));
  CHECK(code_of(e) == 73);
  CHECK_CONTAINS(e.what(), "symlink");
  CHECK(list_dir(shm / "real").empty());
}

TEST_CASE("a group-writable secrets directory is refused") {
  TempDir shm("/dev/shm");
  REQUIRE(::chmod(shm.path().c_str(), 0770) == 0);
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  const Error e = delivery_error(fx, dir_options(shm.path()));
  CHECK(code_of(e) == 73);
  CHECK_CONTAINS(e.what(), "writable by group or others");
  CHECK(list_dir(shm.path()).empty());
}

TEST_CASE("a file path through a symlink inside the directory is refused and nothing leaks out") {
  TempDir shm("/dev/shm");
  TempDir elsewhere("/dev/shm");
  REQUIRE(::symlink(elsewhere.path().c_str(), (shm / "db").c_str()) == 0);
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  const Error e = delivery_error(fx, dir_options(shm.path()));
  CHECK(code_of(e) == 73);
  CHECK_CONTAINS(e.what(), "file db/password");
  CHECK_CONTAINS(e.what(), "symlink");
  CHECK(list_dir(elsewhere.path()).empty());
  CHECK(list_dir(shm.path()) == "db"); // only the attacker's link
}

TEST_CASE("a file where the final name is a symlink is refused and the target kept") {
  TempDir shm("/dev/shm");
  TempDir elsewhere("/dev/shm");
  cs::test::write_text(elsewhere / "target", "original");
  REQUIRE(::symlink((elsewhere / "target").c_str(), (shm / "app.conf").c_str()) == 0);
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  const Error e = delivery_error(fx, dir_options(shm.path()));
  CHECK(code_of(e) == 73);
  CHECK_CONTAINS(e.what(), "file app.conf");
  CHECK(read_text(elsewhere / "target") == "original");
  CHECK(list_dir(shm.path()) == "app.conf");
}

TEST_CASE("files of an earlier run are replaced") {
  TempDir shm("/dev/shm");
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  {
    FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(shm.path()));
    d.keep();
  }
  FileDelivery again = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(shm.path()));
  again.keep();
  CHECK(read_text(shm / "db/password") == "CANARY-d311-pw");
  CHECK(list_dir(shm.path()) == "app.conf aws db");
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("core::build_child_env");

TEST_CASE("references in the environment are replaced and other variables kept in order") {
  const ResolveFixture fx("",
                          {"HOME=/root", "A=vault:kv/app#pw", "B=x${vault:kv/app#user}y",
                           "ESC=$${vault:kv/app#pw}", "Z=z"},
                          {{"kv/app", {R"({"pw":"CANARY-d311","user":"u"})"}}});
  const auto env = build_child_env({"HOME=/root", "A=vault:kv/app#pw", "B=x${vault:kv/app#user}y",
                                    "ESC=$${vault:kv/app#pw}", "Z=z"},
                                   fx.plan(), &fx.resolver(), ChildEnvOptions{});
  CHECK(strings(env) ==
        Strings{"HOME=/root", "Z=z", "A=CANARY-d311", "B=xuy", "ESC=${vault:kv/app#pw}"});
}

TEST_CASE("manifest env entries override inherited variables of the same name") {
  const char* manifest = "version: 1\nsecrets:\n  db:\n    path: kv/db\n    key: pw\nenv:\n"
                         "  DB_PASSWORD: ${secret:db}\n  PLAIN: set-by-manifest\n";
  const Strings inherited{"DB_PASSWORD=vault:kv/other#pw", "PLAIN=inherited", "KEEP=1"};
  const ResolveFixture fx(
      manifest, inherited,
      {{"kv/db", {R"({"pw":"from-manifest"})"}}, {"kv/other", {R"({"pw":"from-environment"})"}}});
  const auto env = build_child_env(inherited, fx.plan(), &fx.resolver(), ChildEnvOptions{});
  CHECK(strings(env) == Strings{"KEEP=1", "DB_PASSWORD=from-manifest", "PLAIN=set-by-manifest"});
}

TEST_CASE("auth material is removed; the Arvados token is kept unless scrubbed") {
  const Strings inherited{"VAULT_TOKEN=s.1",
                          "BAO_TOKEN=s.2",
                          "CRUNCH_SECRETS_SECRET_ID=sid",
                          "CRUNCH_SECRETS_WRAPPED_TOKEN=w",
                          "ARVADOS_API_TOKEN=v2/x/y",
                          "VAULT_ADDR=http://v",
                          "CRUNCH_SECRETS_ROLE_ID=r"};
  const ResolveFixture fx("", inherited, {});
  CHECK(strings(build_child_env(inherited, fx.plan(), &fx.resolver(), ChildEnvOptions{})) ==
        Strings{"ARVADOS_API_TOKEN=v2/x/y", "VAULT_ADDR=http://v", "CRUNCH_SECRETS_ROLE_ID=r"});

  ChildEnvOptions scrub;
  scrub.scrub_arvados_token = true;
  CHECK(strings(build_child_env(inherited, fx.plan(), &fx.resolver(), scrub)) ==
        Strings{"VAULT_ADDR=http://v", "CRUNCH_SECRETS_ROLE_ID=r"});

  ChildEnvOptions pass;
  pass.pass_auth_env = true;
  CHECK(strings(build_child_env(inherited, fx.plan(), &fx.resolver(), pass)) == inherited);
}

TEST_CASE("auth_env_names lists the documented variables") {
  CHECK(auth_env_names() == Strings{"VAULT_TOKEN", "BAO_TOKEN", "CRUNCH_SECRETS_SECRET_ID",
                                    "CRUNCH_SECRETS_WRAPPED_TOKEN"});
}

TEST_CASE("CRUNCH_SECRETS_DIR is set, replacing an inherited one, when files were written") {
  const Strings inherited{"CRUNCH_SECRETS_DIR=/old", "X=1"};
  const ResolveFixture fx("", inherited, {});
  ChildEnvOptions o;
  o.secrets_dir = "/dev/shm/app";
  CHECK(strings(build_child_env(inherited, fx.plan(), &fx.resolver(), o)) ==
        Strings{"X=1", "CRUNCH_SECRETS_DIR=/dev/shm/app"});
  CHECK(strings(build_child_env(inherited, fx.plan(), &fx.resolver(), ChildEnvOptions{})) ==
        inherited);
}

TEST_CASE("a missing key in an environment reference names the variable, not the value") {
  const Strings inherited{"A=vault:kv/app#nope"};
  const ResolveFixture fx("", inherited, {{"kv/app", {R"({"pw":"CANARY-d311"})"}}});
  auto e =
      error_of([&] { build_child_env(inherited, fx.plan(), &fx.resolver(), ChildEnvOptions{}); });
  REQUIRE(e);
  CHECK(code_of(*e) == 79);
  CHECK_CONTAINS(e->what(), "environment variable A");
  CHECK_NOT_CONTAINS(e->what(), k_canary);
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("core::build_child_argv");

TEST_CASE("arguments are substituted with --argv-templates") {
  const ResolveFixture fx(
      "", {}, {{"kv/app", {R"({"pw":"p w"})"}}},
      {"cmd", "--password=${vault:kv/app#pw}", "$${vault:kv/app#pw}", "${HOME}"}, true);
  CHECK(strings(build_child_argv(fx.plan(), &fx.resolver())) ==
        Strings{"cmd", "--password=p w", "${vault:kv/app#pw}", "${HOME}"});
}

TEST_CASE("arguments are passed as given without templates") {
  const ResolveFixture fx("", {}, {}, {"sh", "-c", "echo $${vault:x} ${HOME}"});
  CHECK(strings(build_child_argv(fx.plan(), nullptr)) ==
        Strings{"sh", "-c", "echo $${vault:x} ${HOME}"});
}

TEST_SUITE_END();
