#include "crunchsecrets/core/reference.hpp"

#include "crunchsecrets/util/text.hpp"

#include <fmt/format.h>

namespace cs::core {

using util::err;
using util::Result;

namespace {

constexpr std::string_view k_vault_prefix = "vault:";
constexpr std::string_view k_secret_prefix = "secret:";
constexpr std::string_view k_arvados_prefix = "arvados:";

bool is_path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '@' || c == '=' || c == '+' || c == '-';
}

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

util::Status validate_key(std::string_view key) {
  if (key.empty()) {
    return err("empty key after '#'");
  }
  for (char c : key) {
    if (c == '#' || c == '}' || c == '\0' || c == '\n') {
      return err("key contains '#', '}', NUL or a newline");
    }
  }
  return {};
}

} // namespace

Result<std::uint64_t> parse_version(std::string_view text) {
  if (text.empty() || text.size() > 10) {
    return err("version must be 1 to 10 digits");
  }
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return err(fmt::format("version '{}' is not a positive integer", text));
    }
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v == 0) {
    return err("version must be a positive integer (versions start at 1)");
  }
  return v;
}

bool is_secret_name(std::string_view name) {
  if (name.empty() || !is_name_start(name.front())) {
    return false;
  }
  for (char c : name) {
    if (!is_name_char(c)) {
      return false;
    }
  }
  return true;
}

namespace {

Result<NamedRef> parse_named_ref(std::string_view text) {
  const std::size_t hash = text.find('#');
  const std::string_view name = text.substr(0, hash);
  if (!is_secret_name(name)) {
    if (name.empty() || !is_name_start(name.front())) {
      return err("secret name must start with a letter or '_'");
    }
    return err(fmt::format("secret name '{}' may hold only letters, digits, '_' and '-'",
                           util::excerpt(name)));
  }
  NamedRef ref{std::string(name), std::nullopt};
  if (hash != std::string_view::npos) {
    const std::string_view key = text.substr(hash + 1);
    if (auto s = validate_key(key); !s) {
      return err(s.error());
    }
    ref.key = std::string(key);
  }
  return ref;
}

} // namespace

std::string describe(const Ref& ref) {
  // A label for messages and the plan listing, not a reference to parse: a path or key of any
  // length (the grammar sets none) is cut to a sane length, as every echoed input is.
  if (const auto* v = std::get_if<VaultRef>(&ref)) {
    std::string out =
        fmt::format("vault:{}#{}", util::excerpt(v->path, 128), util::excerpt(v->key));
    if (v->version) {
      out += fmt::format("#{}", *v->version);
    }
    return out;
  }
  if (const auto* a = std::get_if<ArvadosRef>(&ref)) {
    return a->describe();
  }
  const auto& n = std::get<NamedRef>(ref);
  const std::string name = util::excerpt(n.name);
  return n.key ? fmt::format("secret:{}#{}", name, util::excerpt(*n.key))
               : fmt::format("secret:{}", name);
}

bool Template::has_refs() const {
  for (const auto& s : segments) {
    if (s.ref) {
      return true;
    }
  }
  return false;
}

util::Status validate_path(std::string_view path) {
  if (path.empty()) {
    return err("empty path");
  }
  if (path.front() == '/') {
    return err("path must not start with '/' (give the API path after /v1/)");
  }
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = path.find('/', start);
    const std::string_view seg = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty()) {
      return err("path has an empty segment");
    }
    if (seg == "." || seg == "..") {
      return err("path has a '.' or '..' segment");
    }
    for (char c : seg) {
      if (!is_path_char(c)) {
        return err(fmt::format("path has a character not allowed in a Vault path: '{}'",
                               c == '\n' ? std::string("\\n") : std::string(1, c)));
      }
    }
    if (slash == std::string_view::npos) {
      return {};
    }
    start = slash + 1;
  }
}

Result<VaultRef> parse_vault_ref(std::string_view text) {
  const std::size_t hash = text.find('#');
  if (hash == std::string_view::npos) {
    return err("missing '#<key>' after the path (write vault:<path>#<key>)");
  }
  const std::string_view path = text.substr(0, hash);
  if (auto s = validate_path(path); !s) {
    return err(s.error());
  }
  std::string_view rest = text.substr(hash + 1);
  const std::size_t hash2 = rest.find('#');
  const std::string_view key = rest.substr(0, hash2);
  if (auto s = validate_key(key); !s) {
    return err(s.error());
  }
  VaultRef ref{std::string(path), std::string(key), std::nullopt};
  if (hash2 != std::string_view::npos) {
    auto v = parse_version(rest.substr(hash2 + 1));
    if (!v) {
      return err(v.error());
    }
    ref.version = *v;
  }
  return ref;
}

Result<std::optional<VaultRef>> parse_whole_value(std::string_view text) {
  if (text.substr(0, k_vault_prefix.size()) != k_vault_prefix) {
    return std::optional<VaultRef>{};
  }
  auto r = parse_vault_ref(text.substr(k_vault_prefix.size()));
  if (!r) {
    return err(r.error());
  }
  return std::optional<VaultRef>{std::move(*r)};
}

Result<std::optional<ArvadosRef>> parse_arvados_whole_value(std::string_view text) {
  if (text.substr(0, k_arvados_prefix.size()) != k_arvados_prefix) {
    return std::optional<ArvadosRef>{};
  }
  auto r = arvados::parse_credential_ref(text.substr(k_arvados_prefix.size()));
  if (!r) {
    return err(r.error());
  }
  return std::optional<ArvadosRef>{std::move(*r)};
}

Result<Template> parse_template(std::string_view text, NamedRefs named) {
  Template out;
  std::string literal;
  std::size_t i = 0;
  auto flush = [&] {
    if (!literal.empty()) {
      out.segments.push_back(Segment{std::move(literal), std::nullopt});
      literal.clear();
    }
  };
  auto starts_ref = [&](std::size_t at) {
    const std::string_view rest = text.substr(at);
    return rest.substr(0, k_vault_prefix.size()) == k_vault_prefix ||
           rest.substr(0, k_secret_prefix.size()) == k_secret_prefix ||
           rest.substr(0, k_arvados_prefix.size()) == k_arvados_prefix;
  };
  while (i < text.size()) {
    // "$${vault:" and "$${secret:" are literal "${vault:" / "${secret:".
    if (text.compare(i, 3, "$${") == 0 && starts_ref(i + 3)) {
      literal += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") == 0 && starts_ref(i + 2)) {
      const std::size_t column = i + 1;
      const std::size_t close = text.find('}', i + 2);
      if (close == std::string_view::npos) {
        return err(fmt::format("column {}: '${{' without a closing '}}'", column));
      }
      const std::string_view body = text.substr(i + 2, close - i - 2);
      if (body.substr(0, k_vault_prefix.size()) == k_vault_prefix) {
        auto r = parse_vault_ref(body.substr(k_vault_prefix.size()));
        if (!r) {
          return err(fmt::format("column {}: {}", column, r.error()));
        }
        flush();
        out.segments.push_back(Segment{{}, Ref{std::move(*r)}});
      } else if (body.substr(0, k_arvados_prefix.size()) == k_arvados_prefix) {
        auto r = arvados::parse_credential_ref(body.substr(k_arvados_prefix.size()));
        if (!r) {
          return err(fmt::format("column {}: {}", column, r.error()));
        }
        flush();
        out.segments.push_back(Segment{{}, Ref{std::move(*r)}});
      } else {
        if (named == NamedRefs::refused) {
          return err(fmt::format("column {}: '${{secret:...}}' needs a manifest that names the "
                                 "secret; use '${{vault:<path>#<key>}}' here",
                                 column));
        }
        auto r = parse_named_ref(body.substr(k_secret_prefix.size()));
        if (!r) {
          return err(fmt::format("column {}: {}", column, r.error()));
        }
        flush();
        out.segments.push_back(Segment{{}, Ref{std::move(*r)}});
      }
      i = close + 1;
      continue;
    }
    literal += text[i];
    ++i;
  }
  flush();
  return out;
}

bool looks_like_reference(std::string_view text) {
  auto t = parse_template(text, NamedRefs::allowed);
  return !t || t->has_refs();
}

} // namespace cs::core
