#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/manifest.hpp"
#include "crunchsecrets/core/plan.hpp"
#include "crunchsecrets/core/resolve.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <memory>

using namespace cs::core;
using cs::test::code_of;
using cs::test::error_of;

namespace {

constexpr const char* k_canary = "CANARY-7f3e";

Plan plan_of(std::shared_ptr<const Manifest> manifest, std::vector<std::string> env,
             std::vector<std::string> argv) {
  PlanInput in;
  in.manifest = std::move(manifest);
  in.environ = std::move(env);
  in.argv = std::move(argv);
  in.argv_templates = true;
  return build_plan(in);
}

// A plan from `manifest` (may be empty) and `env`, resolved with two canned credentials:
// `lab-aws` (arv:aws_access_key) and `lab-db` (example:password).
struct Fixture {
  std::shared_ptr<const Manifest> manifest;
  std::shared_ptr<const Plan> shared_plan;
  const Plan& plan;
  std::unique_ptr<Resolver> resolver;

  Fixture(const std::string& m, std::vector<std::string> env, std::vector<std::string> argv = {})
      : manifest(m.empty() ? nullptr
                           : std::make_shared<const Manifest>(parse_manifest(m, "m.yml"))),
        shared_plan(
            std::make_shared<const Plan>(plan_of(manifest, std::move(env), std::move(argv)))),
        plan(*shared_plan) {
    CredentialValues creds;
    for (const auto& c : plan.credentials) {
      cs::arvados::CredentialSecret s;
      const bool aws = c.credential == "lab-aws";
      s.info.uuid = aws ? "zzzzz-oss07-labawscred00001" : "zzzzz-oss07-labdbpasswd0001";
      s.info.credential_class = aws ? "arv:aws_access_key" : "example:password";
      s.external_id = cs::util::Secret(aws ? "AKIAEXAMPLE" : "dbuser");
      s.secret = cs::util::Secret(std::string(k_canary) + (aws ? "-aws" : "-db"));
      creds.emplace_back(c.credential, std::move(s));
    }
    resolver = std::make_unique<Resolver>(shared_plan, std::vector<cs::vault::Fetched>{},
                                          std::move(creds));
  }

  std::string env(const std::string& name) const {
    for (const auto& e : plan.env) {
      if (e.name == name) {
        return std::string(resolver->render(e.value, "test").reveal());
      }
    }
    FAIL("no env " << name);
    return {};
  }
};

} // namespace

TEST_SUITE_BEGIN("core::ArvadosSource");

TEST_CASE("arvados: references parse as a whole value and inline") {
  auto whole = parse_arvados_whole_value("arvados:credential/lab-db#external_id");
  REQUIRE(whole.ok());
  REQUIRE(whole->has_value());
  CHECK((*whole)->credential == "lab-db");
  CHECK((*whole)->field == cs::arvados::Field::external_id);
  auto none = parse_arvados_whole_value("vault:x#y");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  auto bad = parse_arvados_whole_value("arvados:credential/lab-db#password");
  REQUIRE_FALSE(bad.ok());
  CHECK_CONTAINS(bad.error(), "'secret' or 'external_id'");
  auto t = parse_template("a ${arvados:credential/zzzzz-oss07-labdbpasswd0001#secret} b",
                          NamedRefs::refused);
  REQUIRE(t.ok());
  REQUIRE(t->segments.size() == 3);
  CHECK(describe(*t->segments[1].ref) == "arvados:credential/zzzzz-oss07-labdbpasswd0001#secret");
  // The escape is literal, and a malformed inline reference names its column.
  auto esc = parse_template("$${arvados:credential/x#secret}", NamedRefs::refused);
  REQUIRE(esc.ok());
  CHECK_FALSE(esc->has_refs());
  auto col = parse_template("xy${arvados:cred/x#secret}", NamedRefs::refused);
  REQUIRE_FALSE(col.ok());
  CHECK_CONTAINS(col.error(), "column 3");
  CHECK(looks_like_reference("--key=${arvados:credential/x#secret}"));
}

TEST_CASE("the plan lists each credential once with its users, beside the Vault reads") {
  Fixture fx("",
             {"A=arvados:credential/lab-db#secret",
              "B=u=${arvados:credential/lab-db#external_id} p=${arvados:credential/lab-db#secret}",
              "C=vault:secret/data/app#password", "D=plain"});
  REQUIRE(fx.plan.credentials.size() == 1);
  CHECK(fx.plan.credentials[0].credential == "lab-db");
  CHECK(fx.plan.credentials[0].used_by ==
        std::vector<std::string>{"environment variable A", "environment variable B"});
  REQUIRE(fx.plan.fetches.size() == 1);
  CHECK(fx.plan.fetches[0].read.path == "secret/data/app");
  CHECK(fx.plan.fetch_for(*fx.plan.env[0].value.segments[0].ref) == Plan::k_no_fetch);
}

TEST_CASE("values: the secret, the external id, inline, and in argv") {
  Fixture fx("",
             {"A=arvados:credential/lab-db#secret", "B=arvados:credential/lab-db#external_id",
              "C=${arvados:credential/lab-db#external_id}:${arvados:credential/lab-db#secret}"},
             {"prog", "--key=${arvados:credential/lab-aws#secret}"});
  CHECK(fx.env("A") == std::string(k_canary) + "-db");
  CHECK(fx.env("B") == "dbuser");
  CHECK(fx.env("C") == "dbuser:" + std::string(k_canary) + "-db");
  CHECK(std::string(fx.resolver->render(fx.plan.argv[1], "arg").reveal()) ==
        "--key=" + std::string(k_canary) + "-aws");
}

TEST_CASE("manifest secrets with source arvados-credential, and the aws-credentials format") {
  Fixture fx(R"(version: 1
secrets:
  aws:
    source: arvados-credential
    credential: lab-aws
  db:
    source: arvados-credential
    credential: lab-db
    key: secret
env:
  KEY_ID: ${secret:aws#external_id}
  DB: ${secret:db}
files:
  - path: aws/credentials
    secret: aws
    format: aws-credentials
    profile: lab
  - path: all.json
    secret: aws
    format: json
)",
             {});
  CHECK(fx.env("KEY_ID") == "AKIAEXAMPLE");
  CHECK(fx.env("DB") == std::string(k_canary) + "-db");
  CHECK(std::string(fx.resolver->render_file(fx.plan.files[0]).reveal()) ==
        "[lab]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = " + std::string(k_canary) +
            "-aws\n");
  CHECK(std::string(fx.resolver->render_file(fx.plan.files[1]).reveal()) ==
        R"({"external_id":"AKIAEXAMPLE","secret":")" + std::string(k_canary) + R"(-aws"})");
}

TEST_CASE("aws-credentials needs class arv:aws_access_key") {
  Fixture fx("version: 1\nsecrets:\n  db:\n    source: arvados-credential\n    credential: lab-db\n"
             "files:\n  - path: f\n    secret: db\n    format: aws-credentials\n",
             {});
  auto e = error_of([&] { fx.resolver->render_file(fx.plan.files[0]); });
  REQUIRE(e);
  CHECK(code_of(*e) == 65);
  CHECK_CONTAINS(e->what(), "example:password");
  CHECK_NOT_CONTAINS(e->what(), k_canary);
}

TEST_CASE("manifest errors for arvados-credential secrets name file and line") {
  auto err = [](const std::string& text) {
    auto e = error_of([&] { parse_manifest(text, "m.yml"); });
    REQUIRE(e);
    CHECK(code_of(*e) == 65);
    return std::string(e->what());
  };
  CHECK_CONTAINS(err("version: 1\nsecrets:\n  a:\n    source: arvados-credential\n"),
                 "no 'credential'");
  CHECK_CONTAINS(err("version: 1\nsecrets:\n  a:\n    source: arvados-credential\n    credential: "
                     "x\n    path: secret/data/x\n"),
                 "m.yml:6: 'path' does not go");
  CHECK_CONTAINS(err("version: 1\nsecrets:\n  a:\n    source: arvados-credential\n    credential: "
                     "x\n    key: password\n"),
                 "'secret' or 'external_id'");
  CHECK_CONTAINS(err("version: 1\nsecrets:\n  a:\n    source: s3\n    path: x\n"),
                 "not one of vault, arvados-credential");
  CHECK_CONTAINS(err("version: 1\nsecrets:\n  a:\n    path: x\n    credential: y\n"),
                 "goes with source: arvados-credential");
}

TEST_SUITE_END();
