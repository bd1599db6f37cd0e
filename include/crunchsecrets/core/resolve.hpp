// Turning fetched secrets into values: reference lookup, templates, and file formats.
#pragma once

#include "crunchsecrets/core/plan.hpp"
#include "crunchsecrets/util/secret.hpp"

#include <memory>
#include <vector>

namespace cs::core {

// What the Arvados credentials API answered, keyed by the credential as written in the plan.
using CredentialValues = std::vector<std::pair<std::string, arvados::CredentialSecret>>;

// The fetched data of a plan: Vault reads in the order of `plan.fetches`, and the Arvados
// credentials of `plan.credentials`. Shares ownership of the plan, so a resolver stays valid
// however long its holder keeps it.
class Resolver {
public:
  Resolver(std::shared_ptr<const Plan> plan, std::vector<vault::Fetched> fetched,
           CredentialValues credentials = {});
  ~Resolver();

  const Plan& plan() const { return *m_plan; }

  // Checks each fetch against the engine its users require. Throws `core::Error`.
  void check_engines() const;

  // The value `ref` names: a string value verbatim, anything else as compact JSON; a whole
  // object when no key applies. Throws not_found naming the reference and `where`.
  util::Secret value(const Ref& ref, const std::string& where) const;

  // The JSON node `ref` names (the whole object when no key applies).
  const util::SecretJson& node(const Ref& ref, const std::string& where) const;

  // Substitutes every reference in `tmpl`.
  util::Secret render(const Template& tmpl, const std::string& where) const;

  // Renders a file's content in its format.
  util::Secret render_file(const FileSpec& file) const;

private:
  // A credential as an object of its two fields, `external_id` and `secret`.
  struct Credential {
    std::string name;
    std::string credential_class;
    util::SecretJson fields;
  };
  const Credential& credential(const std::string& text) const;

  std::shared_ptr<const Plan> m_plan;
  std::vector<vault::Fetched> m_fetched;
  std::vector<Credential> m_credentials;
};

// Format renderers, public for unit tests. `object` must be a JSON object for the
// key/value formats; errors name `where`.
util::Secret render_dotenv(const util::SecretJson& object, const std::string& where);
util::Secret render_ini(const util::SecretJson& object, const std::string& section,
                        const std::string& where);
util::Secret render_aws_credentials(const util::SecretJson& object, const std::string& profile,
                                    const std::string& where);
// A string node verbatim, anything else as compact JSON.
util::Secret node_text(const util::SecretJson& node);

} // namespace cs::core
