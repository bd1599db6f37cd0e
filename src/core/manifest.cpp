#include "crunchsecrets/core/manifest.hpp"

#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/supervise.hpp"
#include "crunchsecrets/util/duration.hpp"
#include "crunchsecrets/util/fs.hpp"

#include <algorithm>
#include <set>
#include <yaml-cpp/yaml.h>

namespace cs::core {

namespace {

// Reads one manifest; every error names file:line.
class Reader {
public:
  explicit Reader(std::string file) : m_file(std::move(file)) {}

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
        fail(kv.first, fmt::format("unknown field '{}' in {} (known: {})", key, what, list));
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
  Template tmpl(const YAML::Node& node, const std::string& what) const {
    auto t = parse_template(scalar(node, what), true);
    if (!t) {
      fail(node, fmt::format("{}: {}", what, t.error()));
    }
    return std::move(*t);
  }

  const std::string& file() const { return m_file; }

private:
  std::string m_file;
};

Engine parse_engine(const Reader& r, const YAML::Node& node) {
  const std::string s = r.scalar(node, "engine");
  if (s == "auto") {
    return Engine::automatic;
  }
  if (s == "kv2") {
    return Engine::kv2;
  }
  if (s == "kv1") {
    return Engine::kv1;
  }
  if (s == "generic") {
    return Engine::generic;
  }
  r.fail(node, fmt::format("engine '{}' is not one of auto, kv2, kv1, generic", s));
}

FileFormat parse_format(const Reader& r, const YAML::Node& node) {
  const std::string s = r.scalar(node, "format");
  if (s == "raw") {
    return FileFormat::raw;
  }
  if (s == "json") {
    return FileFormat::json;
  }
  if (s == "dotenv") {
    return FileFormat::dotenv;
  }
  if (s == "ini") {
    return FileFormat::ini;
  }
  if (s == "aws-credentials") {
    return FileFormat::aws_credentials;
  }
  if (s == "template") {
    return FileFormat::templated;
  }
  r.fail(node, fmt::format("format '{}' is not one of raw, json, dotenv, ini, aws-credentials, "
                           "template",
                           s));
}

bool is_secret_name(std::string_view name) {
  if (name.empty() || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
                        name[0] == '_')) {
    return false;
  }
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
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
    r.fail(node,
           fmt::format("{} '{}' is not a signal name (HUP, USR1, TERM...) or number", what, s));
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
      r.fail(node["on_change"],
             fmt::format("on_change '{}' is not one of signal, restart, none", spec.on_change));
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
             fmt::format("on_expiry '{}' is not one of stop, keep", s.on_expiry));
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
                             name));
  }
  spec.credential = r.scalar(node["credential"], "credential");
  if (auto c = arvados::parse_credential_ref("credential/" + spec.credential + "#secret"); !c) {
    r.fail(node["credential"], fmt::format("secret '{}': {}", name, c.error()));
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
  r.expect_map(node, fmt::format("secret '{}'", name));
  r.check_keys(node,
               {"path", "engine", "key", "version", "refresh", "on_change", "signal", "source",
                "credential"},
               fmt::format("secret '{}'", name));
  SecretSpec spec;
  spec.name = name;
  spec.origin = r.origin(node);
  const std::string source = node["source"] ? r.scalar(node["source"], "source") : "vault";
  if (source == "arvados-credential") {
    return parse_arvados_secret(r, name, node, std::move(spec));
  }
  if (source != "vault") {
    r.fail(node["source"],
           fmt::format("source '{}' is not one of vault, arvados-credential", source));
  }
  if (node["credential"]) {
    r.fail(node["credential"], "'credential' goes with source: arvados-credential");
  }
  if (!node["path"]) {
    r.fail(node, fmt::format("secret '{}' has no 'path'", name));
  }
  spec.path = r.scalar(node["path"], "path");
  if (auto s = validate_path(spec.path); !s) {
    r.fail(node["path"], fmt::format("secret '{}': {}", name, s.error()));
  }
  if (node["engine"]) {
    spec.engine = parse_engine(r, node["engine"]);
  }
  if (node["key"]) {
    spec.key = r.scalar(node["key"], "key");
    if (spec.key->empty()) {
      r.fail(node["key"], "key must not be empty");
    }
  }
  if (node["version"]) {
    const std::string v = r.scalar(node["version"], "version");
    auto parsed = parse_vault_ref(fmt::format("x#k#{}", v));
    if (!parsed) {
      r.fail(node["version"], fmt::format("version '{}' must be a positive integer", v));
    }
    spec.version = parsed->version;
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
    r.fail(node, fmt::format("mode '{}' must be octal like \"0400\"", s));
  }
  unsigned mode = 0;
  for (char c : s) {
    if (c < '0' || c > '7') {
      r.fail(node, fmt::format("mode '{}' must be octal like \"0400\" (quote it in YAML)", s));
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
  if (auto s = util::split_safe_relative_path(f.path); !s) {
    r.fail(node["path"], fmt::format("file path '{}': {}", f.path, s.error()));
  }
  const bool has_template = static_cast<bool>(node["template"]);
  const bool has_template_file = static_cast<bool>(node["template_file"]);
  const bool has_secret = static_cast<bool>(node["secret"]);
  if (static_cast<int>(has_template) + static_cast<int>(has_template_file) +
          static_cast<int>(has_secret) !=
      1) {
    r.fail(node, "a files entry needs exactly one of 'secret', 'template', 'template_file'");
  }
  if (node["format"]) {
    f.format = parse_format(r, node["format"]);
  } else if (has_template || has_template_file) {
    f.format = FileFormat::templated;
  }
  if (has_template || has_template_file) {
    if (f.format != FileFormat::templated) {
      r.fail(node["format"], "'template'/'template_file' go with format 'template'");
    }
    if (node["key"]) {
      r.fail(node["key"], "'key' goes with 'secret', not with a template");
    }
    if (has_template) {
      f.body = r.tmpl(node["template"], "template");
    } else {
      f.template_file = r.scalar(node["template_file"], "template_file");
      auto text = util::read_file(f.template_file);
      if (!text) {
        throw Error(ExitCode::no_input, "{}:{}: {}: check the template_file path", r.file(),
                    Reader::line(node["template_file"]), text.error());
      }
      auto t = parse_template(*text, true);
      if (!t) {
        throw Error(ExitCode::invalid_input, "{}: {} (template_file of {}:{})", f.template_file,
                    t.error(), r.file(), Reader::line(node["template_file"]));
      }
      f.body = std::move(*t);
    }
  } else {
    if (f.format == FileFormat::templated) {
      r.fail(node["format"], "format 'template' needs 'template' or 'template_file'");
    }
    const std::string name = r.scalar(node["secret"], "secret");
    if (m.find_secret(name) == nullptr) {
      r.fail(node["secret"], fmt::format("secret '{}' is not declared under 'secrets'", name));
    }
    NamedRef ref{name, std::nullopt};
    if (node["key"]) {
      ref.key = r.scalar(node["key"], "key");
    }
    f.source = Ref{std::move(ref)};
  }
  if (node["profile"] && f.format != FileFormat::aws_credentials) {
    r.fail(node["profile"], "'profile' goes with format aws-credentials");
  }
  if (node["section"] && f.format != FileFormat::ini) {
    r.fail(node["section"], "'section' goes with format ini");
  }
  f.section = "default";
  if (node["profile"]) {
    f.section = r.scalar(node["profile"], "profile");
  }
  if (node["section"]) {
    f.section = r.scalar(node["section"], "section");
  }
  for (char c : f.section) {
    if (c == '[' || c == ']' || c == '\n' || c == '\r') {
      r.fail(node, "profile/section must not contain '[', ']' or a newline");
    }
  }
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
                                 n->name));
      }
    }
  }
}

} // namespace

std::string_view to_string(Engine engine) {
  switch (engine) {
  case Engine::automatic:
    return "auto";
  case Engine::kv2:
    return "kv2";
  case Engine::kv1:
    return "kv1";
  case Engine::generic:
    return "generic";
  }
  return "auto";
}

std::string_view to_string(FileFormat format) {
  switch (format) {
  case FileFormat::raw:
    return "raw";
  case FileFormat::json:
    return "json";
  case FileFormat::dotenv:
    return "dotenv";
  case FileFormat::ini:
    return "ini";
  case FileFormat::aws_credentials:
    return "aws-credentials";
  case FileFormat::templated:
    return "template";
  }
  return "raw";
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

Manifest parse_manifest(std::string_view content, const std::string& file) {
  Reader r(file);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(content));
  } catch (const YAML::ParserException& e) {
    throw Error(ExitCode::invalid_input, "{}:{}: syntax error: {}", file, e.mark.line + 1, e.msg);
  }
  Manifest m;
  m.file = file;
  try {
    if (!root.IsMap()) {
      throw Error(ExitCode::invalid_input, "{}:1: a manifest is a mapping with 'version: 1'", file);
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
      r.expect_map(auth, "auth");
      r.check_keys(auth, {"method", "role", "mount"}, "auth");
      if (auth["method"]) {
        m.auth.method = r.scalar(auth["method"], "auth.method");
        static const std::set<std::string> methods{"auto", "token", "approle", "wrapped",
                                                   "arvados"};
        if (methods.count(m.auth.method) == 0) {
          r.fail(auth["method"], fmt::format("auth method '{}' is not one of auto, token, "
                                             "approle, wrapped, arvados",
                                             m.auth.method));
        }
      }
      if (auth["role"]) {
        m.auth.role = r.scalar(auth["role"], "auth.role");
      }
      if (auth["mount"]) {
        m.auth.mount = r.scalar(auth["mount"], "auth.mount");
        if (auto s = validate_path(m.auth.mount); !s) {
          r.fail(auth["mount"], fmt::format("auth.mount: {}", s.error()));
        }
      }
    }
    if (const auto secrets = root["secrets"]) {
      r.expect_map(secrets, "secrets");
      for (const auto& kv : secrets) {
        const auto name = kv.first.as<std::string>();
        if (!is_secret_name(name)) {
          r.fail(kv.first,
                 fmt::format("secret name '{}' must match [A-Za-z_][A-Za-z0-9_-]*", name));
        }
        if (m.find_secret(name) != nullptr) {
          r.fail(kv.first, fmt::format("secret '{}' is declared twice", name));
        }
        m.secrets.push_back(parse_secret(r, name, kv.second));
      }
    }
    if (const auto env = root["env"]) {
      r.expect_map(env, "env");
      std::set<std::string> seen;
      for (const auto& kv : env) {
        const auto name = kv.first.as<std::string>();
        if (!is_env_name(name)) {
          r.fail(kv.first, fmt::format("'{}' is not a valid environment variable name", name));
        }
        if (!seen.insert(name).second) {
          r.fail(kv.first, fmt::format("environment variable '{}' is set twice", name));
        }
        EnvSpec e{name, r.tmpl(kv.second, fmt::format("env {}", name)), r.origin(kv.second)};
        check_named(r, m, kv.second, e.value);
        m.env.push_back(std::move(e));
      }
    }
    if (const auto files = root["files"]) {
      if (!files.IsSequence()) {
        r.fail(files, "files must be a list");
      }
      std::set<std::string> seen;
      for (const auto& node : files) {
        FileSpec f = parse_file(r, m, node);
        if (!seen.insert(f.path).second) {
          r.fail(node, fmt::format("file '{}' is listed twice", f.path));
        }
        if (f.format == FileFormat::templated && f.template_file.empty()) {
          check_named(r, m, node["template"], f.body);
        } else if (f.format == FileFormat::templated) {
          check_named(r, m, node["template_file"], f.body);
        }
        m.files.push_back(std::move(f));
      }
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
  } catch (const YAML::Exception& e) {
    throw Error(ExitCode::invalid_input, "{}:{}: {}", file, e.mark.line + 1, e.msg);
  }
  return m;
}

Manifest load_manifest(const std::string& path) {
  auto text = util::read_file(path);
  if (!text) {
    throw Error(ExitCode::no_input, "{}: check the --manifest path or $CRUNCH_SECRETS_MANIFEST",
                text.error());
  }
  return parse_manifest(*text, path);
}

} // namespace cs::core
