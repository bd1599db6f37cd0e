// Builds a plan from a manifest and an environment and answers its fetches from canned JSON,
// for the resolver and delivery tests.
#pragma once

#include "crunchsecrets/core/manifest.hpp"
#include "crunchsecrets/core/plan.hpp"
#include "crunchsecrets/core/resolve.hpp"

#include <doctest/doctest.h>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cs::test {

// A canned Vault answer for one path: the object of values and whether it was a KV v2 read.
struct Canned {
  std::string json;
  bool kv2 = true;
};

inline util::SecretJson secret_json(const std::string& text) {
  return util::SecretJson::parse(text);
}

class ResolveFixture {
public:
  // `data` maps "path" or "path@version" to its answer.
  ResolveFixture(const std::string& manifest, std::vector<std::string> env,
                 std::map<std::string, Canned> data, std::vector<std::string> argv = {},
                 bool argv_templates = false) {
    core::PlanInput in;
    if (!manifest.empty()) {
      in.manifest = std::make_shared<const core::Manifest>(core::parse_manifest(manifest, "m.yml"));
    }
    in.environ = std::move(env);
    in.argv = std::move(argv);
    in.argv_templates = argv_templates;
    m_plan = std::make_shared<const core::Plan>(core::build_plan(in));
    std::vector<vault::Fetched> fetched;
    for (const auto& f : m_plan->fetches) {
      const std::string id =
          f.read.version ? f.read.path + "@" + std::to_string(*f.read.version) : f.read.path;
      auto it = data.find(id);
      REQUIRE_MESSAGE(it != data.end(), "no canned answer for " << id);
      vault::Fetched got;
      got.data = secret_json(it->second.json);
      got.kv2 = it->second.kv2;
      fetched.push_back(std::move(got));
    }
    m_resolver = std::make_unique<core::Resolver>(m_plan, std::move(fetched));
  }

  const core::Plan& plan() const { return *m_plan; }
  const core::Resolver& resolver() const { return *m_resolver; }
  const core::Manifest* manifest() const { return m_plan->manifest.get(); }

private:
  std::shared_ptr<const core::Plan> m_plan;
  std::unique_ptr<core::Resolver> m_resolver;
};

} // namespace cs::test
