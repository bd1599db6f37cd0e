#include "crunchsecrets/core/auth.hpp"
#include "crunchsecrets/core/error.hpp"
#include "fake_transport.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <map>

using namespace cs::core;
using cs::test::code_of;
using cs::test::error_of;
using cs::test::FakeTransport;
using cs::test::resp;
using cs::test::Seen;
using cs::test::TempDir;
using namespace std::chrono_literals;

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

cs::vault::Config config() {
  cs::vault::Config c;
  c.address = "http://vault.test:8200";
  c.max_retries = 0;
  return c;
}

// Logs in with `options` and `env` against a transport that accepts every login; returns
// the requests it saw.
FakeTransport login_with(const AuthOptions& options, std::map<std::string, std::string> env) {
  FakeTransport t([](const Seen&) { return resp(200, R"({"auth":{"client_token":"s.ok"}})"); });
  cs::vault::Client c(config(), t, cs::vault::Clock::now() + 10s);
  login(c, options, env_of(std::move(env)));
  CHECK(c.logged_in());
  return t;
}

AuthOptions method(AuthMethod m) {
  AuthOptions o;
  o.method = m;
  return o;
}

} // namespace

TEST_SUITE_BEGIN("core::Auth");

TEST_CASE("auto picks token, then wrapped, then approle, then arvados") {
  const std::map<std::string, std::string> all{{"VAULT_TOKEN", "s.1"},
                                               {"CRUNCH_SECRETS_WRAPPED_TOKEN", "w"},
                                               {"CRUNCH_SECRETS_SECRET_ID", "sid"},
                                               {"ARVADOS_API_TOKEN", "v2/a/b"}};
  AuthOptions o;
  o.role_id = "role";
  CHECK(choose_method(o, env_of(all)) == AuthMethod::token);
  auto env = all;
  env.erase("VAULT_TOKEN");
  CHECK(choose_method(o, env_of(env)) == AuthMethod::wrapped);
  env.erase("CRUNCH_SECRETS_WRAPPED_TOKEN");
  CHECK(choose_method(o, env_of(env)) == AuthMethod::approle);
  o.role_id.clear();
  CHECK(choose_method(o, env_of(env)) == AuthMethod::arvados); // a secret id without a role id
  CHECK(choose_method(AuthOptions{}, env_of({{"BAO_TOKEN", "s.2"}})) == AuthMethod::token);
  CHECK(choose_method(AuthOptions{}, env_of({{"VAULT_TOKEN", ""}, {"ARVADOS_API_TOKEN", "t"}})) ==
        AuthMethod::arvados);
}

TEST_CASE("auto uses the file options as well as the environment") {
  AuthOptions o;
  o.token_file = "/t";
  CHECK(choose_method(o, env_of({})) == AuthMethod::token);
  o = AuthOptions{};
  o.wrapped_token_file = "/w";
  CHECK(choose_method(o, env_of({})) == AuthMethod::wrapped);
  o = AuthOptions{};
  o.role_id_file = "/r";
  o.secret_id_file = "/s";
  CHECK(choose_method(o, env_of({})) == AuthMethod::approle);
  o = AuthOptions{};
  o.arvados_token_file = "/a";
  CHECK(choose_method(o, env_of({})) == AuthMethod::arvados);
}

TEST_CASE("no credentials at all is a configuration error") {
  auto e = error_of([] { choose_method(AuthOptions{}, env_of({})); });
  REQUIRE(e);
  CHECK(code_of(*e) == 78);
  CHECK_CONTAINS(e->what(), "VAULT_TOKEN");
}

TEST_CASE("an explicit method is taken as given") {
  CHECK(choose_method(method(AuthMethod::arvados), env_of({{"VAULT_TOKEN", "s"}})) ==
        AuthMethod::arvados);
}

TEST_CASE("the manifest's auth block fills options the command line left unset") {
  const Manifest m =
      parse_manifest("version: 1\nauth:\n  method: arvados\n  role: etl\n  mount: arv2\n", "m.yml");
  const AuthOptions o = merge_auth(AuthOptions{}, &m, env_of({}));
  CHECK(o.method == AuthMethod::arvados);
  CHECK(o.arvados_role == "etl");
  CHECK(o.arvados_mount == "arv2");

  AuthOptions cli;
  cli.method = AuthMethod::token;
  cli.arvados_role = "cli-role";
  cli.arvados_mount = "cli-mount";
  const AuthOptions kept = merge_auth(cli, &m, env_of({}));
  CHECK(kept.method == AuthMethod::token);
  CHECK(kept.arvados_role == "cli-role");
  CHECK(kept.arvados_mount == "cli-mount");
}

TEST_CASE("with method approle the manifest role is the role id and the mount the AppRole's") {
  const Manifest m = parse_manifest(
      "version: 1\nauth:\n  method: approle\n  role: rid-1\n  mount: approle-ci\n", "m.yml");
  const AuthOptions o = merge_auth(AuthOptions{}, &m, env_of({}));
  CHECK(o.role_id == "rid-1");
  CHECK(o.approle_mount == "approle-ci");
  CHECK(o.arvados_mount == "arvados");
}

TEST_CASE("environment defaults for the Arvados role and the AppRole role id") {
  AuthOptions o = merge_auth(AuthOptions{}, nullptr, env_of({}));
  CHECK(o.arvados_role == "default");
  CHECK(o.role_id.empty());
  o = merge_auth(AuthOptions{}, nullptr,
                 env_of({{"CRUNCH_SECRETS_ARVADOS_ROLE", "r"}, {"CRUNCH_SECRETS_ROLE_ID", "id"}}));
  CHECK(o.arvados_role == "r");
  CHECK(o.role_id == "id");
}

TEST_CASE("a token from the environment needs no request; BAO_TOKEN wins") {
  FakeTransport t([](const Seen&) { return resp(200, "{}"); });
  cs::vault::Client c(config(), t, cs::vault::Clock::now() + 10s);
  login(c, AuthOptions{}, env_of({{"BAO_TOKEN", "s.bao"}, {"VAULT_TOKEN", "s.vault"}}));
  CHECK(t.requests_sent() == 0);
  CHECK(c.logged_in());
  c.capabilities({"kv/a"});
  CHECK(t.batches[0][0].token == std::optional<std::string>("s.bao"));
}

TEST_CASE("a token file is read with trailing white space dropped") {
  TempDir tmp;
  cs::test::write_text(tmp / "token", "s.from-file\n");
  FakeTransport t([](const Seen&) { return resp(200, "{}"); });
  cs::vault::Client c(config(), t, cs::vault::Clock::now() + 10s);
  AuthOptions o;
  o.token_file = tmp / "token";
  login(c, o, env_of({}));
  c.capabilities({"kv/a"});
  CHECK(t.batches[0][0].token == std::optional<std::string>("s.from-file"));
}

TEST_CASE("a missing credential file is exit 66, an empty one exit 78") {
  TempDir tmp;
  cs::test::write_text(tmp / "empty", "\n");
  FakeTransport t([](const Seen&) { return resp(200); });
  cs::vault::Client c(config(), t, cs::vault::Clock::now() + 10s);
  AuthOptions o;
  o.token_file = tmp / "missing";
  auto e = error_of([&] { login(c, o, env_of({})); });
  REQUIRE(e);
  CHECK(code_of(*e) == 66);
  CHECK_CONTAINS(e->what(), "--token-file");
  o.token_file = tmp / "empty";
  e = error_of([&] { login(c, o, env_of({})); });
  REQUIRE(e);
  CHECK(code_of(*e) == 78);
  CHECK(t.requests_sent() == 0);
}

TEST_CASE("AppRole login reads the role id and secret id and logs in once") {
  TempDir tmp;
  cs::test::write_text(tmp / "sid", "secret-id\n");
  AuthOptions o = method(AuthMethod::approle);
  o.role_id = "role-id";
  o.secret_id_file = tmp / "sid";
  o.approle_mount = "ci";
  const FakeTransport t = login_with(o, {});
  REQUIRE(t.requests_sent() == 1);
  CHECK(t.batches[0][0].path == "auth/ci/login");
  CHECK_CONTAINS(t.batches[0][0].body, "\"secret_id\":\"secret-id\"");
  CHECK_CONTAINS(t.batches[0][0].body, "\"role_id\":\"role-id\"");
}

TEST_CASE("AppRole without a secret id is a configuration error before any request") {
  FakeTransport t([](const Seen&) { return resp(200); });
  cs::vault::Client c(config(), t, cs::vault::Clock::now() + 10s);
  AuthOptions o = method(AuthMethod::approle);
  o.role_id = "r";
  auto e = error_of([&] { login(c, o, env_of({})); });
  REQUIRE(e);
  CHECK(code_of(*e) == 78);
  CHECK(t.requests_sent() == 0);
}

TEST_CASE("wrapped and Arvados logins take their tokens from the environment") {
  FakeTransport w =
      login_with(method(AuthMethod::wrapped), {{"CRUNCH_SECRETS_WRAPPED_TOKEN", "hvs.w"}});
  // What the token wraps is looked up (using nothing up) before it is unwrapped.
  REQUIRE(w.requests_sent() == 2);
  CHECK(w.batches[0][0].path == "sys/wrapping/lookup");
  CHECK(w.batches[1][0].path == "sys/wrapping/unwrap");
  CHECK(w.batches[1][0].token == std::optional<std::string>("hvs.w"));

  AuthOptions o = method(AuthMethod::arvados);
  o.arvados_role = "etl";
  FakeTransport a = login_with(o, {{"ARVADOS_API_TOKEN", "v2/x/CANARY"}});
  REQUIRE(a.requests_sent() == 1);
  CHECK(a.batches[0][0].path == "auth/arvados/login");
  CHECK_CONTAINS(a.batches[0][0].body, "\"arvados_token\":\"v2/x/CANARY\"");
  CHECK_CONTAINS(a.batches[0][0].body, "\"role\":\"etl\"");
}

TEST_CASE("a wrapped secret id run could not log in with is refused before it is unwrapped") {
  const auto lookup = [](const std::string& created) {
    return [created](const Seen& s) {
      return s.path == "sys/wrapping/lookup" ? resp(200, R"({"data":{"creation_path":")" + created +
                                                             R"(","creation_ttl":300}})")
                                             : resp(200, R"({"auth":{"client_token":"s.ok"}})");
    };
  };
  const std::map<std::string, std::string> env{{"CRUNCH_SECRETS_WRAPPED_TOKEN", "hvs.w"}};
  SUBCASE("no role id") {
    FakeTransport t(lookup("auth/approle/role/r/secret-id"));
    cs::vault::Client c(config(), t, cs::vault::Clock::now() + 10s);
    auto e = error_of([&] { login(c, method(AuthMethod::wrapped), env_of(env)); });
    REQUIRE(e);
    CHECK(code_of(*e) == 78);
    CHECK_CONTAINS(std::string(e->what()), "no role id was given");
    REQUIRE(t.requests_sent() == 1);
    CHECK(t.batches[0][0].path == "sys/wrapping/lookup");
  }
  SUBCASE("another AppRole mount") {
    FakeTransport t(lookup("auth/team-approle/role/r/custom-secret-id"));
    cs::vault::Client c(config(), t, cs::vault::Clock::now() + 10s);
    AuthOptions o = method(AuthMethod::wrapped);
    o.role_id = "r";
    auto e = error_of([&] { login(c, o, env_of(env)); });
    REQUIRE(e);
    CHECK(code_of(*e) == 78);
    CHECK_CONTAINS(std::string(e->what()), "pass --approle-mount team-approle");
    CHECK(t.requests_sent() == 1);
  }
  SUBCASE("with the role id and the mount it is unwrapped once") {
    FakeTransport t(lookup("auth/approle/role/r/secret-id"));
    cs::vault::Client c(config(), t, cs::vault::Clock::now() + 10s);
    AuthOptions o = method(AuthMethod::wrapped);
    o.role_id = "r";
    login(c, o, env_of(env));
    REQUIRE(t.requests_sent() == 2);
    CHECK(t.batches[1][0].path == "sys/wrapping/unwrap");
  }
}

TEST_CASE("at most one credential option reads standard input") {
  const auto env = env_of({});
  const StdinUse both{true, true};
  AuthOptions o;
  o.token_file = "-";
  refuse_second_stdin_reader(o, both, env); // one reader is fine
  o.arvados_token_file = "-";
  auto e = error_of([&] { refuse_second_stdin_reader(o, both, env); });
  REQUIRE(e);
  CHECK(code_of(*e) == 78);
  CHECK_CONTAINS(std::string(e->what()), "--token-file - and --arvados-token-file - both read");

  AuthOptions a;
  a.role_id_file = "-";
  a.secret_id_file = "-";
  CHECK(error_of([&] { refuse_second_stdin_reader(a, StdinUse{}, env); }));

  // The Arvados token serves the Arvados login and the Arvados credentials: two readers when
  // both happen, one otherwise.
  AuthOptions arv;
  arv.arvados_token_file = "-";
  auto twice = error_of([&] { refuse_second_stdin_reader(arv, both, env); });
  REQUIRE(twice);
  CHECK_CONTAINS(std::string(twice->what()), "for the Arvados credentials too");
  refuse_second_stdin_reader(arv, StdinUse{true, false}, env);
  refuse_second_stdin_reader(arv, StdinUse{false, true}, env);
  refuse_second_stdin_reader(arv, both, env_of({{"VAULT_TOKEN", "s.t"}}));
}

TEST_CASE("an explicit method without its credential is a configuration error") {
  FakeTransport t([](const Seen&) { return resp(200); });
  cs::vault::Client c(config(), t, cs::vault::Clock::now() + 10s);
  for (const AuthMethod m : {AuthMethod::token, AuthMethod::wrapped, AuthMethod::arvados}) {
    CAPTURE(to_string(m));
    auto e = error_of([&] { login(c, method(m), env_of({})); });
    REQUIRE(e);
    CHECK(code_of(*e) == 78);
  }
  CHECK(t.requests_sent() == 0);
}

TEST_CASE("auth method names come from one table") {
  const auto& names = auth_method_names();
  CHECK(names.list(" or ") == "auto, token, approle, wrapped or arvados");
  for (const AuthMethod m : {AuthMethod::automatic, AuthMethod::token, AuthMethod::approle,
                             AuthMethod::wrapped, AuthMethod::arvados}) {
    CHECK(names.parse(to_string(m)) == m);
  }
  CHECK_FALSE(names.parse("kerberos").has_value());
  CHECK(engine_names().list() == "auto, kv2, kv1, generic");
  CHECK(file_format_names().parse("aws-credentials") == FileFormat::aws_credentials);
}

TEST_SUITE_END();

TEST_CASE("~/.vault-token comes after VAULT_TOKEN, and in auto after every other credential") {
  TempDir home;
  cs::test::write_text(home.path() + "/.vault-token", "s.from-file\n");
  CHECK(vault_token_helper_file(env_of({{"HOME", home.path()}})) == home.path() + "/.vault-token");
  CHECK(vault_token_helper_file(env_of({})).empty());
  CHECK(choose_method(AuthOptions{}, env_of({{"HOME", home.path()}})) == AuthMethod::token);
  CHECK(choose_method(AuthOptions{}, env_of({{"HOME", home.path()}, {"ARVADOS_API_TOKEN", "a"}})) ==
        AuthMethod::arvados);
  FakeTransport t([](const Seen&) { return resp(200, R"({"data":{"data":{"k":"v"}}})"); });
  cs::vault::Client c(config(), t, cs::vault::Clock::now() + 10s);
  login(c, AuthOptions{}, env_of({{"HOME", home.path()}, {"VAULT_TOKEN", "s.from-env"}}));
  c.read_all({cs::vault::ReadSpec{"kv/a", std::nullopt, "a", "a"}});
  CHECK(t.batches[0][0].token == std::optional<std::string>("s.from-env"));
  cs::vault::Client c2(config(), t, cs::vault::Clock::now() + 10s);
  login(c2, AuthOptions{}, env_of({{"HOME", home.path()}}));
  c2.read_all({cs::vault::ReadSpec{"kv/a", std::nullopt, "a", "a"}});
  CHECK(t.batches[1][0].token == std::optional<std::string>("s.from-file"));
}
