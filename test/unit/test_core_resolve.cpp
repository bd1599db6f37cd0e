#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/resolve.hpp"
#include "resolve_fixture.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>

using namespace cs::core;
using cs::test::Canned;
using cs::test::code_of;
using cs::test::error_of;
using cs::test::ResolveFixture;
using cs::test::secret_json;

namespace {

// Every secret value in these tests contains this, so a leak into a message is visible.
constexpr const char* k_canary = "CANARY-9b2f";

const char* k_app = R"({"password":"CANARY-9b2f-pw","user":"app","port":5432,"tls":true,
                        "opts":{"a":[1,"x"]},"nothing":null})";

std::string render(const ResolveFixture& fx, const std::string& text) {
  auto t = parse_template(text, NamedRefs::allowed);
  REQUIRE(t.ok());
  return std::string(fx.resolver().render(*t, "test").reveal());
}

Error render_error(const ResolveFixture& fx, const std::string& text) {
  auto t = parse_template(text, NamedRefs::allowed);
  REQUIRE(t.ok());
  auto e = error_of([&] { fx.resolver().render(*t, "where-text"); });
  REQUIRE(e.has_value());
  CHECK_NOT_CONTAINS(e->what(), k_canary);
  return *e;
}

std::string file_text(const ResolveFixture& fx, std::size_t index) {
  return std::string(fx.resolver().render_file(fx.plan().files.at(index)).reveal());
}

Error file_error(const ResolveFixture& fx, std::size_t index) {
  auto e = error_of([&] { fx.resolver().render_file(fx.plan().files.at(index)); });
  REQUIRE(e.has_value());
  CHECK_NOT_CONTAINS(e->what(), k_canary);
  return *e;
}

std::string text(const cs::util::Secret& s) {
  return std::string(s.reveal());
}

} // namespace

TEST_SUITE_BEGIN("core::Resolver");

TEST_CASE("a string value is delivered verbatim, other JSON as compact text") {
  const ResolveFixture fx("", {"A=vault:kv/app#password"}, {{"kv/app", {k_app}}});
  CHECK(render(fx, "${vault:kv/app#password}") == "CANARY-9b2f-pw");
  CHECK(render(fx, "${vault:kv/app#port}") == "5432");
  CHECK(render(fx, "${vault:kv/app#tls}") == "true");
  CHECK(render(fx, "${vault:kv/app#opts}") == R"({"a":[1,"x"]})");
  CHECK(render(fx, "${vault:kv/app#nothing}") == "null");
}

TEST_CASE("templates substitute every reference between their literals") {
  const ResolveFixture fx("", {"A=vault:kv/app#password"}, {{"kv/app", {k_app}}});
  CHECK(render(
            fx,
            "postgres://${vault:kv/app#user}:${vault:kv/app#password}@db:${vault:kv/app#port}/x") ==
        "postgres://app:CANARY-9b2f-pw@db:5432/x");
  CHECK(render(fx, "$${vault:kv/app#user}") == "${vault:kv/app#user}");
}

TEST_CASE("a missing key is not_found and names the key and the path, not the fields present") {
  const ResolveFixture fx("", {"A=vault:kv/app#passwd"}, {{"kv/app", {k_app}}});
  const Error e = render_error(fx, "${vault:kv/app#passwd}");
  CHECK(code_of(e) == 79);
  CHECK_CONTAINS(e.what(), "no key 'passwd'");
  CHECK_CONTAINS(e.what(), "vault:kv/app#passwd");
  CHECK_CONTAINS(e.what(), "kv/app");
  CHECK_CONTAINS(e.what(), "where-text");
  // Field names describe the secret and container logs are permanent: only their number.
  CHECK_NOT_CONTAINS(e.what(), "password");
  CHECK_NOT_CONTAINS(e.what(), "user");
  CHECK_CONTAINS(e.what(), "keys)");
}

TEST_CASE("a missing key in an empty secret says it has no keys") {
  const ResolveFixture fx("", {"A=vault:kv/empty#k"}, {{"kv/empty", {"{}"}}});
  const Error e = render_error(fx, "${vault:kv/empty#k}");
  CHECK(code_of(e) == 79);
  CHECK_CONTAINS(e.what(), "no keys");
}

TEST_CASE("a secret without a key resolves to its own key, or the whole object as JSON") {
  const char* manifest = R"(version: 1
secrets:
  db:
    path: kv/app
    key: password
  whole:
    path: kv/app
env:
  A: ${secret:db}
  B: ${secret:whole}
  C: ${secret:whole#user}
  D: ${secret:db#user}
)";
  const ResolveFixture fx(manifest, {}, {{"kv/app", {R"({"password":"CANARY-9b2f","user":"u"})"}}});
  CHECK(render(fx, "${secret:db}") == "CANARY-9b2f");
  CHECK(render(fx, "${secret:whole}") == R"({"password":"CANARY-9b2f","user":"u"})");
  CHECK(render(fx, "${secret:whole#user}") == "u");
  CHECK(render(fx, "${secret:db#user}") == "u"); // an explicit key beats the secret's own
}

TEST_CASE("a manifest secret's missing key is not_found naming the secret") {
  const char* manifest =
      "version: 1\nsecrets:\n  db:\n    path: kv/app\n    key: pw\nenv:\n  A: ${secret:db}\n";
  const ResolveFixture fx(manifest, {}, {{"kv/app", {k_app}}});
  const Error e = render_error(fx, "${secret:db}");
  CHECK(code_of(e) == 79);
  CHECK_CONTAINS(e.what(), "secret:db");
  CHECK_CONTAINS(e.what(), "no key 'pw'");
}

TEST_CASE("check_engines refuses a non-KV v2 answer where KV v2 is required") {
  const char* manifest =
      "version: 1\nsecrets:\n  db:\n    path: kv/app\n    engine: kv2\nenv:\n  A: ${secret:db}\n";
  const ResolveFixture v1(manifest, {}, {{"kv/app", {k_app, false}}});
  auto e = error_of([&] { v1.resolver().check_engines(); });
  REQUIRE(e);
  CHECK(code_of(*e) == 76);
  CHECK_CONTAINS(e->what(), "kv/app is not a KV v2 read");
  CHECK_CONTAINS(e->what(), "secret 'db'");
  CHECK_NOT_CONTAINS(e->what(), k_canary);

  const ResolveFixture v2(manifest, {}, {{"kv/app", {k_app, true}}});
  CHECK_NOTHROW(v2.resolver().check_engines());
  const ResolveFixture automatic("", {"A=vault:kv/app#user"}, {{"kv/app", {k_app, false}}});
  CHECK_NOTHROW(automatic.resolver().check_engines());
}

TEST_CASE("a versioned reference requires KV v2 at check time") {
  const ResolveFixture fx("", {"A=vault:kv/app#user#2"}, {{"kv/app@2", {k_app, false}}});
  auto e = error_of([&] { fx.resolver().check_engines(); });
  REQUIRE(e);
  CHECK(code_of(*e) == 76);
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("core::render_dotenv");

TEST_CASE("dotenv lines are sorted by name and quoted") {
  const auto s = render_dotenv(secret_json(R"({"b":"2","a":"1","C_1":3})"), "f");
  CHECK(text(s) == "C_1=\"3\"\na=\"1\"\nb=\"2\"\n");
}

TEST_CASE("dotenv escapes backslash, quote, dollar, backtick and newline") {
  const auto s = render_dotenv(secret_json(R"({"V":"a\\b\"c$d\ne'f`g"})"), "f");
  CHECK(text(s) == "V=\"a\\\\b\\\"c\\$d\\ne'f\\`g\"\n");
}

TEST_CASE("an empty object renders as an empty dotenv file") {
  CHECK(text(render_dotenv(secret_json("{}"), "f")).empty());
}

TEST_CASE("a field that is not a variable name is refused, naming the field only") {
  for (const char* json : {R"({"my-key":"CANARY-9b2f"})", R"({"1x":"CANARY-9b2f"})",
                           R"({"a b":"CANARY-9b2f"})", R"({"":"CANARY-9b2f"})"}) {
    CAPTURE(json);
    auto e = error_of([&] { render_dotenv(secret_json(json), "file x (m.yml:3)"); });
    REQUIRE(e);
    CHECK(code_of(*e) == 65);
    CHECK_CONTAINS(e->what(), "file x (m.yml:3)");
    CHECK_CONTAINS(e->what(), "not a valid variable name");
    CHECK_NOT_CONTAINS(e->what(), k_canary);
  }
}

TEST_CASE("dotenv needs an object") {
  auto e = error_of([&] { render_dotenv(secret_json(R"("CANARY-9b2f")"), "f"); });
  REQUIRE(e);
  CHECK(code_of(*e) == 65);
  CHECK_CONTAINS(e->what(), "needs a whole secret");
  CHECK_NOT_CONTAINS(e->what(), k_canary);
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("core::render_ini");

TEST_CASE("ini has the section header then key = value lines") {
  const auto s = render_ini(secret_json(R"({"user":"app","password":"p=w;#","n":1})"), "db", "f");
  CHECK(text(s) == "[db]\nn = 1\npassword = p=w;#\nuser = app\n");
}

TEST_CASE("a newline in an ini value is refused, naming the field and not the value") {
  for (const char* json : {R"({"cert":"CANARY-9b2f\nline2"})", R"({"cert":"CANARY-9b2f\r"})"}) {
    auto e = error_of([&] { render_ini(secret_json(json), "default", "file app.ini"); });
    REQUIRE(e);
    CHECK(code_of(*e) == 65);
    CHECK_CONTAINS(e->what(), "field 'cert'");
    CHECK_CONTAINS(e->what(), "newline");
    CHECK_CONTAINS(e->what(), "file app.ini");
    CHECK_NOT_CONTAINS(e->what(), k_canary);
  }
}

TEST_CASE("ini keys that would break the format are refused") {
  for (const char* json : {R"({"a=b":"v"})", R"({"[x]":"v"})", R"({"":"v"})"}) {
    CAPTURE(json);
    auto e = error_of([&] { render_ini(secret_json(json), "default", "f"); });
    REQUIRE(e);
    CHECK(code_of(*e) == 65);
  }
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("core::render_aws_credentials");

TEST_CASE("the canonical AWS field names are used as they are") {
  const auto s = render_aws_credentials(
      secret_json(
          R"({"aws_access_key_id":"AKIA1","aws_secret_access_key":"sk","aws_session_token":"tok","other":"x"})"),
      "default", "f");
  CHECK(text(s) == "[default]\naws_access_key_id = AKIA1\naws_secret_access_key = sk\n"
                   "aws_session_token = tok\n");
}

TEST_CASE("the aliases of each field are understood") {
  const auto a = render_aws_credentials(
      secret_json(R"({"access_key":"AKIA2","secret_key":"sk2","security_token":"t2"})"), "prod",
      "f");
  CHECK(text(a) == "[prod]\naws_access_key_id = AKIA2\naws_secret_access_key = sk2\n"
                   "aws_session_token = t2\n");
  const auto b = render_aws_credentials(
      secret_json(R"({"access_key_id":"AKIA3","secret_access_key":"sk3","session_token":"t3"})"),
      "p", "f");
  CHECK(text(b) == "[p]\naws_access_key_id = AKIA3\naws_secret_access_key = sk3\n"
                   "aws_session_token = t3\n");
}

TEST_CASE("the canonical name wins over an alias") {
  const auto s = render_aws_credentials(
      secret_json(R"({"access_key":"alias","aws_access_key_id":"canonical","secret_key":"s"})"),
      "d", "f");
  CHECK(text(s) == "[d]\naws_access_key_id = canonical\naws_secret_access_key = s\n");
}

TEST_CASE("the session token is optional, and a null one is left out") {
  CHECK(text(render_aws_credentials(secret_json(R"({"access_key":"a","secret_key":"s"})"), "d",
                                    "f")) ==
        "[d]\naws_access_key_id = a\naws_secret_access_key = s\n");
  CHECK(text(render_aws_credentials(
            secret_json(R"({"access_key":"a","secret_key":"s","session_token":null})"), "d",
            "f")) == "[d]\naws_access_key_id = a\naws_secret_access_key = s\n");
}

TEST_CASE("missing key id or secret key is not_found") {
  for (const char* json :
       {R"({"access_key":"CANARY-9b2f"})", R"({"secret_key":"CANARY-9b2f"})", "{}"}) {
    CAPTURE(json);
    auto e = error_of([&] { render_aws_credentials(secret_json(json), "d", "file aws"); });
    REQUIRE(e);
    CHECK(code_of(*e) == 79);
    CHECK_CONTAINS(e->what(), "aws_access_key_id");
    CHECK_NOT_CONTAINS(e->what(), k_canary);
  }
}

TEST_CASE("a newline in an AWS value is refused") {
  auto e = error_of([&] {
    render_aws_credentials(secret_json(R"({"access_key":"a","secret_key":"CANARY-9b2f\nx"})"), "d",
                           "f");
  });
  REQUIRE(e);
  CHECK(code_of(*e) == 65);
  CHECK_CONTAINS(e->what(), "aws_secret_access_key");
  CHECK_NOT_CONTAINS(e->what(), k_canary);
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("core::Resolver::render_file");

TEST_CASE("each file format renders from the manifest") {
  const char* manifest = R"(version: 1
secrets:
  db:
    path: kv/db
    key: password
  aws:
    path: kv/aws
  n:
    path: kv/db
    key: port
files:
  - path: raw
    secret: db
  - path: raw-whole
    secret: aws
  - path: raw-key
    secret: aws
    key: access_key
  - path: json
    secret: aws
    format: json
  - path: json-key
    secret: db
    format: json
  - path: dotenv
    secret: aws
    format: dotenv
  - path: ini
    secret: aws
    format: ini
    section: s
  - path: creds
    secret: aws
    format: aws-credentials
    profile: prod
  - path: tmpl
    template: "pw=${secret:db} port=${secret:n}\n"
  - path: raw-number
    secret: n
)";
  const ResolveFixture fx(manifest, {},
                          {{"kv/db", {R"({"password":"pw\n","port":5432})"}},
                           {"kv/aws", {R"({"access_key":"AK","secret_key":"S$K"})"}}});
  CHECK(file_text(fx, 0) == "pw\n"); // verbatim, no newline added or removed
  CHECK(file_text(fx, 1) == R"({"access_key":"AK","secret_key":"S$K"})");
  CHECK(file_text(fx, 2) == "AK");
  CHECK(file_text(fx, 3) == R"({"access_key":"AK","secret_key":"S$K"})");
  CHECK(file_text(fx, 4) == R"("pw\n")");
  CHECK(file_text(fx, 5) == "access_key=\"AK\"\nsecret_key=\"S\\$K\"\n");
  CHECK(file_text(fx, 6) == "[s]\naccess_key = AK\nsecret_key = S$K\n");
  CHECK(file_text(fx, 7) == "[prod]\naws_access_key_id = AK\naws_secret_access_key = S$K\n");
  CHECK(file_text(fx, 8) == "pw=pw\n port=5432\n");
  CHECK(file_text(fx, 9) == "5432");
}

TEST_CASE("a key/value format on a single value is refused with the file's origin") {
  const char* manifest = R"(version: 1
secrets:
  db:
    path: kv/db
    key: password
files:
  - path: x.env
    secret: db
    format: dotenv
)";
  const ResolveFixture fx(manifest, {}, {{"kv/db", {R"({"password":"CANARY-9b2f"})"}}});
  const Error e = file_error(fx, 0);
  CHECK(code_of(e) == 65);
  CHECK_CONTAINS(e.what(), "file x.env (m.yml:7)");
  CHECK_CONTAINS(e.what(), "drop 'key'");
}

TEST_CASE("a missing key in a file source is not_found naming the file") {
  const char* manifest = R"(version: 1
secrets:
  db:
    path: kv/db
files:
  - path: pw
    secret: db
    key: pasword
)";
  const ResolveFixture fx(manifest, {}, {{"kv/db", {R"({"password":"CANARY-9b2f"})"}}});
  const Error e = file_error(fx, 0);
  CHECK(code_of(e) == 79);
  CHECK_CONTAINS(e.what(), "no key 'pasword'");
  CHECK_CONTAINS(e.what(), "file pw (m.yml:6)");
}

TEST_CASE("node_text gives strings verbatim and JSON otherwise") {
  CHECK(text(node_text(secret_json(R"("a\"b")"))) == "a\"b");
  CHECK(text(node_text(secret_json("12.5"))) == "12.5");
  CHECK(text(node_text(secret_json("[1,2]"))) == "[1,2]");
  CHECK(text(node_text(secret_json("false"))) == "false");
}

TEST_SUITE_END();
