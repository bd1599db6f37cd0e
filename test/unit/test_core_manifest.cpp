#include "crunchsecrets/core/manifest.hpp"
#include "crunchsecrets/util/fs.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

using namespace cs::core;
using cs::test::TempDir;

namespace {

// The README's example, with `template_file` pointing at `tmpl_path`.
std::string readme_yaml(const std::string& tmpl_path) {
  return fmt::format(R"(version: 1
auth:                        # optional defaults; command-line options win
  method: arvados            # auto | token | approle | wrapped | arvados
  role: etl                  # arvados role, or approle role-id (with method approle)
  mount: arvados
secrets:
  db:                        # name: [A-Za-z_][A-Za-z0-9_-]*
    path: secret/data/app    # API path (as in references)
    engine: kv2              # auto (default) | kv2 | kv1 | generic
    key: password            # optional: one field; absent = the whole object
    version: 3               # optional, kv2 only
  aws:
    path: secret/data/aws
env:                         # environment variables for the child (templates)
  DB_PASSWORD: ${{secret:db}}
  DB_URL: postgres://app:${{secret:db}}@db/app
  API_KEY: ${{vault:secret/data/api#key}}
files:                       # files in the secrets directory
  - path: db/password        # relative to the secrets directory
    secret: db               # value of the secret (its key), raw
  - path: aws/credentials
    secret: aws
    format: aws-credentials
    profile: default
  - path: app.env
    secret: aws
    format: dotenv
  - path: app.conf
    mode: "0440"             # default 0400
    template: |
      user = app
      password = ${{secret:db}}
  - path: other.conf
    template_file: {}
argv: false                  # true = same as --argv-templates
secrets_dir: /dev/shm/app    # optional
)",
                     tmpl_path);
}

std::string readme_json(const std::string& tmpl_path) {
  return fmt::format(R"({{
  "version": 1,
  "auth": {{"method": "arvados", "role": "etl", "mount": "arvados"}},
  "secrets": {{
    "db": {{"path": "secret/data/app", "engine": "kv2", "key": "password", "version": 3}},
    "aws": {{"path": "secret/data/aws"}}
  }},
  "env": {{
    "DB_PASSWORD": "${{secret:db}}",
    "DB_URL": "postgres://app:${{secret:db}}@db/app",
    "API_KEY": "${{vault:secret/data/api#key}}"
  }},
  "files": [
    {{"path": "db/password", "secret": "db"}},
    {{"path": "aws/credentials", "secret": "aws", "format": "aws-credentials", "profile": "default"}},
    {{"path": "app.env", "secret": "aws", "format": "dotenv"}},
    {{"path": "app.conf", "mode": "0440", "template": "user = app\npassword = ${{secret:db}}\n"}},
    {{"path": "other.conf", "template_file": "{}"}}
  ],
  "argv": false,
  "secrets_dir": "/dev/shm/app"
}}
)",
                     tmpl_path);
}

void check_readme_manifest(const Manifest& m, const std::string& tmpl_path) {
  CHECK(m.auth.method == AuthMethod::arvados);
  CHECK(m.auth.role == "etl");
  CHECK(m.auth.mount == "arvados");
  CHECK_FALSE(m.argv_templates);
  CHECK(m.secrets_dir == "/dev/shm/app");

  REQUIRE(m.secrets.size() == 2);
  const SecretSpec* db = m.find_secret("db");
  REQUIRE(db != nullptr);
  CHECK(db->path == "secret/data/app");
  CHECK(db->engine == Engine::kv2);
  CHECK(db->key == std::optional<std::string>("password"));
  CHECK(db->version == std::optional<std::uint64_t>(3));
  const SecretSpec* aws = m.find_secret("aws");
  REQUIRE(aws != nullptr);
  CHECK(aws->engine == Engine::automatic);
  CHECK_FALSE(aws->key.has_value());
  CHECK_FALSE(aws->version.has_value());
  CHECK(m.find_secret("nope") == nullptr);

  REQUIRE(m.env.size() == 3);
  // Order of a YAML map as written is not promised; find by name.
  auto env = [&](const std::string& name) -> const EnvSpec& {
    for (const auto& e : m.env) {
      if (e.name == name) {
        return e;
      }
    }
    FAIL("no env " << name);
    throw 0;
  };
  CHECK(env("DB_PASSWORD").value.segments.size() == 1);
  CHECK(env("DB_URL").value.segments.size() == 3);
  REQUIRE(env("API_KEY").value.segments.size() == 1);
  CHECK(std::get<VaultRef>(*env("API_KEY").value.segments[0].ref) ==
        VaultRef{"secret/data/api", "key", {}});

  REQUIRE(m.files.size() == 5);
  CHECK(m.files[0].path == "db/password");
  CHECK(m.files[0].format == FileFormat::raw);
  CHECK(m.files[0].mode == 0400);
  CHECK(std::get<NamedRef>(*m.files[0].source) == NamedRef{"db", {}});
  CHECK(m.files[1].format == FileFormat::aws_credentials);
  CHECK(m.files[1].section == "default");
  CHECK(m.files[2].format == FileFormat::dotenv);
  CHECK(m.files[3].format == FileFormat::templated);
  CHECK(m.files[3].mode == 0440);
  CHECK_FALSE(m.files[3].source.has_value());
  REQUIRE(m.files[3].body.segments.size() == 3);
  CHECK(m.files[3].body.segments[0].literal == "user = app\npassword = ");
  CHECK(m.files[3].body.segments[2].literal == "\n");
  CHECK(m.files[4].format == FileFormat::templated);
  CHECK(m.files[4].template_file == tmpl_path);
  CHECK(m.files[4].body.has_refs());
}

// Parses `content` and returns the error it must raise.
Error manifest_error(const std::string& content, const std::string& file = "m.yml") {
  auto e = cs::test::error_of([&] { parse_manifest(content, file, cs::util::read_file); });
  REQUIRE_MESSAGE(e.has_value(), "accepted:\n" << content);
  return *e;
}

// Checks that parsing fails with exit 65 at `file:line` and a message containing `text`.
void check_fails_at(const std::string& content, int line, const std::string& text) {
  const Error e = manifest_error(content);
  INFO("manifest:\n" << content);
  CHECK(cs::test::code_of(e) == 65);
  CHECK_CONTAINS(e.what(), fmt::format("m.yml:{}: ", line));
  CHECK_CONTAINS(e.what(), text);
}

const char* k_head = "version: 1\nsecrets:\n  db:\n    path: secret/data/app\n";

} // namespace

TEST_SUITE_BEGIN("core::Manifest");

TEST_CASE("the README example parses in YAML") {
  TempDir tmp;
  cs::test::write_text(tmp / "other.conf.tmpl", "other ${secret:aws#access_key} $${vault:x}\n");
  const Manifest m =
      parse_manifest(readme_yaml(tmp / "other.conf.tmpl"), "manifest.yml", cs::util::read_file);
  CHECK(m.file == "manifest.yml");
  check_readme_manifest(m, tmp / "other.conf.tmpl");
}

TEST_CASE("the README example parses in JSON") {
  TempDir tmp;
  cs::test::write_text(tmp / "other.conf.tmpl", "other ${secret:aws#access_key}\n");
  const Manifest m =
      parse_manifest(readme_json(tmp / "other.conf.tmpl"), "manifest.json", cs::util::read_file);
  check_readme_manifest(m, tmp / "other.conf.tmpl");
}

TEST_CASE("origins name file:line of each declaration") {
  TempDir tmp;
  cs::test::write_text(tmp / "t", "x");
  const Manifest m = parse_manifest(readme_yaml(tmp / "t"), "manifest.yml", cs::util::read_file);
  // The mapping of secret 'db' starts on line 8 (its first field).
  CHECK(m.find_secret("db")->origin == "manifest.yml:8");
  CHECK(m.files[0].origin == "manifest.yml:19");
  CHECK(m.files[3].origin == "manifest.yml:28");
}

TEST_CASE("load_manifest reads a file and names it in errors") {
  TempDir tmp;
  cs::test::write_text(tmp / "m.yml", "version: 1\nbogus: true\n");
  auto e = cs::test::error_of([&] { load_manifest(tmp / "m.yml"); });
  REQUIRE(e);
  CHECK(cs::test::code_of(*e) == 65);
  CHECK_CONTAINS(e->what(), tmp / "m.yml:2:");
}

TEST_CASE("a missing manifest file is exit 66") {
  auto e = cs::test::error_of([&] { load_manifest("/nonexistent/manifest.yml"); });
  REQUIRE(e);
  CHECK(cs::test::code_of(*e) == 66);
  CHECK_CONTAINS(e->what(), "/nonexistent/manifest.yml");
}

TEST_CASE("a minimal manifest is just the version") {
  const Manifest m = parse_manifest("version: 1\n", "m.yml");
  CHECK(m.secrets.empty());
  CHECK(m.env.empty());
  CHECK(m.files.empty());
  CHECK_FALSE(m.auth.method.has_value());
  CHECK(parse_manifest("{\"version\": 1}", "m.json").secrets.empty());
}

TEST_CASE("argv: true enables argument templates") {
  CHECK(parse_manifest("version: 1\nargv: true\n", "m.yml").argv_templates);
  check_fails_at("version: 1\nargv: yes\n", 2, "argv must be true or false");
}

TEST_CASE("unknown fields are errors with file and line") {
  check_fails_at("version: 1\nsecrets: {}\nbogus: 2\n", 3, "unknown field 'bogus' in the manifest");
  check_fails_at(std::string(k_head) + "    kee: password\n", 5,
                 "unknown field 'kee' in secret 'db'");
  check_fails_at("version: 1\nauth:\n  method: token\n  roles: x\n", 4,
                 "unknown field 'roles' in auth");
  check_fails_at(std::string(k_head) + "files:\n  - path: a\n    secret: db\n    modes: \"0400\"\n",
                 8, "unknown field 'modes' in a files entry");
}

TEST_CASE("unknown fields in JSON are reported with their line") {
  const std::string json = "{\n  \"version\": 1,\n  \"secrets\": {\n    \"db\": {\n      \"path\": "
                           "\"p\",\n      \"keyy\": \"x\"\n    }\n  }\n}\n";
  const Error e = manifest_error(json, "m.json");
  CHECK_CONTAINS(e.what(), "m.json:6: ");
  CHECK_CONTAINS(e.what(), "unknown field 'keyy'");
}

TEST_CASE("the version must be 1") {
  check_fails_at("secrets: {}\n", 1, "missing 'version: 1'");
  check_fails_at("# comment\n\nversion: 2\n", 3, "unsupported version");
  check_fails_at("version: [1]\n", 1, "version must be a string");
}

TEST_CASE("a manifest that is not a mapping is refused at line 1") {
  check_fails_at("- a\n- b\n", 1, "a manifest is a mapping");
  check_fails_at("", 1, "a manifest is a mapping");
  check_fails_at("just text", 1, "a manifest is a mapping");
}

TEST_CASE("YAML syntax errors name the line") {
  check_fails_at("version: 1\nsecrets:\n  db: {path: [unclosed\n", 4, "syntax error");
}

TEST_CASE("secrets need a valid name and a valid path") {
  check_fails_at("version: 1\nsecrets:\n  db:\n    engine: kv2\n", 4, "secret 'db' has no 'path'");
  check_fails_at("version: 1\nsecrets:\n  1db:\n    path: p\n", 3, "secret name '1db' must match");
  check_fails_at("version: 1\nsecrets:\n  d.b:\n    path: p\n", 3, "secret name 'd.b'");
  check_fails_at("version: 1\nsecrets:\n  db:\n    path: /secret/app\n", 4,
                 "must not start with '/'");
  check_fails_at("version: 1\nsecrets:\n  db:\n    path: secret/../sys\n", 4, "'..'");
  check_fails_at("version: 1\nsecrets:\n  db: secret/data/app\n", 3,
                 "secret 'db' must be a mapping");
  check_fails_at("version: 1\nsecrets:\n  - db\n", 3, "secrets must be a mapping");
  check_fails_at(std::string(k_head) + "    key: \"\"\n", 5, "key must not be empty");
}

TEST_CASE("engines and versions are checked") {
  check_fails_at(std::string(k_head) + "    engine: kv3\n", 5,
                 "engine 'kv3' is not one of auto, kv2, kv1, generic");
  check_fails_at(std::string(k_head) + "    version: 0\n", 5,
                 "version '0' must be a positive integer");
  check_fails_at(std::string(k_head) + "    version: latest\n", 5, "version 'latest'");
  check_fails_at(std::string(k_head) + "    version: -1\n", 5, "must be a positive integer");
  check_fails_at(std::string(k_head) + "    engine: kv1\n    version: 2\n", 6,
                 "version applies only to KV v2");
  check_fails_at(std::string(k_head) + "    engine: generic\n    version: 2\n", 6,
                 "version applies only to KV v2");
  const Manifest m = parse_manifest(std::string(k_head) + "    engine: generic\n", "m.yml");
  CHECK(m.secrets[0].engine == Engine::generic);
  CHECK(parse_manifest(std::string(k_head) + "    engine: kv1\n", "m.yml").secrets[0].engine ==
        Engine::kv1);
  CHECK(parse_manifest(std::string(k_head) + "    engine: auto\n    version: 4\n", "m.yml")
            .secrets[0]
            .version == std::optional<std::uint64_t>(4));
}

TEST_CASE("a secret declared twice is an error") {
  // Duplicate keys in a YAML mapping are either a syntax error or reported by name.
  const Error e = manifest_error("version: 1\nsecrets:\n  db:\n    path: a\n  db:\n    path: b\n");
  CHECK(cs::test::code_of(e) == 65);
  CHECK_CONTAINS(e.what(), "m.yml:5: ");
}

TEST_CASE("auth methods and mounts are checked") {
  check_fails_at("version: 1\nauth:\n  method: kerberos\n", 3, "auth method 'kerberos'");
  check_fails_at("version: 1\nauth:\n  mount: /approle\n", 3, "auth.mount");
  check_fails_at("version: 1\nauth: token\n", 2, "auth must be a mapping");
  const Manifest m = parse_manifest("version: 1\nauth:\n  method: approle\n  role: r1\n  mount: "
                                    "approle-ci\n",
                                    "m.yml");
  CHECK(m.auth.method == AuthMethod::approle);
  CHECK(m.auth.role == "r1");
  CHECK(m.auth.mount == "approle-ci");
}

TEST_CASE("env names and templates are checked") {
  check_fails_at("version: 1\nenv:\n  1BAD: x\n", 3, "'1BAD' is not a valid environment variable");
  check_fails_at("version: 1\nenv:\n  A-B: x\n", 3, "'A-B' is not a valid");
  check_fails_at("version: 1\nenv:\n  A: x\n  B: ${vault:secret/data/app}\n", 4,
                 "env B: column 1: missing '#<key>'");
  check_fails_at("version: 1\nenv:\n  A: [1]\n", 3, "env A must be a string");
  check_fails_at("version: 1\nenv:\n  - A=1\n", 3, "env must be a mapping");
  const Manifest m = parse_manifest("version: 1\nenv:\n  PLAIN: no refs here\n", "m.yml");
  REQUIRE(m.env.size() == 1);
  CHECK_FALSE(m.env[0].value.has_refs());
  CHECK(m.env[0].origin == "m.yml:3");
}

TEST_CASE("undeclared secret names are errors where they are used") {
  check_fails_at(std::string(k_head) + "env:\n  A: ${secret:nope}\n", 6,
                 "'${secret:nope}' names a secret not declared");
  check_fails_at(std::string(k_head) + "files:\n  - path: f\n    secret: nope\n", 7,
                 "secret 'nope' is not declared under 'secrets'");
  check_fails_at(std::string(k_head) + "files:\n  - path: f\n    template: \"x ${secret:nope}\"\n",
                 7, "'${secret:nope}'");
}

TEST_CASE("secrets must be declared before files use them, whatever the field order") {
  // 'files' is read after 'secrets' even if written first.
  const Manifest m = parse_manifest(
      "version: 1\nfiles:\n  - path: f\n    secret: db\nsecrets:\n  db:\n    path: p\n", "m.yml");
  CHECK(m.files.size() == 1);
}

TEST_CASE("file paths must stay inside the secrets directory") {
  const std::string head = std::string(k_head) + "files:\n  - secret: db\n    path: ";
  check_fails_at(head + "../escape\n", 7, "file path '../escape'");
  check_fails_at(head + "a/../../escape\n", 7, "'..'");
  check_fails_at(head + "/etc/passwd\n", 7, "absolute path");
  check_fails_at(head + "a//b\n", 7, "empty path segment");
  check_fails_at(head + "./a\n", 7, "'.'");
  check_fails_at(std::string(k_head) + "files:\n  - secret: db\n", 6, "files entry has no 'path'");
}

TEST_CASE("modes are octal, owner-readable and at most 0640") {
  const std::string head = std::string(k_head) + "files:\n  - secret: db\n    path: f\n    mode: ";
  check_fails_at(head + "\"0644\"\n", 8, "mode 0644 is too open");
  check_fails_at(head + "\"0777\"\n", 8, "too open");
  check_fails_at(head + "\"4400\"\n", 8, "too open");
  check_fails_at(head + "\"0040\"\n", 8, "does not let the owner read");
  check_fails_at(head + "\"0000\"\n", 8, "does not let the owner read");
  check_fails_at(head + "\"0o400\"\n", 8, "must be octal");
  check_fails_at(head + "\"0480\"\n", 8, "must be octal");
  check_fails_at(head + "\"\"\n", 8, "must be octal");
  check_fails_at(head + "\"00400\"\n", 8, "must be octal");
  check_fails_at(head + "rw\n", 8, "must be octal");
  for (const auto& [text, mode] :
       std::initializer_list<std::pair<const char*, unsigned>>{{"\"0400\"", 0400},
                                                               {"\"0440\"", 0440},
                                                               {"\"0640\"", 0640},
                                                               {"\"0600\"", 0600},
                                                               {"\"400\"", 0400},
                                                               {"0440", 0440}}) {
    CAPTURE(text);
    const Manifest m = parse_manifest(head + text + "\n", "m.yml");
    CHECK(m.files[0].mode == mode);
  }
}

TEST_CASE("formats and their options are checked") {
  const std::string head = std::string(k_head) + "files:\n  - secret: db\n    path: f\n";
  check_fails_at(head + "    format: yaml\n", 8, "format 'yaml' is not one of");
  check_fails_at(head + "    format: raw\n    profile: p\n", 9,
                 "'profile' goes with format aws-credentials");
  check_fails_at(head + "    format: raw\n    section: s\n", 9, "'section' goes with format ini");
  check_fails_at(head + "    format: ini\n    section: \"a]b\"\n", 6,
                 "must not contain '[', ']' or a newline");
  check_fails_at(head + "    format: template\n", 8, "format 'template' needs 'template'");
  const Manifest m =
      parse_manifest(head + "    format: ini\n    section: creds\n    key: x\n", "m.yml");
  CHECK(m.files[0].format == FileFormat::ini);
  CHECK(m.files[0].section == "creds");
  CHECK(std::get<NamedRef>(*m.files[0].source) == NamedRef{"db", "x"});
  CHECK(parse_manifest(head + "    format: json\n", "m.yml").files[0].format == FileFormat::json);
  CHECK(parse_manifest(head + "    format: ini\n", "m.yml").files[0].section == "default");
}

TEST_CASE("a files entry takes exactly one source") {
  const std::string head = std::string(k_head) + "files:\n  - path: f\n";
  check_fails_at(head + "    mode: \"0400\"\n", 6,
                 "exactly one of 'secret', 'template', 'template_file'");
  check_fails_at(head + "    secret: db\n    template: x\n", 6, "exactly one of");
  check_fails_at(head + "    template: x\n    format: raw\n", 8, "go with format 'template'");
  check_fails_at(head + "    template: x\n    key: k\n", 8, "'key' goes with 'secret'");
  check_fails_at(head + "    template: \"${vault:p}\"\n", 7, "template: column 1");
  check_fails_at(std::string(k_head) + "files:\n  path: f\n", 6, "files must be a list");
}

TEST_CASE("a file listed twice is an error at the second entry") {
  check_fails_at(std::string(k_head) +
                     "files:\n  - path: f\n    secret: db\n  - path: f\n    template: x\n",
                 8, "file 'f' is listed twice");
}

TEST_CASE("a missing template_file is exit 66 with the manifest line") {
  const Error e = manifest_error(std::string(k_head) +
                                 "files:\n  - path: f\n    template_file: /nonexistent/t.tmpl\n");
  CHECK(cs::test::code_of(e) == 66);
  CHECK_CONTAINS(e.what(), "m.yml:7: ");
  CHECK_CONTAINS(e.what(), "/nonexistent/t.tmpl");
}

TEST_CASE("a bad reference in a template_file names that file and the manifest line") {
  TempDir tmp;
  cs::test::write_text(tmp / "t.tmpl", "line\n${vault:broken}\n");
  const Error e = manifest_error(
      std::string(k_head) + "files:\n  - path: f\n    template_file: " + (tmp / "t.tmpl") + "\n");
  CHECK(cs::test::code_of(e) == 65);
  CHECK_CONTAINS(e.what(), tmp / "t.tmpl");
  CHECK_CONTAINS(e.what(), "m.yml:7");
}

TEST_CASE("an undeclared secret in a template_file is reported at the manifest line") {
  TempDir tmp;
  cs::test::write_text(tmp / "t.tmpl", "${secret:ghost}\n");
  check_fails_at(std::string(k_head) +
                     "files:\n  - path: f\n    template_file: " + (tmp / "t.tmpl") + "\n",
                 7, "'${secret:ghost}'");
}

TEST_CASE("parse_manifest is pure: template files come only from the injected reader") {
  std::vector<std::string> asked;
  const auto reader = [&](const std::string& path) -> cs::util::Result<std::string> {
    asked.push_back(path);
    return std::string("in memory ${secret:db}\n");
  };
  const Manifest m =
      parse_manifest(std::string(k_head) + "files:\n  - path: f\n    template_file: /no/such/t\n",
                     "m.yml", reader);
  CHECK(asked == std::vector<std::string>{"/no/such/t"});
  REQUIRE(m.files.size() == 1);
  CHECK(m.files[0].template_file == "/no/such/t");
  REQUIRE(m.files[0].body.segments.size() == 3);
  CHECK(m.files[0].body.segments[0].literal == "in memory ");
}

TEST_CASE("without a reader a template_file is refused with the manifest line") {
  TempDir tmp;
  cs::test::write_text(tmp / "t.tmpl", "x\n");
  auto e = cs::test::error_of([&] {
    parse_manifest(std::string(k_head) +
                       "files:\n  - path: f\n    template_file: " + (tmp / "t.tmpl") + "\n",
                   "m.yml");
  });
  REQUIRE(e);
  CHECK(cs::test::code_of(*e) == 66);
  CHECK_CONTAINS(e->what(), "m.yml:7: ");
}

TEST_CASE("is_env_name follows the shell's rules") {
  CHECK(is_env_name("A"));
  CHECK(is_env_name("_a1"));
  CHECK(is_env_name("DB_PASSWORD"));
  CHECK_FALSE(is_env_name(""));
  CHECK_FALSE(is_env_name("1A"));
  CHECK_FALSE(is_env_name("A-B"));
  CHECK_FALSE(is_env_name("A B"));
  CHECK_FALSE(is_env_name("A=B"));
}

TEST_CASE("to_string names engines and formats as the manifest spells them") {
  CHECK(to_string(Engine::automatic) == "auto");
  CHECK(to_string(Engine::kv2) == "kv2");
  CHECK(to_string(FileFormat::aws_credentials) == "aws-credentials");
  CHECK(to_string(FileFormat::templated) == "template");
}

TEST_CASE("an error echoes only an excerpt of a long value, marked as cut") {
  const std::string big(1 << 20, 'x');
  const std::string key(1000, 'x'); // YAML takes a mapping key of at most 1024 characters
  for (const std::string& content :
       {"version: 1\nauth:\n  method: " + big + "\n", "version: 1\n" + key + ": 1\n",
        "version: 1\nsecrets:\n  -" + key + ":\n    path: a\n",
        "version: 1\nenv:\n  A: ${secret:" + big + "}\n",
        "version: 1\nfiles:\n  - path: ../" + big + "\n    template: t\n",
        "version: 1\nfiles:\n  - path: f\n    secret: " + big + "\n"}) {
    const Error e = manifest_error(content);
    const std::string what = e.what();
    CAPTURE(what.substr(0, 300));
    CHECK(cs::test::code_of(e) == 65);
    CHECK(what.size() < 300);
    CHECK_CONTAINS(what, "xxxxxxxx");
    CHECK_CONTAINS(what, " bytes)");
  }
}

TEST_SUITE_END();
