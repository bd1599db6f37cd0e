// libFuzzer target for the template renderer and the file formats: a template (the input up
// to the first NUL byte) is planned as an environment value and rendered against fetched data
// (the rest of the input, parsed as JSON; a non-object is wrapped as {"key": ...}). Rendering
// must produce a value or a core::Error with a message, never crash, and a template
// without references must render to its own literal text.
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/plan.hpp"
#include "crunchsecrets/core/resolve.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

// Every error says something; the log layer (util::log) makes it one printable line.
void must_have_message(const cs::core::Error& e) {
  if (std::string_view(e.what()).empty()) {
    std::abort();
  }
}

cs::util::SecretJson data_of(std::string_view text) {
  auto j = cs::util::SecretJson::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) {
    // A string from a parsed response is always valid UTF-8 (the parser checks it), so the
    // raw text is wrapped with its non-ASCII bytes replaced.
    cs::util::SecureString value(text.data(), text.size());
    for (char& c : value) {
      if (static_cast<unsigned char>(c) >= 0x80) {
        c = '?';
      }
    }
    j = cs::util::SecretJson::object();
    j["key"] = std::move(value);
  } else if (!j.is_object()) {
    cs::util::SecretJson wrapped = cs::util::SecretJson::object();
    wrapped["key"] = std::move(j);
    j = std::move(wrapped);
  }
  return j;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string_view tmpl = input.substr(0, nul);
  const std::string_view json = nul == std::string_view::npos ? "" : input.substr(nul + 1);

  cs::core::PlanInput in;
  in.environ = {"FUZZ=" + std::string(tmpl)};
  in.argv_templates = true;
  in.argv = {"cmd", std::string(tmpl)};
  cs::core::Plan plan;
  try {
    plan = cs::core::build_plan(in);
  } catch (const cs::core::Error& e) {
    must_have_message(e);
    return 0;
  }
  // One file per format over the first reference, and one template file.
  std::optional<cs::core::Ref> first;
  for (const auto& t : plan.argv) {
    for (const auto& seg : t.segments) {
      if (seg.ref && !first) {
        first = seg.ref;
      }
    }
  }
  if (first) {
    for (auto format :
         {cs::core::FileFormat::raw, cs::core::FileFormat::json, cs::core::FileFormat::dotenv,
          cs::core::FileFormat::ini, cs::core::FileFormat::aws_credentials}) {
      cs::core::FileSpec f;
      f.path = "f";
      f.format = format;
      f.source = first;
      f.section = "default";
      plan.files.push_back(f);
    }
  }
  cs::core::FileSpec templated;
  templated.path = "t";
  templated.format = cs::core::FileFormat::templated;
  templated.body = plan.argv.at(1);
  plan.files.push_back(templated);

  std::vector<cs::vault::Fetched> fetched(plan.fetches.size());
  for (auto& f : fetched) {
    f.data = data_of(json);
    f.kv2 = true;
  }
  try {
    cs::core::Resolver resolver(std::make_shared<const cs::core::Plan>(plan), std::move(fetched));
    resolver.check_engines();
    for (const auto& e : plan.env) {
      (void)resolver.render(e.value, e.name);
    }
    const cs::util::Secret arg = resolver.render(plan.argv.at(1), "argument 1");
    if (!plan.argv.at(1).has_refs()) {
      std::string literal;
      for (const auto& seg : plan.argv.at(1).segments) {
        literal += seg.literal;
      }
      if (arg.reveal() != literal) {
        std::abort();
      }
    }
    for (const auto& f : plan.files) {
      try {
        (void)resolver.render_file(f);
      } catch (const cs::core::Error& e) {
        must_have_message(e);
      }
    }
  } catch (const cs::core::Error& e) {
    must_have_message(e);
  }
  return 0;
}
