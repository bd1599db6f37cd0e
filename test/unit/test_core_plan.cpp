#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/plan.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>

using namespace cs::core;
using cs::test::code_of;
using cs::test::error_of;

namespace {

const char* k_manifest = R"(version: 1
secrets:
  db:
    path: secret/data/app
    key: password
  db_user:
    path: secret/data/app
    key: user
  pinned:
    path: secret/data/app
    version: 2
  unused:
    path: secret/data/unused
env:
  DB_PASSWORD: ${secret:db}
)";

Plan plan_of(std::vector<std::string> environ, const Manifest* m = nullptr,
             std::vector<std::string> argv = {}, bool argv_templates = false) {
  PlanInput in;
  in.manifest = m != nullptr ? std::make_shared<const Manifest>(*m) : nullptr;
  in.environ = std::move(environ);
  in.argv = std::move(argv);
  in.argv_templates = argv_templates;
  return build_plan(in);
}

Error plan_error(std::vector<std::string> environ, const Manifest* m = nullptr,
                 std::vector<std::string> argv = {}, bool argv_templates = false) {
  auto e = error_of([&] { plan_of(environ, m, argv, argv_templates); });
  REQUIRE_MESSAGE(e.has_value(), "the plan was built");
  return *e;
}

std::vector<std::string> fetch_paths(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& f : p.fetches) {
    out.push_back(f.read.version ? f.read.path + "@" + std::to_string(*f.read.version)
                                 : f.read.path);
  }
  return out;
}

std::vector<std::string> env_names(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& e : p.env) {
    out.push_back(e.name);
  }
  return out;
}

using Strings = std::vector<std::string>;

} // namespace

TEST_SUITE_BEGIN("core::Plan");

TEST_CASE("an environment without references plans nothing") {
  const Plan p = plan_of({"HOME=/root", "PATH=/usr/bin", "SHELL_STYLE=${HOME}/x",
                          "EMPTY=", "NOEQUALS", "=weird", "DOLLAR=$vault:x"});
  CHECK(p.env.empty());
  CHECK(p.fetches.empty());
  CHECK(p.manifest == nullptr);
}

TEST_CASE("whole-value and embedded references in the environment become assignments") {
  const Plan p = plan_of({"A=vault:secret/data/app#password", "HOME=/root",
                          "B=postgres://u:${vault:secret/data/app#password}@db/x"});
  CHECK(env_names(p) == Strings{"A", "B"});
  CHECK(p.env[0].origin == "environment");
  REQUIRE(p.env[0].value.segments.size() == 1);
  CHECK(std::get<VaultRef>(*p.env[0].value.segments[0].ref).key == "password");
  CHECK(p.env[1].value.segments.size() == 3);
  CHECK(fetch_paths(p) == Strings{"secret/data/app"});
}

TEST_CASE("the same path and version is fetched once however many references name it") {
  const Plan p = plan_of({"A=vault:secret/data/app#password", "B=vault:secret/data/app#user",
                          "C=${vault:secret/data/app#password}${vault:secret/data/app#host}",
                          "D=vault:secret/data/app#password#3", "E=vault:secret/data/app#user#3",
                          "F=vault:secret/data/other#x"});
  CHECK(fetch_paths(p) == Strings{"secret/data/app", "secret/data/app@3", "secret/data/other"});
  CHECK(p.fetch_for(Ref{VaultRef{"secret/data/app", "zzz", {}}}) == 0);
  CHECK(p.fetch_for(Ref{VaultRef{"secret/data/app", "user", 3}}) == 1);
  CHECK(p.fetch_index("secret/data/other", std::nullopt) == 2);
}

TEST_CASE("a fetch remembers its first user for messages") {
  const Plan p = plan_of({"A=vault:secret/data/app#password#3", "B=vault:secret/data/app#x#3"});
  REQUIRE(p.fetches.size() == 1);
  CHECK_CONTAINS(p.fetches[0].first_user, "vault:secret/data/app#password#3");
  CHECK_CONTAINS(p.fetches[0].first_user, "environment variable A");
  CHECK(p.fetches[0].read.describe == "vault:secret/data/app#password#3 (environment variable A)");
  CHECK(p.fetches[0].read.reference == "vault:secret/data/app#password#3");
  CHECK(p.fetches[0].read.version == std::optional<std::uint64_t>(3));
}

TEST_CASE("a versioned vault reference requires KV v2") {
  const Plan p = plan_of({"A=vault:p#k#1", "B=vault:q#k"});
  CHECK(p.fetches[0].engine == Engine::kv2);
  CHECK(p.fetches[1].engine == Engine::automatic);
}

TEST_CASE("escaped references are rewritten without a fetch") {
  const Plan p = plan_of({"LITERAL=echo $${vault:p#k}", "SECRETLIT=$${secret:x}"});
  CHECK(env_names(p) == Strings{"LITERAL", "SECRETLIT"});
  CHECK(p.fetches.empty());
  CHECK(p.env[0].value.segments[0].literal == "echo ${vault:p#k}");
}

TEST_CASE("a malformed reference in the environment names the variable") {
  Error e = plan_error({"OK=vault:p#k", "BAD=vault:secret/data/app"});
  CHECK(code_of(e) == 65);
  CHECK_CONTAINS(e.what(), "environment variable BAD");
  CHECK_CONTAINS(e.what(), "missing '#<key>'");

  e = plan_error({"BAD=x${vault:p#k#0}"});
  CHECK(code_of(e) == 65);
  CHECK_CONTAINS(e.what(), "environment variable BAD");
  CHECK_CONTAINS(e.what(), "column 2");
}

TEST_CASE("--no-env-refs ignores the inherited environment entirely") {
  PlanInput in;
  in.environ = {"A=vault:p#k", "BAD=vault:broken"};
  in.env_refs = false;
  const Plan p = build_plan(in);
  CHECK(p.env.empty());
  CHECK(p.fetches.empty());
}

TEST_CASE("${secret:...} in the environment needs a manifest") {
  Error e = plan_error({"A=${secret:db}"});
  CHECK(code_of(e) == 65);
  CHECK_CONTAINS(e.what(), "environment variable A");
  CHECK_CONTAINS(e.what(), "needs a manifest");
}

TEST_CASE("${secret:...} in the environment must name a declared secret") {
  const Manifest m = parse_manifest(k_manifest, "m.yml");
  Error e = plan_error({"A=${secret:ghost}"}, &m);
  CHECK(code_of(e) == 65);
  CHECK_CONTAINS(e.what(), "environment variable A");
  CHECK_CONTAINS(e.what(), "'${secret:ghost}' names no secret declared");
  const Plan p = plan_of({"A=${secret:db_user}"}, &m);
  CHECK(fetch_paths(p) == Strings{"secret/data/app"});
}

TEST_CASE("manifest env entries come after inherited references, so they take precedence") {
  const Manifest m = parse_manifest(k_manifest, "m.yml");
  const Plan p = plan_of({"DB_PASSWORD=vault:secret/data/other#pw", "X=vault:secret/data/x#k"}, &m);
  CHECK(env_names(p) == Strings{"DB_PASSWORD", "X", "DB_PASSWORD"});
  CHECK(p.env[0].origin == "environment");
  CHECK(p.env[2].origin == "m.yml:15");
}

TEST_CASE("manifest secrets are fetched only when something uses them") {
  const Manifest m = parse_manifest(k_manifest, "m.yml");
  const Plan p = plan_of({}, &m);
  // db is used by env; db_user shares its path; pinned and unused are not used.
  CHECK(fetch_paths(p) == Strings{"secret/data/app"});
  CHECK_CONTAINS(p.fetches[0].first_user, "secret 'db' (m.yml:4)");
}

TEST_CASE("manifest secrets and vault references of the same path and version share a fetch") {
  const Manifest m = parse_manifest(k_manifest, "m.yml");
  const Plan p = plan_of(
      {"A=vault:secret/data/app#password", "B=${secret:pinned}", "C=vault:secret/data/app#k#2"},
      &m);
  CHECK(fetch_paths(p) == Strings{"secret/data/app", "secret/data/app@2"});
  CHECK(p.fetch_for(Ref{NamedRef{"pinned", {}}}) == 1);
  CHECK(p.fetch_for(Ref{NamedRef{"db", {}}}) == 0);
}

TEST_CASE("files of the manifest are planned with their secrets") {
  const Manifest m = parse_manifest(R"(version: 1
secrets:
  a:
    path: kv/a
  b:
    path: kv/b
    engine: kv1
files:
  - path: a.json
    secret: a
    format: json
  - path: t.conf
    template: "x=${secret:b} y=${vault:kv/c#y}"
)",
                                    "m.yml");
  const Plan p = plan_of({}, &m);
  CHECK(p.files.size() == 2);
  CHECK(fetch_paths(p) == Strings{"kv/a", "kv/b", "kv/c"});
  CHECK(p.fetches[1].engine == Engine::kv1);
}

TEST_CASE("two different engines for the same path are a conflict") {
  const Manifest m = parse_manifest(R"(version: 1
secrets:
  a:
    path: kv/x
    engine: kv2
  b:
    path: kv/x
    engine: kv1
env:
  A: ${secret:a}
  B: ${secret:b}
)",
                                    "m.yml");
  const Error e = plan_error({}, &m);
  CHECK(code_of(e) == 65);
  CHECK_CONTAINS(e.what(), "engine kv1 conflicts with engine kv2");
  CHECK_CONTAINS(e.what(), "secret 'a' (m.yml:4)");
  CHECK_CONTAINS(e.what(), "secret 'b' (m.yml:7)");
}

TEST_CASE("an explicit engine refines an automatic one for the same path") {
  const Manifest m = parse_manifest(R"(version: 1
secrets:
  a:
    path: kv/x
  b:
    path: kv/x
    engine: generic
  c:
    path: kv/x
env:
  A: ${secret:a}
  B: ${secret:b}
  C: ${secret:c}
)",
                                    "m.yml");
  const Plan p = plan_of({"D=vault:kv/x#k"}, &m);
  REQUIRE(p.fetches.size() == 1);
  CHECK(p.fetches[0].engine == Engine::generic);
}

TEST_CASE("arguments with references are refused without --argv-templates") {
  Error e = plan_error({}, nullptr, {"psql", "--password=${vault:secret/data/app#pw}"});
  CHECK(code_of(e) == 65);
  CHECK_CONTAINS(e.what(), "argument 1 contains a Vault reference");
  CHECK_CONTAINS(e.what(), "--argv-templates");

  e = plan_error({}, nullptr, {"${vault:p#cmd}"});
  CHECK_CONTAINS(e.what(), "COMMAND contains a Vault reference");

  // Malformed ones too: they never reach the command as literal text.
  e = plan_error({}, nullptr, {"cmd", "a", "${vault:broken"});
  CHECK_CONTAINS(e.what(), "argument 2");
  e = plan_error({}, nullptr, {"cmd", "${secret:db}"});
  CHECK_CONTAINS(e.what(), "argument 1");
}

TEST_CASE("arguments without references pass through untouched") {
  const Plan p = plan_of({}, nullptr, {"sh", "-c", "echo ${HOME} $${vault:p#k} vault:p#k"});
  CHECK(p.argv_text == Strings{"sh", "-c", "echo ${HOME} $${vault:p#k} vault:p#k"});
  REQUIRE(p.argv.size() == 3);
  CHECK_FALSE(p.argv[2].has_refs());
  CHECK(p.fetches.empty());
  CHECK_FALSE(p.argv_templates);
}

TEST_CASE("with --argv-templates arguments are parsed and fetched") {
  const Plan p = plan_of({}, nullptr, {"cmd", "--pw=${vault:kv/a#pw}", "$${vault:x}"}, true);
  CHECK(p.argv_templates);
  REQUIRE(p.argv.size() == 3);
  CHECK(p.argv[1].has_refs());
  CHECK_FALSE(p.argv[2].has_refs());
  CHECK(p.argv[2].segments[0].literal == "${vault:x}");
  CHECK(fetch_paths(p) == Strings{"kv/a"});
}

TEST_CASE("argv: true in the manifest enables argument templates") {
  const Manifest m = parse_manifest(
      "version: 1\nargv: true\nsecrets:\n  db:\n    path: kv/db\n    key: pw\n", "m.yml");
  const Plan p = plan_of({}, &m, {"cmd", "${secret:db}"});
  CHECK(p.argv_templates);
  CHECK(fetch_paths(p) == Strings{"kv/db"});
}

TEST_CASE("a malformed template argument names the argument and column") {
  const Error e = plan_error({}, nullptr, {"cmd", "x", "ab${vault:p}"}, true);
  CHECK(code_of(e) == 65);
  CHECK_CONTAINS(e.what(), "argument 2");
  CHECK_CONTAINS(e.what(), "column 3");
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("core::refused paths");

TEST_CASE("references under auth/ and sys/ are refused before any request") {
  for (const char* ref :
       {"vault:auth/token/lookup-self#id", "vault:auth/approle/login#client_token",
        "vault:auth/token/create#client_token", "vault:sys/wrapping/lookup#token",
        "vault:sys/wrapping/unwrap#x"}) {
    CAPTURE(ref);
    const Error e = plan_error({std::string("X=") + ref});
    CHECK(code_of(e) == 65);
    CHECK_CONTAINS(e.what(), std::string(ref).substr(6, std::string(ref).find('#') - 6));
  }
  const Manifest m = parse_manifest("version: 1\nsecrets:\n  t:\n    path: auth/token/lookup-self\n"
                                    "env:\n  T: ${secret:t}\n",
                                    "m.yml");
  CHECK(code_of(plan_error({}, &m)) == 65);
}

TEST_CASE("paths that merely contain auth or sys elsewhere are secrets like any other") {
  CHECK(refused_path_prefix("secret/data/auth/db") == nullptr);
  CHECK(refused_path_prefix("authority/x") == nullptr);
  CHECK(refused_path_prefix("system/x") == nullptr);
  CHECK(std::string(refused_path_prefix("auth/x")) == "auth/");
  CHECK(std::string(refused_path_prefix("sys/x")) == "sys/");
  const Plan p = plan_of({"X=vault:secret/data/auth/db#pw"});
  CHECK(fetch_paths(p) == std::vector<std::string>{"secret/data/auth/db"});
}

TEST_SUITE_END();
