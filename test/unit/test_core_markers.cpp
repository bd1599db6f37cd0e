#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/markers.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <map>
#include <set>

using namespace cs::core;
using cs::test::code_of;
using cs::test::error_of;

namespace {

cs::vault::EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

FileExists files(std::set<std::string> present) {
  return [present = std::move(present)](const std::string& p) { return present.count(p) > 0; };
}

const char* k_inline = R"({"version": 1, "env": {"A": "${vault:secret/data/a#k}"}, "argv": true})";

} // namespace

TEST_SUITE_BEGIN("core::Markers");

TEST_CASE("the manifest comes from --manifest, then the path variable, then inline, then /etc") {
  const auto etc = files({"/etc/crunch-secrets/manifest.json"});
  auto s = find_manifest_source("m.yml", false, env_of({{"CRUNCH_SECRETS_MANIFEST", "x"}}), etc);
  CHECK(s.kind == ManifestSource::Kind::file);
  CHECK(s.name == "m.yml");
  s = find_manifest_source("", false, env_of({{"CRUNCH_SECRETS_MANIFEST", "x.yml"}}), etc);
  CHECK(s.kind == ManifestSource::Kind::file);
  CHECK(s.name == "x.yml");
  s = find_manifest_source("", false, env_of({{"CRUNCH_SECRETS_MANIFEST_JSON", k_inline}}), etc);
  CHECK(s.kind == ManifestSource::Kind::inline_text);
  CHECK(s.name == "$CRUNCH_SECRETS_MANIFEST_JSON");
  CHECK(s.text == k_inline);
  s = find_manifest_source("", false, env_of({}), etc);
  CHECK(s.kind == ManifestSource::Kind::file);
  CHECK(s.name == "/etc/crunch-secrets/manifest.json");
  // The YAML names are tried first.
  s = find_manifest_source(
      "", false, env_of({}),
      files({"/etc/crunch-secrets/manifest.yml", "/etc/crunch-secrets/manifest.json"}));
  CHECK(s.name == "/etc/crunch-secrets/manifest.yml");
  s = find_manifest_source("", false, env_of({}), files({}));
  CHECK(s.kind == ManifestSource::Kind::none);
  CHECK(load_manifest_source(s) == nullptr);
  // --no-manifest turns off every source, the markers included.
  s = find_manifest_source("", true, env_of({{"CRUNCH_SECRETS_MANIFEST_JSON", k_inline}}), etc);
  CHECK(s.kind == ManifestSource::Kind::none);
  // An empty variable counts as unset.
  s = find_manifest_source("", false, env_of({{"CRUNCH_SECRETS_MANIFEST", ""}}), files({}));
  CHECK(s.kind == ManifestSource::Kind::none);
}

TEST_CASE("both manifest variables at once are a usage error") {
  auto e = error_of([] {
    find_manifest_source(
        "", false,
        env_of({{"CRUNCH_SECRETS_MANIFEST", "a.yml"}, {"CRUNCH_SECRETS_MANIFEST_JSON", k_inline}}),
        files({}));
  });
  REQUIRE(e);
  CHECK(code_of(*e) == 64);
  CHECK_CONTAINS(e->what(), "set only one");
}

TEST_CASE("an inline manifest is parsed, and its errors name the variable") {
  ManifestSource s{ManifestSource::Kind::inline_text, "$CRUNCH_SECRETS_MANIFEST_JSON", k_inline};
  auto m = load_manifest_source(s);
  REQUIRE(m != nullptr);
  CHECK(m->argv_templates);
  REQUIRE(m->env.size() == 1);
  CHECK(m->env[0].name == "A");
  s.text = R"({"version": 1, "nonsense": 1})";
  auto e = error_of([&] { load_manifest_source(s); });
  REQUIRE(e);
  CHECK(code_of(*e) == 65);
  CHECK_CONTAINS(e->what(), "$CRUNCH_SECRETS_MANIFEST_JSON:1:");
  CHECK_CONTAINS(e->what(), "nonsense");
}

TEST_CASE("CRUNCH_SECRETS_ARGV turns argv substitution on") {
  CHECK_FALSE(argv_marker(env_of({})));
  for (const char* off : {"", "0", "false", "no"}) {
    CHECK_FALSE(argv_marker(env_of({{"CRUNCH_SECRETS_ARGV", off}})));
  }
  for (const char* on : {"1", "true", "yes"}) {
    CHECK(argv_marker(env_of({{"CRUNCH_SECRETS_ARGV", on}})));
  }
  auto e = error_of([] { argv_marker(env_of({{"CRUNCH_SECRETS_ARGV", "maybe"}})); });
  REQUIRE(e);
  CHECK(code_of(*e) == 64);
  CHECK_CONTAINS(e->what(), "CRUNCH_SECRETS_ARGV='maybe'");
}

TEST_CASE("the inline manifest variable is not an environment reference") {
  const auto env =
      without_manifest_marker({"A=1", std::string("CRUNCH_SECRETS_MANIFEST_JSON=") + k_inline,
                               "CRUNCH_SECRETS_MANIFEST_JSONX=2"});
  CHECK(env == std::vector<std::string>{"A=1", "CRUNCH_SECRETS_MANIFEST_JSONX=2"});
}

TEST_SUITE_END();
