#include "crunchsecrets/core/plan.hpp"

#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/util/text.hpp"

#include <algorithm>
#include <cassert>

namespace cs::core {

namespace {

// Adds a fetch for `path`/`version` unless one exists; returns its index. Merges the
// engine requirement: two different explicit engines for one read are a manifest error.
std::size_t add_fetch(Plan& plan, const std::string& path,
                      const std::optional<std::uint64_t>& version, Engine engine,
                      const std::string& user, const std::string& reference) {
  if (const char* prefix = refused_path_prefix(path)) {
    throw Error(ExitCode::invalid_input,
                "{}: {} is under {}, where Vault answers with tokens (logins, token lookup and "
                "creation, response wrapping) or controls itself; crunch-secrets reads secrets "
                "only and never gives a Vault token to the command (SECURITY.md)",
                user, util::excerpt(path), prefix);
  }
  for (std::size_t i = 0; i < plan.fetches.size(); ++i) {
    Fetch& f = plan.fetches[i];
    if (f.read.path == path && f.read.version == version) {
      if (engine != Engine::automatic) {
        if (f.engine != Engine::automatic && f.engine != engine) {
          throw Error(ExitCode::invalid_input,
                      "{}: engine {} conflicts with engine {} required by {} for the same path",
                      user, to_string(engine), to_string(f.engine), f.first_user);
        }
        f.engine = engine;
      }
      return i;
    }
  }
  Fetch f;
  f.read.path = path;
  f.read.version = version;
  // A `vault:` user already names the path and version; a manifest secret does not.
  f.read.describe = user.rfind("vault:", 0) == 0 ? user
                    : version ? fmt::format("{} version {} for {}", path, *version, user)
                              : fmt::format("{} for {}", path, user);
  f.read.reference = reference;
  f.engine = engine;
  f.first_user = user;
  plan.fetches.push_back(std::move(f));
  return plan.fetches.size() - 1;
}

void add_credential(Plan& plan, const std::string& credential, const std::string& user) {
  for (auto& c : plan.credentials) {
    if (c.credential == credential) {
      if (std::find(c.used_by.begin(), c.used_by.end(), user) == c.used_by.end()) {
        c.used_by.push_back(user);
      }
      return;
    }
  }
  plan.credentials.push_back(CredentialNeed{credential, {user}});
}

void add_template_fetches(Plan& plan, const Template& t, const std::string& user) {
  for (const auto& seg : t.segments) {
    if (!seg.ref) {
      continue;
    }
    if (const auto* a = std::get_if<ArvadosRef>(&*seg.ref)) {
      add_credential(plan, a->credential, user);
    } else if (const auto* v = std::get_if<VaultRef>(&*seg.ref)) {
      add_fetch(plan, v->path, v->version, v->version ? Engine::kv2 : Engine::automatic,
                fmt::format("{} ({})", describe(*seg.ref), user), describe(*seg.ref));
    } else {
      const auto& n = std::get<NamedRef>(*seg.ref);
      const SecretSpec* spec = plan.manifest ? plan.manifest->find_secret(n.name) : nullptr;
      if (spec == nullptr) {
        throw Error(ExitCode::invalid_input,
                    "{}: '${{secret:{}}}' names no secret declared in the manifest", user,
                    util::excerpt(n.name));
      }
      if (spec->from_arvados()) {
        add_credential(plan, spec->credential, user);
        continue;
      }
      add_fetch(plan, spec->path, spec->version, spec->engine,
                fmt::format("secret '{}' ({})", util::excerpt(spec->name), spec->origin),
                describe(*seg.ref));
    }
  }
}

} // namespace

const char* refused_path_prefix(std::string_view path) {
  for (const char* prefix : {"auth/", "sys/"}) {
    const std::string_view p(prefix);
    if (path.substr(0, p.size()) == p || path == p.substr(0, p.size() - 1)) {
      return prefix;
    }
  }
  return nullptr;
}

std::size_t Plan::fetch_index(const std::string& path,
                              const std::optional<std::uint64_t>& version) const {
  for (std::size_t i = 0; i < fetches.size(); ++i) {
    if (fetches[i].read.path == path && fetches[i].read.version == version) {
      return i;
    }
  }
  assert(false && "fetch not planned");
  throw Error(ExitCode::internal, "internal error: no fetch planned for {}", path);
}

const std::string* Plan::credential_for(const Ref& ref) const {
  if (const auto* a = std::get_if<ArvadosRef>(&ref)) {
    return &a->credential;
  }
  if (const auto* n = std::get_if<NamedRef>(&ref)) {
    const SecretSpec* spec = manifest != nullptr ? manifest->find_secret(n->name) : nullptr;
    if (spec != nullptr && spec->from_arvados()) {
      return &spec->credential;
    }
  }
  return nullptr;
}

std::size_t Plan::fetch_for(const Ref& ref) const {
  if (const auto* v = std::get_if<VaultRef>(&ref)) {
    return fetch_index(v->path, v->version);
  }
  if (credential_for(ref) != nullptr) {
    return k_no_fetch;
  }
  const auto& n = std::get<NamedRef>(ref);
  const SecretSpec* spec = manifest ? manifest->find_secret(n.name) : nullptr;
  if (spec == nullptr) {
    throw Error(ExitCode::internal, "internal error: secret {} not declared", n.name);
  }
  return fetch_index(spec->path, spec->version);
}

namespace {

// The template of an inherited environment variable's value: a whole-value `vault:` or
// `arvados:` reference, or a value with inline references or escapes; nullopt for a value
// with neither, which is passed on untouched.
std::optional<Template> environment_template(std::string_view value, const std::string& user,
                                             NamedRefs named) {
  auto whole = value_or_throw(parse_whole_value(value), ExitCode::invalid_input,
                              "{}: invalid reference: {}", user);
  auto arv = value_or_throw(parse_arvados_whole_value(value), ExitCode::invalid_input,
                            "{}: invalid reference: {}", user);
  Template t;
  if (whole) {
    t.segments.push_back(Segment{{}, Ref{std::move(*whole)}});
    return t;
  }
  if (arv) {
    t.segments.push_back(Segment{{}, Ref{std::move(*arv)}});
    return t;
  }
  auto parsed = value_or_throw(parse_template(value, named), ExitCode::invalid_input,
                               "{}: invalid reference at {}", user);
  // Only values with references (or escaped ones) are rewritten.
  const bool escaped = value.find("$${vault:") != std::string_view::npos ||
                       value.find("$${secret:") != std::string_view::npos ||
                       value.find("$${arvados:") != std::string_view::npos;
  if (!parsed.has_refs() && !escaped) {
    return std::nullopt;
  }
  return parsed;
}

} // namespace

std::vector<vault::ReadSpec> reads_of(const Plan& plan) {
  std::vector<vault::ReadSpec> reads;
  for (const auto& f : plan.fetches) {
    reads.push_back(f.read);
  }
  return reads;
}

Plan build_plan(const PlanInput& input) {
  Plan plan;
  plan.manifest = input.manifest;
  plan.argv_templates = input.argv_templates || (input.manifest && input.manifest->argv_templates);
  const NamedRefs named = input.manifest != nullptr ? NamedRefs::allowed : NamedRefs::refused;

  // Manifest secrets are fetched only when something uses them: no wasted requests.
  if (input.env_refs) {
    for (const auto& entry : input.environ) {
      const std::size_t eq = entry.find('=');
      if (eq == std::string::npos || eq == 0) {
        continue;
      }
      const std::string name = entry.substr(0, eq);
      const std::string_view value = std::string_view(entry).substr(eq + 1);
      const std::string user = fmt::format("environment variable {}", util::excerpt(name));
      std::optional<Template> t = environment_template(value, user, named);
      if (!t) {
        continue;
      }
      add_template_fetches(plan, *t, user);
      plan.env.push_back(EnvAssignment{name, std::move(*t), "environment"});
    }
  }

  if (input.manifest != nullptr) {
    for (const auto& e : input.manifest->env) {
      add_template_fetches(plan, e.value,
                           fmt::format("env {} ({})", util::excerpt(e.name), e.origin));
      plan.env.push_back(EnvAssignment{e.name, e.value, e.origin});
    }
    for (const auto& f : input.manifest->files) {
      const std::string user = fmt::format("file {} ({})", f.path, f.origin);
      if (f.format == FileFormat::templated) {
        add_template_fetches(plan, f.body, user);
      } else if (f.source) {
        Template t;
        t.segments.push_back(Segment{{}, *f.source});
        add_template_fetches(plan, t, user);
      }
      plan.files.push_back(f);
    }
  }

  plan.argv_text = input.argv;
  for (std::size_t i = 0; i < input.argv.size(); ++i) {
    const std::string& arg = input.argv[i];
    const std::string user = i == 0 ? std::string("COMMAND") : fmt::format("argument {}", i);
    if (!plan.argv_templates) {
      if (looks_like_reference(arg)) {
        throw Error(ExitCode::invalid_input,
                    "{} contains a Vault reference; pass --argv-templates to substitute it (the "
                    "value will be visible in /proc/PID/cmdline) or use an environment variable",
                    user);
      }
      Template t;
      t.segments.push_back(Segment{arg, std::nullopt});
      plan.argv.push_back(std::move(t));
      continue;
    }
    auto parsed = value_or_throw(parse_template(arg, named), ExitCode::invalid_input,
                                 "{}: invalid reference at {}", user);
    add_template_fetches(plan, parsed, user);
    plan.argv.push_back(std::move(parsed));
  }
  return plan;
}

} // namespace cs::core
