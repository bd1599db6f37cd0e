#include "crunchsecrets/core/deliver.hpp"
#include "crunchsecrets/core/error.hpp"
#include "resolve_fixture.hpp"
#include "testutil.hpp"

#include <csignal>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <linux/magic.h>
#include <sys/file.h>
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

namespace {

// The run directories beside the configured name `name` in `parent`.
std::vector<std::string> run_dirs(const std::string& parent, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(parent)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("." + name + ".run-", 0) == 0) {
      out.push_back(n);
    }
  }
  return out;
}

std::string link_target(const std::string& path) {
  return std::filesystem::read_symlink(path).string();
}

const char* k_one_file_manifest = R"(version: 1
secrets:
  db:
    path: kv/db
    key: password
files:
  - path: only
    secret: db
)";

} // namespace

TEST_CASE("every file is written with its content and mode into a new private run directory") {
  TempDir shm("/dev/shm");
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  const std::string dir = shm / "secrets";
  {
    FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(dir));
    CHECK(d.count() == 3);
    CHECK(d.directory() == dir);
    d.keep();
  }
  // The configured name is a symlink to this run's directory beside it.
  const auto runs = run_dirs(shm.path(), "secrets");
  REQUIRE(runs.size() == 1);
  CHECK(std::filesystem::is_symlink(dir));
  CHECK(link_target(dir) == runs[0]);
  CHECK(list_dir(shm.path()) == runs[0] + " secrets");
  CHECK(mode_of(shm / runs[0]) == 0700);
  CHECK(list_dir(dir) == "app.conf aws db");
  CHECK(read_text(dir + "/db/password") == "CANARY-d311-pw");
  CHECK(mode_of(dir + "/db/password") == 0400);
  CHECK(mode_of(dir + "/db") == 0700);
  CHECK(read_text(dir + "/aws/credentials") ==
        "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n");
  CHECK(read_text(dir + "/app.conf") == "password = CANARY-d311-pw\n");
  CHECK(mode_of(dir + "/app.conf") == 0440);
}

TEST_CASE("without keep() the destructor removes the files, the run directory and the symlink") {
  TempDir shm("/dev/shm");
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  const std::string dir = shm / "secrets";
  {
    FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(dir));
    CHECK(exists_nofollow(dir + "/db/password"));
  }
  CHECK_FALSE(exists_nofollow(dir));
  CHECK(list_dir(shm.path()).empty());
}

TEST_CASE("a directory holding files crunch-secrets did not put there is refused and kept") {
  TempDir shm("/dev/shm");
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  cs::test::write_text(shm / "theirs", "x");
  const Error e = delivery_error(fx, dir_options(shm.path()));
  CHECK(code_of(e) == 73);
  CHECK_CONTAINS(e.what(), "did not put there");
  CHECK(list_dir(shm.path()) == "theirs");
}

TEST_CASE("an existing empty private directory is replaced by the symlink") {
  TempDir shm("/dev/shm");
  const std::string dir = shm / "secrets";
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(dir));
  d.keep();
  CHECK(std::filesystem::is_symlink(dir));
  CHECK(read_text(dir + "/db/password") == "CANARY-d311-pw");
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
  CHECK(list_dir(shm.path()).empty());
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
  CHECK(list_dir(shm.path()).empty());
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
  CHECK_FALSE(exists_nofollow(dir));
  CHECK(list_dir(disk.path()).empty());

  FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(dir, true));
  CHECK(d.count() == 3);
  CHECK(read_text(dir + "/db/password") == "CANARY-d311-pw");
}

TEST_CASE("a symlink that crunch-secrets did not make is refused at the configured name") {
  TempDir shm("/dev/shm");
  REQUIRE(::mkdir((shm / "real").c_str(), 0700) == 0);
  REQUIRE(::symlink((shm / "real").c_str(), (shm / "link").c_str()) == 0);
  // Even one named like a run directory, if it is a path elsewhere.
  REQUIRE(::symlink((shm / ".x.run-1").c_str(), (shm / "x").c_str()) == 0);
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  for (const char* name : {"link", "x"}) {
    CAPTURE(name);
    const Error e = delivery_error(fx, dir_options(shm / name));
    CHECK(code_of(e) == 73);
    CHECK_CONTAINS(e.what(), "symlink that crunch-secrets did not make");
  }
  CHECK(list_dir(shm / "real").empty());
  CHECK(list_dir(shm.path()) == "link real x");
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

TEST_CASE("a parent that others may write in without the sticky bit is refused") {
  TempDir shm("/dev/shm");
  const std::string shared = shm / "open";
  REQUIRE(::mkdir(shared.c_str(), 0700) == 0);
  REQUIRE(::chmod(shared.c_str(), 0777) == 0);
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  const Error e = delivery_error(fx, dir_options(shared + "/secrets"));
  CHECK(code_of(e) == 73);
  CHECK_CONTAINS(e.what(), "not sticky");
  CHECK(list_dir(shared).empty());
  // Sticky, as /dev/shm is, is fine.
  REQUIRE(::chmod(shared.c_str(), 01777) == 0);
  FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(shared + "/secrets"));
  CHECK(d.count() == 3);
}

TEST_CASE("a later run replaces an earlier run's files: only its own are visible") {
  TempDir shm("/dev/shm");
  const std::string dir = shm / "secrets";
  const ResolveFixture fx(k_files_manifest, {}, files_data());
  {
    FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(dir));
    d.keep();
  }
  const auto first = run_dirs(shm.path(), "secrets");
  const ResolveFixture one(k_one_file_manifest, {}, files_data());
  FileDelivery again = FileDelivery::write(one.plan(), one.resolver(), dir_options(dir));
  again.keep();
  CHECK(list_dir(dir) == "only");
  CHECK(read_text(dir + "/only") == "CANARY-d311-pw");
  const auto second = run_dirs(shm.path(), "secrets");
  REQUIRE(second.size() == 1); // the earlier run's directory is gone
  CHECK(second != first);
}

TEST_CASE("a failed delivery leaves the configured name as it was and no run directory") {
  TempDir shm("/dev/shm");
  const std::string dir = shm / "secrets";
  const ResolveFixture fx(k_one_file_manifest, {}, files_data());
  {
    FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(dir));
    d.keep();
  }
  const auto before = run_dirs(shm.path(), "secrets");
  const ResolveFixture bad(R"(version: 1
secrets:
  db:
    path: kv/db
    key: password
files:
  - path: d
    secret: db
  - path: d/x
    secret: db
)",
                           {}, files_data());
  CHECK(code_of(delivery_error(bad, dir_options(dir))) == 73);
  CHECK(run_dirs(shm.path(), "secrets") == before);
  CHECK(list_dir(dir) == "only");
}

TEST_CASE("retire_secrets_dir removes an earlier run's files and stale run directories") {
  TempDir shm("/dev/shm");
  const std::string dir = shm / "secrets";
  const ResolveFixture fx(k_one_file_manifest, {}, files_data());
  {
    FileDelivery d = FileDelivery::write(fx.plan(), fx.resolver(), dir_options(dir));
    d.keep();
  }
  // What a run killed while writing leaves: a run directory with a temporary file.
  REQUIRE(::mkdir((shm / ".secrets.run-dead").c_str(), 0700) == 0);
  cs::test::write_text(shm / ".secrets.run-dead/.only.tmp-1", "CANARY-d311");
  // Others' things beside it stay.
  cs::test::write_text(shm / "unrelated", "x");
  retire_secrets_dir(dir);
  CHECK(list_dir(shm.path()) == "unrelated");
}

TEST_CASE("a run directory another run holds locked is left alone") {
  TempDir shm("/dev/shm");
  const std::string live = shm / ".secrets.run-live";
  REQUIRE(::mkdir(live.c_str(), 0700) == 0);
  cs::util::Fd fd(::open(live.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(::flock(fd.get(), LOCK_EX) == 0);
  retire_secrets_dir(shm / "secrets");
  CHECK(exists_nofollow(live));
  fd = cs::util::Fd();
  retire_secrets_dir(shm / "secrets");
  CHECK_FALSE(exists_nofollow(live));
}

TEST_CASE("retire_secrets_dir leaves a directory crunch-secrets did not make") {
  TempDir shm("/dev/shm");
  const std::string dir = shm / "secrets";
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  cs::test::write_text(dir + "/theirs", "x");
  retire_secrets_dir(dir);
  CHECK(list_dir(dir) == "theirs");
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("core::BlockedSignals");

TEST_CASE("a blocked signal waits, is reported, and an ignored one is not") {
  const sigset_t before = [] {
    sigset_t s;
    ::sigprocmask(SIG_BLOCK, nullptr, &s);
    return s;
  }();
  struct sigaction old_int {};
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ignore, &old_int);
  {
    BlockedSignals blocked;
    CHECK(blocked.pending() == 0);
    ::kill(::getpid(), SIGINT);
    CHECK(blocked.pending() == 0); // ignored (nohup-style): does not interrupt
    ::kill(::getpid(), SIGHUP);
    CHECK(blocked.pending() == SIGHUP);
    // Take both back so that restoring the mask does not deliver them.
    sigset_t both;
    sigemptyset(&both);
    sigaddset(&both, SIGHUP);
    sigaddset(&both, SIGINT);
    for (int i = 0; i < 2; ++i) {
      const timespec zero{0, 0};
      ::sigtimedwait(&both, nullptr, &zero);
    }
    CHECK(blocked.pending() == 0);
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  sigset_t after;
  ::sigprocmask(SIG_BLOCK, nullptr, &after);
  CHECK(sigismember(&after, SIGTERM) == sigismember(&before, SIGTERM));
  CHECK(sigismember(&after, SIGHUP) == sigismember(&before, SIGHUP));
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

TEST_CASE("a manifest's CRUNCH_SECRETS_DIR does not make a second entry when files are written") {
  const char* manifest = "version: 1\nenv:\n  CRUNCH_SECRETS_DIR: /elsewhere\n  Y: y\n";
  const Strings inherited{"X=1"};
  const ResolveFixture fx(manifest, inherited, {});
  ChildEnvOptions o;
  o.secrets_dir = "/dev/shm/app";
  CHECK(strings(build_child_env(inherited, fx.plan(), &fx.resolver(), o)) ==
        Strings{"X=1", "Y=y", "CRUNCH_SECRETS_DIR=/dev/shm/app"});
  // Without files the manifest's value is the only one.
  CHECK(strings(build_child_env(inherited, fx.plan(), &fx.resolver(), ChildEnvOptions{})) ==
        Strings{"X=1", "CRUNCH_SECRETS_DIR=/elsewhere", "Y=y"});
}

TEST_CASE("a NUL byte in an environment or argument value is refused, not cut short") {
  const Strings inherited{"A=vault:kv/nul#v"};
  const ResolveFixture fx("", inherited, {{"kv/nul", {R"({"v":"CANARY-d311\u0000tail"})"}}});
  auto e =
      error_of([&] { build_child_env(inherited, fx.plan(), &fx.resolver(), ChildEnvOptions{}); });
  REQUIRE(e);
  CHECK(code_of(*e) == 65);
  CHECK_CONTAINS(e->what(), "environment variable A");
  CHECK_CONTAINS(e->what(), "NUL");
  CHECK_NOT_CONTAINS(e->what(), k_canary);

  const ResolveFixture fa("", {}, {{"kv/nul", {R"({"v":"a\u0000b"})"}}},
                          {"cmd", "x${vault:kv/nul#v}y"}, true);
  auto ea = error_of([&] { build_child_argv(fa.plan(), &fa.resolver()); });
  REQUIRE(ea);
  CHECK(code_of(*ea) == 65);
  CHECK_CONTAINS(ea->what(), "argument 1");
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
