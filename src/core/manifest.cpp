#include "crunchsecrets/core/manifest.hpp"

#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/supervise.hpp"
#include "crunchsecrets/util/duration.hpp"
#include "crunchsecrets/util/fs.hpp"
#include "crunchsecrets/util/text.hpp"

#include <algorithm>
#include <set>
#include <yaml-cpp/yaml.h>

namespace cs::core {

namespace {

// Reads one manifest; every error names file:line.
class Reader {
public:
  Reader(std::string file, const TemplateReader& read_template)
      : m_file(std::move(file)), m_read_template(read_template) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& message) const {
    throw Error(ExitCode::invalid_input, "{}:{}: {}", m_file, line(node), message);
  }
  std::string origin(const YAML::Node& node) const {
    return fmt::format("{}:{}", m_file, line(node));
  }
  static int line(const YAML::Node& node) { return node.Mark().line + 1; }

  void expect_map(const YAML::Node& node, const std::string& what) const {
    if (!node.IsMap()) {
      fail(node, fmt::format("{} must be a mapping", what));
    }
  }
  void check_keys(const YAML::Node& node, const std::set<std::string>& allowed,
                  const std::string& what) const {
    for (const auto& kv : node) {
      const auto key = kv.first.as<std::string>();
      if (allowed.count(key) == 0) {
        std::string list;
        for (const auto& a : allowed) {
          list += (list.empty() ? "" : ", ") + a;
        }
        fail(kv.first,
             fmt::format("unknown field '{}' in {} (known: {})", util::excerpt(key), what, list));
      }
    }
  }
  std::string scalar(const YAML::Node& node, const std::string& what) const {
    if (!node.IsScalar()) {
      fail(node, fmt::format("{} must be a string", what));
    }
    return node.Scalar();
  }
  bool boolean(const YAML::Node& node, const std::string& what) const {
    const std::string s = scalar(node, what);
    if (s == "true") {
      return true;
    }
    if (s == "false") {
      return false;
    }
    fail(node, fmt::format("{} must be true or false", what));
  }
  // The value of `result`, or a failure at `node` reading "<context>: <error>".
  template <typename T>
  T value_or_fail(util::Result<T>&& result, const YAML::Node& node,
                  const std::string& context) const {
    if (!result) {
      fail(node, fmt::format("{}: {}", context, result.error()));
    }
    return std::move(result).value();
  }
  void ok_or_fail(const util::Status& status, const YAML::Node& node,
                  const std::string& context) const {
    if (!status) {
      fail(node, fmt::format("{}: {}", context, status.error()));
    }
  }
  Template tmpl(const YAML::Node& node, const std::string& what) const {
    return value_or_fail(parse_template(scalar(node, what), NamedRefs::allowed), node, what);
  }

  const std::string& file() const { return m_file; }
  util::Result<std::string> read_template(const std::string& path) const {
    return m_read_template(path);
  }

private:
  std::string m_file;
  const TemplateReader& m_read_template;
};

// The enumerator `node` names in `table`; fails with "<what> 'x' is not one of a, b, c".
template <typename E>
E parse_name(const Reader& r, const YAML::Node& node, const util::NameTable<E>& table,
             const std::string& field, const std::string& what) {
  const std::string s = r.scalar(node, field);
  const std::optional<E> value = table.parse(s);
  if (!value) {
    r.fail(node, fmt::format("{} '{}' is not one of {}", what, util::excerpt(s), table.list()));
  }
  return *value;
}

std::chrono::milliseconds parse_interval(const Reader& r, const YAML::Node& node,
                                         const std::string& what) {
  auto d = util::parse_duration(r.scalar(node, what));
  if (!d) {
    r.fail(node, fmt::format("{}: {}", what, d.error()));
  }
  return *d;
}

int parse_signal(const Reader& r, const YAML::Node& node, const std::string& what) {
  const std::string s = r.scalar(node, what);
  const auto signo = signal_from(s);
  if (!signo) {
    r.fail(node, fmt::format("{} '{}' is not a signal name (HUP, USR1, TERM...) or number", what,
                             util::excerpt(s)));
  }
  return *signo;
}

// A secret's supervise-mode fields: refresh, on_change, signal.
void parse_secret_supervise(const Reader& r, const YAML::Node& node, SecretSpec& spec) {
  if (node["refresh"]) {
    spec.refresh = parse_interval(r, node["refresh"], "refresh");
  }
  if (node["on_change"]) {
    spec.on_change = r.scalar(node["on_change"], "on_change");
    if (!change_action_from(spec.on_change)) {
      r.fail(node["on_change"], fmt::format("on_change '{}' is not one of signal, restart, none",
                                            util::excerpt(spec.on_change)));
    }
  }
  if (node["signal"]) {
    if (!spec.on_change.empty() && spec.on_change != "signal") {
      r.fail(node["signal"], "'signal' goes with on_change: signal");
    }
    spec.change_signal = parse_signal(r, node["signal"], "signal");
  }
}

SuperviseSpec parse_supervise(const Reader& r, const YAML::Node& node) {
  SuperviseSpec s;
  s.present = true;
  if (node.IsNull()) {
    return s;
  }
  r.expect_map(node, "supervise");
  r.check_keys(node, {"stop_signal", "grace", "on_expiry", "signal_group", "redact"}, "supervise");
  if (node["stop_signal"]) {
    s.stop_signal = parse_signal(r, node["stop_signal"], "supervise.stop_signal");
  }
  if (node["grace"]) {
    s.grace = parse_interval(r, node["grace"], "supervise.grace");
  }
  if (node["on_expiry"]) {
    s.on_expiry = r.scalar(node["on_expiry"], "supervise.on_expiry");
    if (!expiry_action_from(s.on_expiry)) {
      r.fail(node["on_expiry"],
             fmt::format("on_expiry '{}' is not one of stop, keep", util::excerpt(s.on_expiry)));
    }
  }
  if (node["signal_group"]) {
    s.signal_group = r.boolean(node["signal_group"], "supervise.signal_group");
  }
  if (node["redact"]) {
    s.redact = r.boolean(node["redact"], "supervise.redact");
  }
  return s;
}

// A secret with `source: arvados-credential`: `credential:` (uuid or name) and an optional
// `key:` (secret or external_id); none of the Vault fields.
SecretSpec parse_arvados_secret(const Reader& r, const std::string& name, const YAML::Node& node,
                                SecretSpec spec) {
  for (const char* vault_only : {"path", "engine", "version", "refresh"}) {
    if (node[vault_only]) {
      r.fail(node[vault_only],
             fmt::format("'{}' does not go with source: arvados-credential", vault_only));
    }
  }
  if (!node["credential"]) {
    r.fail(node, fmt::format("secret '{}' has source: arvados-credential but no 'credential' "
                             "(a credential uuid or name)",
                             util::excerpt(name)));
  }
  spec.credential = r.scalar(node["credential"], "credential");
  if (auto c = arvados::parse_credential_ref("credential/" + spec.credential + "#secret"); !c) {
    r.fail(node["credential"], fmt::format("secret '{}': {}", util::excerpt(name), c.error()));
  }
  if (node["key"]) {
    spec.key = r.scalar(node["key"], "key");
    if (*spec.key != "secret" && *spec.key != "external_id") {
      r.fail(node["key"], "the key of an Arvados credential is 'secret' or 'external_id'");
    }
  }
  return spec;
}

SecretSpec parse_secret(const Reader& r, const std::string& name, const YAML::Node& node) {
  r.expect_map(node, fmt::format("secret '{}'", util::excerpt(name)));
  r.check_keys(node,
               {"path", "engine", "key", "version", "refresh", "on_change", "signal", "source",
                "credential"},
               fmt::format("secret '{}'", util::excerpt(name)));
  SecretSpec spec;
  spec.name = name;
  spec.origin = r.origin(node);
  const std::string source = node["source"] ? r.scalar(node["source"], "source") : "vault";
  if (source == "arvados-credential") {
    return parse_arvados_secret(r, name, node, std::move(spec));
  }
  if (source != "vault") {
    r.fail(node["source"], fmt::format("source '{}' is not one of vault, arvados-credential",
                                       util::excerpt(source)));
  }
  if (node["credential"]) {
    r.fail(node["credential"], "'credential' goes with source: arvados-credential");
  }
  if (!node["path"]) {
    r.fail(node, fmt::format("secret '{}' has no 'path'", util::excerpt(name)));
  }
  spec.path = r.scalar(node["path"], "path");
  r.ok_or_fail(validate_path(spec.path), node["path"],
               fmt::format("secret '{}'", util::excerpt(name)));
  if (node["engine"]) {
    spec.engine = parse_name(r, node["engine"], engine_names(), "engine", "engine");
  }
  if (node["key"]) {
    spec.key = r.scalar(node["key"], "key");
    if (spec.key->empty()) {
      r.fail(node["key"], "key must not be empty");
    }
  }
  if (node["version"]) {
    const std::string v = r.scalar(node["version"], "version");
    auto parsed = parse_version(v);
    if (!parsed) {
      r.fail(node["version"],
             fmt::format("version '{}' must be a positive integer", util::excerpt(v)));
    }
    spec.version = *parsed;
    if (spec.engine == Engine::kv1 || spec.engine == Engine::generic) {
      r.fail(node["version"], "version applies only to KV v2 (engine kv2 or auto)");
    }
  }
  parse_secret_supervise(r, node, spec);
  return spec;
}

unsigned parse_mode(const Reader& r, const YAML::Node& node) {
  const std::string s = r.scalar(node, "mode");
  if (s.empty() || s.size() > 4) {
    r.fail(node, fmt::format("mode '{}' must be octal like \"0400\"", util::excerpt(s)));
  }
  unsigned mode = 0;
  for (char c : s) {
    if (c < '0' || c > '7') {
      r.fail(node, fmt::format("mode '{}' must be octal like \"0400\" (quote it in YAML)",
                               util::excerpt(s)));
    }
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  if ((mode & ~0640u) != 0) {
    r.fail(node, fmt::format("mode {:04o} is too open: secret files allow at most 0640 (owner "
                             "read/write, group read)",
                             mode));
  }
  if ((mode & 0400u) == 0) {
    r.fail(node, fmt::format("mode {:04o} does not let the owner read the file", mode));
  }
  return mode;
}

// The template of a files entry, inline or read through the reader from `template_file`.
Template parse_file_template(const Reader& r, FileSpec& f, const YAML::Node& node) {
  if (node["template"]) {
    return r.tmpl(node["template"], "template");
  }
  f.template_file = r.scalar(node["template_file"], "template_file");
  const int line = Reader::line(node["template_file"]);
  auto text = r.read_template(f.template_file);
  if (!text) {
    // The reader's error names the path, which the manifest chose: shown cut to a sane length,
    // with the reason after it kept.
    std::string why = text.error();
    if (const std::size_t at = why.find(f.template_file); at != std::string::npos) {
      why.replace(at, f.template_file.size(), util::excerpt(f.template_file));
    }
    throw Error(ExitCode::no_input, "{}:{}: {}: check the template_file path", r.file(), line,
                util::excerpt(why, 256));
  }
  return value_or_throw(parse_template(*text, NamedRefs::allowed), ExitCode::invalid_input,
                        "{0}: {3} (template_file of {1}:{2})", util::excerpt(f.template_file),
                        r.file(), line);
}

// Where a files entry's content comes from: a template, or a declared secret (and key).
void parse_file_source(const Reader& r, const Manifest& m, FileSpec& f, const YAML::Node& node) {
  const bool has_template = node["template"] || node["template_file"];
  if (has_template) {
    if (f.format != FileFormat::templated) {
      r.fail(node["format"], "'template'/'template_file' go with format 'template'");
    }
    if (node["key"]) {
      r.fail(node["key"], "'key' goes with 'secret', not with a template");
    }
    f.body = parse_file_template(r, f, node);
    return;
  }
  if (f.format == FileFormat::templated) {
    r.fail(node["format"], "format 'template' needs 'template' or 'template_file'");
  }
  const std::string name = r.scalar(node["secret"], "secret");
  if (m.find_secret(name) == nullptr) {
    r.fail(node["secret"],
           fmt::format("secret '{}' is not declared under 'secrets'", util::excerpt(name)));
  }
  NamedRef ref{name, std::nullopt};
  if (node["key"]) {
    ref.key = r.scalar(node["key"], "key");
  }
  f.source = Ref{std::move(ref)};
}

// The ini section or aws-credentials profile of a files entry ("default" unless given).
std::string parse_file_section(const Reader& r, const FileSpec& f, const YAML::Node& node) {
  if (node["profile"] && f.format != FileFormat::aws_credentials) {
    r.fail(node["profile"], "'profile' goes with format aws-credentials");
  }
  if (node["section"] && f.format != FileFormat::ini) {
    r.fail(node["section"], "'section' goes with format ini");
  }
  std::string section = "default";
  if (node["profile"]) {
    section = r.scalar(node["profile"], "profile");
  }
  if (node["section"]) {
    section = r.scalar(node["section"], "section");
  }
  for (char c : section) {
    if (c == '[' || c == ']' || c == '\n' || c == '\r') {
      r.fail(node, "profile/section must not contain '[', ']' or a newline");
    }
  }
  return section;
}

FileSpec parse_file(const Reader& r, const Manifest& m, const YAML::Node& node) {
  r.expect_map(node, "a files entry");
  r.check_keys(node,
               {"path", "secret", "key", "format", "template", "template_file", "mode", "profile",
                "section"},
               "a files entry");
  FileSpec f;
  f.origin = r.origin(node);
  if (!node["path"]) {
    r.fail(node, "files entry has no 'path'");
  }
  f.path = r.scalar(node["path"], "path");
  (void)r.value_or_fail(util::split_safe_relative_path(f.path), node["path"],
                        fmt::format("file path '{}'", util::excerpt(f.path)));
  const int sources = static_cast<int>(static_cast<bool>(node["template"])) +
                      static_cast<int>(static_cast<bool>(node["template_file"])) +
                      static_cast<int>(static_cast<bool>(node["secret"]));
  if (sources != 1) {
    r.fail(node, "a files entry needs exactly one of 'secret', 'template', 'template_file'");
  }
  if (node["format"]) {
    f.format = parse_name(r, node["format"], file_format_names(), "format", "format");
  } else if (!node["secret"]) {
    f.format = FileFormat::templated;
  }
  parse_file_source(r, m, f, node);
  f.section = parse_file_section(r, f, node);
  if (node["mode"]) {
    f.mode = parse_mode(r, node["mode"]);
  }
  return f;
}

// Checks that every `${secret:NAME}` in `t` names a declared secret.
void check_named(const Reader& r, const Manifest& m, const YAML::Node& node, const Template& t) {
  for (const auto& seg : t.segments) {
    if (seg.ref) {
      if (const auto* n = std::get_if<NamedRef>(&*seg.ref);
          n && m.find_secret(n->name) == nullptr) {
        r.fail(node, fmt::format("'${{secret:{}}}' names a secret not declared under 'secrets'",
                                 util::excerpt(n->name)));
      }
    }
  }
}

} // namespace

const util::NameTable<Engine>& engine_names() {
  static const util::NameTable<Engine> table{{Engine::automatic, "auto"},
                                             {Engine::kv2, "kv2"},
                                             {Engine::kv1, "kv1"},
                                             {Engine::generic, "generic"}};
  return table;
}

std::string_view to_string(Engine engine) {
  return engine_names().name(engine);
}

const util::NameTable<FileFormat>& file_format_names() {
  static const util::NameTable<FileFormat> table{{FileFormat::raw, "raw"},
                                                 {FileFormat::json, "json"},
                                                 {FileFormat::dotenv, "dotenv"},
                                                 {FileFormat::ini, "ini"},
                                                 {FileFormat::aws_credentials, "aws-credentials"},
                                                 {FileFormat::templated, "template"}};
  return table;
}

std::string_view to_string(FileFormat format) {
  return file_format_names().name(format);
}

const util::NameTable<AuthMethod>& auth_method_names() {
  static const util::NameTable<AuthMethod> table{{AuthMethod::automatic, "auto"},
                                                 {AuthMethod::token, "token"},
                                                 {AuthMethod::approle, "approle"},
                                                 {AuthMethod::wrapped, "wrapped"},
                                                 {AuthMethod::arvados, "arvados"}};
  return table;
}

std::string_view to_string(AuthMethod method) {
  return auth_method_names().name(method);
}

bool Manifest::wants_supervise() const {
  return supervise.present || std::any_of(secrets.begin(), secrets.end(), [](const SecretSpec& s) {
           return s.refresh.has_value() || !s.on_change.empty();
         });
}

const SecretSpec* Manifest::find_secret(std::string_view name) const {
  for (const auto& s : secrets) {
    if (s.name == name) {
      return &s;
    }
  }
  return nullptr;
}

bool is_env_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) {
    return false;
  }
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

namespace {

void parse_auth(const Reader& r, Manifest& m, const YAML::Node& auth) {
  r.expect_map(auth, "auth");
  r.check_keys(auth, {"method", "role", "mount"}, "auth");
  if (auth["method"]) {
    m.auth.method =
        parse_name(r, auth["method"], auth_method_names(), "auth.method", "auth method");
  }
  if (auth["role"]) {
    m.auth.role = r.scalar(auth["role"], "auth.role");
  }
  if (auth["mount"]) {
    m.auth.mount = r.scalar(auth["mount"], "auth.mount");
    r.ok_or_fail(validate_path(m.auth.mount), auth["mount"], "auth.mount");
  }
}

void parse_secrets(const Reader& r, Manifest& m, const YAML::Node& secrets) {
  r.expect_map(secrets, "secrets");
  for (const auto& kv : secrets) {
    const auto name = kv.first.as<std::string>();
    if (!is_secret_name(name)) {
      r.fail(kv.first, fmt::format("secret name '{}' must match [A-Za-z_][A-Za-z0-9_-]*",
                                   util::excerpt(name)));
    }
    if (m.find_secret(name) != nullptr) {
      r.fail(kv.first, fmt::format("secret '{}' is declared twice", util::excerpt(name)));
    }
    m.secrets.push_back(parse_secret(r, name, kv.second));
  }
}

void parse_env(const Reader& r, Manifest& m, const YAML::Node& env) {
  r.expect_map(env, "env");
  std::set<std::string> seen;
  for (const auto& kv : env) {
    const auto name = kv.first.as<std::string>();
    if (!is_env_name(name)) {
      r.fail(kv.first,
             fmt::format("'{}' is not a valid environment variable name", util::excerpt(name)));
    }
    if (!seen.insert(name).second) {
      r.fail(kv.first, fmt::format("environment variable '{}' is set twice", util::excerpt(name)));
    }
    EnvSpec e{name, r.tmpl(kv.second, fmt::format("env {}", util::excerpt(name))),
              r.origin(kv.second)};
    check_named(r, m, kv.second, e.value);
    m.env.push_back(std::move(e));
  }
}

void parse_files(const Reader& r, Manifest& m, const YAML::Node& files) {
  if (!files.IsSequence()) {
    r.fail(files, "files must be a list");
  }
  std::set<std::string> seen;
  for (const auto& node : files) {
    FileSpec f = parse_file(r, m, node);
    if (!seen.insert(f.path).second) {
      r.fail(node, fmt::format("file '{}' is listed twice", util::excerpt(f.path)));
    }
    if (f.format == FileFormat::templated && f.template_file.empty()) {
      check_named(r, m, node["template"], f.body);
    } else if (f.format == FileFormat::templated) {
      check_named(r, m, node["template_file"], f.body);
    }
    m.files.push_back(std::move(f));
  }
}

void parse_root(const Reader& r, Manifest& m, const YAML::Node& root) {
  if (!root.IsMap()) {
    throw Error(ExitCode::invalid_input, "{}:1: a manifest is a mapping with 'version: 1'",
                r.file());
  }
  r.check_keys(root,
               {"version", "auth", "secrets", "env", "files", "argv", "secrets_dir", "supervise"},
               "the manifest");
  if (!root["version"]) {
    r.fail(root, "missing 'version: 1'");
  }
  if (r.scalar(root["version"], "version") != "1") {
    r.fail(root["version"], "unsupported version: this crunch-secrets reads version 1");
  }
  if (const auto auth = root["auth"]) {
    parse_auth(r, m, auth);
  }
  if (const auto secrets = root["secrets"]) {
    parse_secrets(r, m, secrets);
  }
  if (const auto env = root["env"]) {
    parse_env(r, m, env);
  }
  if (const auto files = root["files"]) {
    parse_files(r, m, files);
  }
  if (root["argv"]) {
    m.argv_templates = r.boolean(root["argv"], "argv");
  }
  if (root["secrets_dir"]) {
    m.secrets_dir = r.scalar(root["secrets_dir"], "secrets_dir");
  }
  if (root["supervise"]) {
    m.supervise = parse_supervise(r, root["supervise"]);
  }
}

} // namespace

Manifest parse_manifest(std::string_view content, const std::string& file,
                        const TemplateReader& read_template) {
  Reader r(file, read_template);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(content));
  } catch (const YAML::ParserException& e) {
    throw Error(ExitCode::invalid_input, "{}:{}: syntax error: {}", file, e.mark.line + 1, e.msg);
  }
  Manifest m;
  m.file = file;
  try {
    parse_root(r, m, root);
  } catch (const YAML::Exception& e) {
    throw Error(ExitCode::invalid_input, "{}:{}: {}", file, e.mark.line + 1, e.msg);
  }
  return m;
}

Manifest parse_manifest(std::string_view content, const std::string& file) {
  return parse_manifest(content, file, [](const std::string&) -> util::Result<std::string> {
    return util::err("template_file is not read when parsing a manifest from memory");
  });
}

Manifest load_manifest(const std::string& path) {
  const std::string text =
      value_or_throw(util::read_file(path), ExitCode::no_input,
                     "{}: check the --manifest path or $CRUNCH_SECRETS_MANIFEST");
  return parse_manifest(text, path, util::read_file);
}

} // namespace cs::core
