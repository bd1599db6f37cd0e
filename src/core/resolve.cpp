#include "crunchsecrets/core/resolve.hpp"

#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/util/text.hpp"

#include <algorithm>

namespace cs::core {

using util::Secret;
using util::SecretJson;

namespace {

// The first field of `object` among `names`, or null.
const SecretJson* first_field(const SecretJson& object, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    auto it = object.find(n);
    if (it != object.end()) {
      return &*it;
    }
  }
  return nullptr;
}

void require_object(const SecretJson& j, const std::string& what, const std::string& where) {
  if (!j.is_object()) {
    throw Error(ExitCode::invalid_input,
                "{}: format {} needs a whole secret (an object of fields), not a single value; "
                "drop 'key' or use format raw",
                where, what);
  }
}

void require_single_line(const Secret& value, std::string_view field, const std::string& where) {
  if (value.reveal().find_first_of("\r\n") != std::string_view::npos) {
    throw Error(ExitCode::invalid_input,
                "{}: the value of field '{}' contains a newline, which this format cannot hold; "
                "use format json or raw",
                where, util::excerpt(field));
  }
}

} // namespace

Secret node_text(const SecretJson& node) {
  if (node.is_string()) {
    return Secret(node.get_ref<const SecretJson::string_t&>());
  }
  return Secret(node.dump());
}

Secret render_dotenv(const SecretJson& object, const std::string& where) {
  require_object(object, "dotenv", where);
  Secret out;
  // std::map keeps fields sorted by name.
  for (const auto& [key, value] : object.items()) {
    const std::string_view name = key;
    if (!is_env_name(name)) {
      throw Error(ExitCode::invalid_input,
                  "{}: field '{}' is not a valid variable name for dotenv; rename the field or "
                  "use format json",
                  where, util::excerpt(name));
    }
    Secret v = node_text(value);
    out.append(name);
    out.append("=\"");
    for (char c : v.reveal()) {
      switch (c) {
      case '\\':
        out.append("\\\\");
        break;
      case '"':
        out.append("\\\"");
        break;
      case '$':
        out.append("\\$");
        break;
      case '`':
        out.append("\\`");
        break;
      case '\n':
        out.append("\\n");
        break;
      default:
        out.append(std::string_view(&c, 1));
      }
    }
    out.append("\"\n");
  }
  return out;
}

Secret render_ini(const SecretJson& object, const std::string& section, const std::string& where) {
  require_object(object, "ini", where);
  Secret out;
  out.append("[");
  out.append(section);
  out.append("]\n");
  for (const auto& [key, value] : object.items()) {
    const std::string_view name = key;
    if (name.find_first_of("=[]\r\n") != std::string_view::npos || name.empty()) {
      throw Error(ExitCode::invalid_input, "{}: field '{}' cannot be an INI key", where,
                  util::excerpt(name));
    }
    Secret v = node_text(value);
    require_single_line(v, name, where);
    out.append(name);
    out.append(" = ");
    out.append(v.reveal());
    out.append("\n");
  }
  return out;
}

Secret render_aws_credentials(const SecretJson& object, const std::string& profile,
                              const std::string& where) {
  require_object(object, "aws-credentials", where);
  const SecretJson* id = first_field(object, {"aws_access_key_id", "access_key", "access_key_id"});
  const SecretJson* key =
      first_field(object, {"aws_secret_access_key", "secret_key", "secret_access_key"});
  const SecretJson* token =
      first_field(object, {"aws_session_token", "session_token", "security_token"});
  if (id == nullptr || key == nullptr) {
    throw Error(ExitCode::not_found,
                "{}: format aws-credentials needs fields aws_access_key_id (or access_key) and "
                "aws_secret_access_key (or secret_key)",
                where);
  }
  Secret out;
  out.append("[");
  out.append(profile);
  out.append("]\n");
  auto line = [&](std::string_view name, const SecretJson& node) {
    Secret v = node_text(node);
    require_single_line(v, name, where);
    out.append(name);
    out.append(" = ");
    out.append(v.reveal());
    out.append("\n");
  };
  line("aws_access_key_id", *id);
  line("aws_secret_access_key", *key);
  if (token != nullptr && !token->is_null()) {
    line("aws_session_token", *token);
  }
  return out;
}

Resolver::Resolver(std::shared_ptr<const Plan> plan, std::vector<vault::Fetched> fetched,
                   CredentialValues credentials)
    : m_plan(std::move(plan)), m_fetched(std::move(fetched)) {
  for (auto& [text, c] : credentials) {
    Credential cred{text, c.info.credential_class, SecretJson::object()};
    cred.fields["external_id"] = c.external_id.reveal_string();
    cred.fields["secret"] = c.secret.reveal_string();
    m_credentials.push_back(std::move(cred));
  }
}

Resolver::~Resolver() {
  for (auto& c : m_credentials) {
    util::wipe_json(c.fields);
  }
}

const Resolver::Credential& Resolver::credential(const std::string& text) const {
  for (const auto& c : m_credentials) {
    if (c.name == text) {
      return c;
    }
  }
  throw Error(ExitCode::internal, "internal error: Arvados credential {} was not fetched", text);
}

void Resolver::check_engines() const {
  for (std::size_t i = 0; i < m_plan->fetches.size(); ++i) {
    const Fetch& f = m_plan->fetches[i];
    const vault::Fetched& got = m_fetched.at(i);
    if (f.engine == Engine::kv2 && !got.kv2) {
      throw Error(ExitCode::protocol,
                  "{}: {} is not a KV v2 read (no data.data/data.metadata in the answer); for KV "
                  "v2 use <mount>/data/<path>, or set engine kv1/generic",
                  f.first_user, f.read.path);
    }
  }
}

const SecretJson& Resolver::node(const Ref& ref, const std::string& where) const {
  if (const std::string* cred = m_plan->credential_for(ref)) {
    const Credential& c = credential(*cred);
    std::optional<std::string> key;
    if (const auto* a = std::get_if<ArvadosRef>(&ref)) {
      key = a->field == arvados::Field::secret ? "secret" : "external_id";
    } else {
      const auto& n = std::get<NamedRef>(ref);
      key = n.key ? n.key : m_plan->manifest->find_secret(n.name)->key;
    }
    if (!key) {
      return c.fields;
    }
    auto it = c.fields.find(util::SecureString(key->data(), key->size()));
    if (it == c.fields.end()) {
      throw Error(ExitCode::not_found,
                  "{} ({}): an Arvados credential has only the keys external_id and secret, not "
                  "'{}'",
                  describe(ref), where, util::excerpt(*key));
    }
    return *it;
  }
  const std::size_t index = m_plan->fetch_for(ref);
  const SecretJson& data = m_fetched.at(index).data;
  std::optional<std::string> key;
  if (const auto* v = std::get_if<VaultRef>(&ref)) {
    key = v->key;
  } else {
    const auto& n = std::get<NamedRef>(ref);
    key = n.key ? n.key : m_plan->manifest->find_secret(n.name)->key;
  }
  if (!key) {
    return data;
  }
  auto it = data.find(util::SecureString(key->data(), key->size()));
  if (it == data.end()) {
    // Only the number of fields: their names describe the secret, and container logs are
    // permanent (Arvados keeps them with the container record).
    const std::string count = data.empty()       ? std::string("no keys")
                              : data.size() == 1 ? std::string("1 key")
                                                 : fmt::format("{} keys", data.size());
    throw Error(ExitCode::not_found,
                "{} ({}): no key '{}' in {} (it has {}): check the key with the secret's owner",
                describe(ref), where, util::excerpt(*key),
                util::excerpt(m_plan->fetches[index].read.path, 128), count);
  }
  return *it;
}

Secret Resolver::value(const Ref& ref, const std::string& where) const {
  return node_text(node(ref, where));
}

Secret Resolver::render(const Template& tmpl, const std::string& where) const {
  Secret out;
  for (const auto& seg : tmpl.segments) {
    if (seg.ref) {
      out.append(value(*seg.ref, where).reveal());
    } else {
      out.append(seg.literal);
    }
  }
  return out;
}

Secret Resolver::render_file(const FileSpec& file) const {
  const std::string where = fmt::format("file {} ({})", file.path, file.origin);
  if (file.format == FileFormat::templated) {
    return render(file.body, where);
  }
  if (const std::string* cred = m_plan->credential_for(*file.source);
      cred != nullptr && file.format == FileFormat::aws_credentials) {
    // An Arvados AWS credential: external_id is the access key id, secret the secret key.
    const Credential& c = credential(*cred);
    if (c.credential_class != "arv:aws_access_key") {
      throw Error(ExitCode::invalid_input,
                  "{}: format aws-credentials needs a credential of class arv:aws_access_key, "
                  "but arvados:credential/{} is of class {}: use format raw or a template",
                  where, *cred, c.credential_class.empty() ? "(none)" : c.credential_class);
    }
    const SecretJson& n = node(*file.source, where);
    if (!n.is_object()) {
      return render_aws_credentials(n, file.section, where); // names the problem
    }
    SecretJson aws = SecretJson::object();
    aws["aws_access_key_id"] = n["external_id"];
    aws["aws_secret_access_key"] = n["secret"];
    Secret out = render_aws_credentials(aws, file.section, where);
    util::wipe_json(aws);
    return out;
  }
  const SecretJson& n = node(*file.source, where);
  switch (file.format) {
  case FileFormat::raw:
    return node_text(n);
  case FileFormat::json:
    return Secret(n.dump());
  case FileFormat::dotenv:
    return render_dotenv(n, where);
  case FileFormat::ini:
    return render_ini(n, file.section, where);
  case FileFormat::aws_credentials:
    return render_aws_credentials(n, file.section, where);
  case FileFormat::templated:
    break;
  }
  throw Error(ExitCode::internal, "internal error: unknown format for {}", where);
}

} // namespace cs::core
