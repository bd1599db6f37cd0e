#include "crunchsecrets/core/reference.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>

using namespace cs::core;

namespace {

VaultRef whole(std::string_view text) {
  auto r = parse_whole_value(text);
  REQUIRE_MESSAGE(r.ok(), "'" << std::string(text) << "': " << r.error());
  REQUIRE_MESSAGE(r->has_value(), "'" << std::string(text) << "' is not a reference");
  return **r;
}

std::string whole_error(std::string_view text) {
  auto r = parse_whole_value(text);
  REQUIRE_MESSAGE(!r.ok(), "'" << std::string(text) << "' was accepted");
  return r.error();
}

Template tmpl(std::string_view text, NamedRefs named = NamedRefs::allowed) {
  auto r = parse_template(text, named);
  REQUIRE_MESSAGE(r.ok(), "'" << std::string(text) << "': " << r.error());
  return *r;
}

std::string tmpl_error(std::string_view text, NamedRefs named = NamedRefs::allowed) {
  auto r = parse_template(text, named);
  REQUIRE_MESSAGE(!r.ok(), "'" << std::string(text) << "' was accepted");
  return r.error();
}

// Renders a template back in a readable test notation: literals as is, refs as <describe>.
std::string shape(const Template& t) {
  std::string out;
  for (const auto& s : t.segments) {
    out += s.ref ? "<" + describe(*s.ref) + ">" : "'" + s.literal + "'";
  }
  return out;
}

} // namespace

TEST_SUITE_BEGIN("core::Reference");

TEST_CASE("a whole-value reference names a path and a key") {
  const VaultRef r = whole("vault:secret/data/app#password");
  CHECK(r.path == "secret/data/app");
  CHECK(r.key == "password");
  CHECK_FALSE(r.version.has_value());
}

TEST_CASE("a whole-value reference may pin a version") {
  const VaultRef r = whole("vault:p#k#3");
  CHECK(r.path == "p");
  CHECK(r.key == "k");
  REQUIRE(r.version.has_value());
  CHECK(*r.version == 3);
  CHECK(whole("vault:p#k#9999999999").version == 9999999999ULL);
  CHECK(whole("vault:p#k#007").version == 7);
}

TEST_CASE("values that do not start with vault: are not references") {
  for (const char* text : {"", "plain", "VAULT:p#k", " vault:p#k", "vault", "xvault:p#k",
                           "${vault:p#k}", "secret:db"}) {
    CAPTURE(text);
    auto r = parse_whole_value(text);
    REQUIRE(r.ok());
    CHECK_FALSE(r->has_value());
  }
}

TEST_CASE("keys may hold spaces, colons, slashes and dollar signs") {
  CHECK(whole("vault:p#my key").key == "my key");
  CHECK(whole("vault:p#a:b/c$d{e").key == "a:b/c$d{e");
  CHECK(whole("vault:p#ключ").key == "ключ");
}

TEST_CASE("path characters of the grammar are accepted") {
  CHECK(whole("vault:a_b.c@d=e+f-G9/x#k").path == "a_b.c@d=e+f-G9/x");
  CHECK(whole("vault:...#k").path == "..."); // only '.' and '..' segments are special
  CHECK(whole("vault:.hidden/x#k").path == ".hidden/x");
}

TEST_CASE("a malformed whole-value reference is an error, never passed through") {
  CHECK_CONTAINS(whole_error("vault:"), "missing '#<key>'");
  CHECK_CONTAINS(whole_error("vault:secret/data/app"), "missing '#<key>'");
  CHECK_CONTAINS(whole_error("vault:secret/data/app#"), "empty key");
  CHECK_CONTAINS(whole_error("vault:#k"), "empty path");
  CHECK_CONTAINS(whole_error("vault:p#k#"), "1 to 10 digits");
  CHECK_CONTAINS(whole_error("vault:p#k#0"), "positive integer");
  CHECK_CONTAINS(whole_error("vault:p#k#00"), "positive integer");
  CHECK_CONTAINS(whole_error("vault:p#k#abc"), "'abc' is not a positive integer");
  CHECK_CONTAINS(whole_error("vault:p#k#-1"), "not a positive integer");
  CHECK_CONTAINS(whole_error("vault:p#k#12345678901"), "1 to 10 digits");
  CHECK_CONTAINS(whole_error("vault:p#k#1#2"), "not a positive integer");
  CHECK_CONTAINS(whole_error("vault:p#k}"), "key contains");
  CHECK_CONTAINS(whole_error("vault:p#a\nb"), "key contains");
  CHECK_CONTAINS(whole_error(std::string_view("vault:p#a\0b", 11)), "key contains");
}

TEST_CASE("paths that break the grammar are refused with a reason") {
  CHECK_CONTAINS(whole_error("vault:/secret/data/app#k"), "must not start with '/'");
  CHECK_CONTAINS(whole_error("vault:secret//app#k"), "empty segment");
  CHECK_CONTAINS(whole_error("vault:secret/app/#k"), "empty segment");
  CHECK_CONTAINS(whole_error("vault:secret/../sys/raw#k"), "'.' or '..' segment");
  CHECK_CONTAINS(whole_error("vault:secret/./app#k"), "'.' or '..' segment");
  CHECK_CONTAINS(whole_error("vault:..#k"), "'.' or '..' segment");
  CHECK_CONTAINS(whole_error("vault:secret/my app#k"), "' '");
  CHECK_CONTAINS(whole_error("vault:secret/app?version=2#k"), "'?'");
  CHECK_CONTAINS(whole_error("vault:a:b#k"), "':'");
  CHECK_CONTAINS(whole_error("vault:a%2Fb#k"), "'%'");
  CHECK_CONTAINS(whole_error("vault:a\nb#k"), "'\\n'");
}

TEST_CASE("validate_path accepts the grammar and refuses the rest") {
  CHECK(validate_path("secret/data/app").ok());
  CHECK(validate_path("kv/app").ok());
  CHECK(validate_path("database/creds/readonly").ok());
  CHECK(validate_path("x").ok());
  for (const char* bad :
       {"", "/", "/a", "a/", "a//b", ".", "..", "a/.", "a/..", "a b", "a\\b", "a#b", "a}b", "a*"}) {
    CAPTURE(bad);
    CHECK_FALSE(validate_path(bad).ok());
  }
}

TEST_CASE("parse_vault_ref parses the text after vault:") {
  auto r = parse_vault_ref("kv/app#user#12");
  REQUIRE(r.ok());
  CHECK(*r == VaultRef{"kv/app", "user", 12});
}

TEST_CASE("an embedded reference splits the text into literal and reference segments") {
  const Template t = tmpl("postgres://app:${vault:secret/data/app#password}@db/app");
  REQUIRE(t.segments.size() == 3);
  CHECK(t.segments[0].literal == "postgres://app:");
  CHECK_FALSE(t.segments[0].ref.has_value());
  REQUIRE(t.segments[1].ref.has_value());
  CHECK(std::get<VaultRef>(*t.segments[1].ref) == VaultRef{"secret/data/app", "password", {}});
  CHECK(t.segments[2].literal == "@db/app");
  CHECK(t.has_refs());
}

TEST_CASE("references may be adjacent, at the ends, or the whole text") {
  CHECK(shape(tmpl("${vault:a#x}${vault:b#y#2}")) == "<vault:a#x><vault:b#y#2>");
  CHECK(shape(tmpl("${vault:a#x}")) == "<vault:a#x>");
  CHECK(shape(tmpl("-${vault:a#x}-")) == "'-'<vault:a#x>'-'");
  CHECK(tmpl("").segments.empty());
  CHECK_FALSE(tmpl("").has_refs());
}

TEST_CASE("${secret:name} and ${secret:name#key} name manifest secrets") {
  const Template t = tmpl("u=${secret:db} k=${secret:aws#access_key} z=${secret:_x-1#a b}");
  CHECK(shape(t) == "'u='<secret:db>' k='<secret:aws#access_key>' z='<secret:_x-1#a b>");
  const auto& n = std::get<NamedRef>(*t.segments[1].ref);
  CHECK(n.name == "db");
  CHECK_FALSE(n.key.has_value());
}

TEST_CASE("${secret:...} is refused where no manifest can name it, with its column") {
  const std::string e = tmpl_error("abc ${secret:db}", NamedRefs::refused);
  CHECK_CONTAINS(e, "column 5");
  CHECK_CONTAINS(e, "needs a manifest");
}

TEST_CASE("bad secret names and keys are refused") {
  CHECK_CONTAINS(tmpl_error("${secret:}"), "must start with a letter");
  CHECK_CONTAINS(tmpl_error("${secret:1db}"), "must start with a letter");
  CHECK_CONTAINS(tmpl_error("${secret:d.b}"), "'d.b'");
  CHECK_CONTAINS(tmpl_error("${secret:db#}"), "empty key");
  CHECK_CONTAINS(tmpl_error("${secret:db#a#b}"), "key contains");
}

TEST_CASE("$${ before vault: or secret: is a literal ${") {
  const Template t = tmpl("echo $${vault:p#k} and $${secret:db}");
  CHECK_FALSE(t.has_refs());
  CHECK(shape(t) == "'echo ${vault:p#k} and ${secret:db}'");
  CHECK(shape(tmpl("$${vault:p#k}${vault:p#k}")) == "'${vault:p#k}'<vault:p#k>");
  // An escaped reference need not be well formed: it is text.
  CHECK(shape(tmpl("$${vault:oops")) == "'${vault:oops'");
}

TEST_CASE("shell-style ${VAR} and other dollar signs stay literal") {
  CHECK(shape(tmpl("${HOME}/x $PATH $$ $${HOME} ${vault")) ==
        "'${HOME}/x $PATH $$ $${HOME} ${vault'");
  CHECK(shape(tmpl("${VAULT:p#k} ${ vault:p#k}")) == "'${VAULT:p#k} ${ vault:p#k}'");
  CHECK_FALSE(tmpl("$100 {vault:p#k}").has_refs());
}

TEST_CASE("$$${vault: is a literal $ followed by an escaped ${") {
  // Scanning left to right, "$" is literal, then "$${" escapes.
  CHECK(shape(tmpl("$$${vault:p#k}")) == "'$${vault:p#k}'");
}

TEST_CASE("malformed embedded references are errors with 1-based columns") {
  std::string e = tmpl_error("x ${vault:secret/data/app}");
  CHECK_CONTAINS(e, "column 3");
  CHECK_CONTAINS(e, "missing '#<key>'");

  e = tmpl_error("${vault:p#k#0}");
  CHECK_CONTAINS(e, "column 1");
  CHECK_CONTAINS(e, "positive integer");

  e = tmpl_error("ok ${vault:p#k} then ${vault:/abs#k}");
  CHECK_CONTAINS(e, "column 22");
  CHECK_CONTAINS(e, "must not start with '/'");

  e = tmpl_error("abc ${vault:p#k");
  CHECK_CONTAINS(e, "column 5");
  CHECK_CONTAINS(e, "without a closing '}'");

  e = tmpl_error("${vault:a/../b#k}");
  CHECK_CONTAINS(e, "column 1");
  CHECK_CONTAINS(e, "'..'");
}

TEST_CASE("a reference's key ends at the first closing brace") {
  CHECK(shape(tmpl("${vault:p#k}}")) == "<vault:p#k>'}'");
}

TEST_CASE("looks_like_reference finds well-formed and malformed references") {
  CHECK(looks_like_reference("${vault:p#k}"));
  CHECK(looks_like_reference("--password=${vault:p#k}"));
  CHECK(looks_like_reference("${secret:db}"));
  CHECK(looks_like_reference("${vault:p}"));  // malformed: still refused in argv
  CHECK(looks_like_reference("${vault:p#k")); // unclosed
  CHECK_FALSE(looks_like_reference("plain"));
  CHECK_FALSE(looks_like_reference("${HOME}"));
  CHECK_FALSE(looks_like_reference("$${vault:p#k}"));
  CHECK_FALSE(looks_like_reference("vault:p#k")); // the whole-value form is for env only
}

TEST_CASE("describe writes references back as they are written") {
  CHECK(describe(Ref{VaultRef{"secret/data/app", "password", {}}}) ==
        "vault:secret/data/app#password");
  CHECK(describe(Ref{VaultRef{"p", "k", 3}}) == "vault:p#k#3");
  CHECK(describe(Ref{NamedRef{"db", {}}}) == "secret:db");
  CHECK(describe(Ref{NamedRef{"db", "user"}}) == "secret:db#user");
}

TEST_CASE("describe cuts a long path, key or name, for messages") {
  const std::string path = "secret/data/" + std::string(100000, 'p');
  const std::string key(100000, 'k');
  const std::string text = describe(Ref{whole("vault:" + path + "#" + key)});
  CHECK(text.size() < 300);
  CHECK(text.rfind("vault:secret/data/ppp", 0) == 0);
  CHECK_CONTAINS(text, "(100012 bytes)");
  CHECK_CONTAINS(text, "(100000 bytes)");
  CHECK(describe(Ref{whole("vault:secret/data/app#password#3")}) ==
        "vault:secret/data/app#password#3");
}

TEST_SUITE_END();
