// The reference grammar (README.md, "References"): `vault:<path>#<key>[#<version>]` as a whole
// value, `${vault:...}` and `${secret:<name>[#<key>]}` inside templates, `$${` as a literal.
#pragma once

#include "crunchsecrets/arvados/credential.hpp"
#include "crunchsecrets/util/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cs::core {

// One value at a Vault API path.
struct VaultRef {
  std::string path;
  std::string key;
  std::optional<std::uint64_t> version;
  bool operator==(const VaultRef&) const = default;
};

// A secret named in the manifest, optionally one of its keys.
struct NamedRef {
  std::string name;
  std::optional<std::string> key;
  bool operator==(const NamedRef&) const = default;
};

// One field of an Arvados credential (Arvados 3.2+ `credentials` API):
// `arvados:credential/<uuid-or-name>#secret|#external_id`, resolved with the container's token.
using ArvadosRef = arvados::CredentialRef;

using Ref = std::variant<VaultRef, NamedRef, ArvadosRef>;

// Renders `ref` as it is written (`vault:path#key#3`, `secret:name#key`) for messages.
std::string describe(const Ref& ref);

// A literal text piece or a reference, in template order.
struct Segment {
  std::string literal;
  std::optional<Ref> ref;
};

// A parsed template: literal text interleaved with references.
struct Template {
  std::vector<Segment> segments;
  bool has_refs() const;
};

// True when `name` is a valid secret name ([A-Za-z_][A-Za-z0-9_-]*): the one grammar of the
// manifest's `secrets:` keys and of `${secret:<name>}`.
bool is_secret_name(std::string_view name);

// Parses a KV v2 version: 1 to 10 digits, not 0.
util::Result<std::uint64_t> parse_version(std::string_view text);

// Checks the grammar of an API path (segments of [A-Za-z0-9_.@=+-], no "." or "..").
util::Status validate_path(std::string_view path);

// Parses `text` after the "vault:" prefix: `<path>#<key>[#<version>]`.
util::Result<VaultRef> parse_vault_ref(std::string_view text);

// Parses `text` as a whole-value reference when it starts with "vault:". Returns nullopt when
// it does not start with "vault:", an error when it does but is malformed.
util::Result<std::optional<VaultRef>> parse_whole_value(std::string_view text);

// The same for a whole value starting with "arvados:" (an Arvados credential reference).
util::Result<std::optional<ArvadosRef>> parse_arvados_whole_value(std::string_view text);

// Whether `${secret:<name>}` may appear: only where a manifest names the secrets.
enum class NamedRefs { refused, allowed };

// Parses `${vault:...}`, `${arvados:...}` and `${secret:...}` references and `$${` escapes in
// `text`. `${secret:...}` is accepted only when `named` is `allowed`. Any other `${` is kept
// literally (so shell-style `${HOME}` survives); errors name the 1-based column.
util::Result<Template> parse_template(std::string_view text, NamedRefs named);

// True when `text` holds a `${vault:...}` or `${secret:...}` reference, well formed or not;
// used to refuse references in arguments without --argv-templates.
bool looks_like_reference(std::string_view text);

} // namespace cs::core
