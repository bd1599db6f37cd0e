// Deterministic random inputs for every parser that takes text from users or from Vault: each
// must answer with a value or a clean error (a `Result` error or a `core::Error`), never crash
// or throw anything else. A cheap stand-in for the fuzzers.
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/core/manifest.hpp"
#include "crunchsecrets/core/plan.hpp"
#include "crunchsecrets/core/reference.hpp"
#include "crunchsecrets/util/duration.hpp"
#include "crunchsecrets/util/fs.hpp"
#include "crunchsecrets/vault/client.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <random>

using namespace cs::core;

// Checks inside the loops count only when they fail, so the assertion total stays meaningful.
#define EXPECT(cond)                                                                               \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      FAIL_CHECK(#cond);                                                                           \
    }                                                                                              \
  } while (false)
#define EXPECT_MESSAGE(cond, msg)                                                                  \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      FAIL_CHECK(#cond << ": " << msg);                                                            \
    }                                                                                              \
  } while (false)

namespace {

// Random text biased towards the characters the grammars care about.
std::string random_text(std::mt19937_64& rng, std::size_t max_len) {
  static const std::string alphabet = "${}#:/.@=+-_ \n\t\\\"'0123456789abcvaultsecret[]-msh\0";
  static const char* const pieces[] = {"${vault:", "${secret:", "$${", "vault:",          "#",
                                       "}",        "..",        "//",  "secret/data/app", "#3",
                                       "\n  ",     ": ",        "- "};
  std::uniform_int_distribution<std::size_t> len(0, max_len);
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  std::uniform_int_distribution<std::size_t> piece(0, std::size(pieces) - 1);
  std::uniform_int_distribution<int> coin(0, 3);
  std::string out;
  const std::size_t n = len(rng);
  while (out.size() < n) {
    if (coin(rng) == 0) {
      out += pieces[piece(rng)];
    } else {
      out += alphabet[pick(rng)];
    }
  }
  return out;
}

// `text` with a few random bytes replaced, inserted or deleted.
std::string mutate(std::mt19937_64& rng, std::string text) {
  std::uniform_int_distribution<int> count(1, 4);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> op(0, 2);
  for (int i = count(rng); i > 0 && !text.empty(); --i) {
    std::uniform_int_distribution<std::size_t> at(0, text.size() - 1);
    const std::size_t p = at(rng);
    switch (op(rng)) {
    case 0:
      text[p] = static_cast<char>(byte(rng));
      break;
    case 1:
      text.insert(p, 1, static_cast<char>(byte(rng)));
      break;
    default:
      text.erase(p, 1);
    }
  }
  return text;
}

template <typename F>
void only_clean_errors(const std::string& input, F&& f) {
  try {
    f();
  } catch (const Error&) {
    // a clean, documented failure
  } catch (const std::exception& e) {
    FAIL("input '" << input << "' threw " << e.what());
  }
}

const char* k_manifest = R"(version: 1
auth:
  method: arvados
  role: etl
secrets:
  db:
    path: secret/data/app
    key: password
    version: 3
  aws:
    path: secret/data/aws
env:
  DB_URL: postgres://app:${secret:db}@db/app
  API_KEY: ${vault:secret/data/api#key}
files:
  - path: db/password
    secret: db
  - path: aws/credentials
    secret: aws
    format: aws-credentials
    profile: default
  - path: app.conf
    mode: "0440"
    template: |
      password = ${secret:db}
argv: false
)";

} // namespace

TEST_SUITE_BEGIN("robustness");

TEST_CASE("the reference parsers take any text") {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 20000; ++i) {
    const std::string text = random_text(rng, 40);
    auto w = parse_whole_value(text);
    if (w.ok() && w->has_value()) {
      EXPECT(validate_path((*w)->path).ok());
      EXPECT(text == describe(Ref{**w}).substr(0, text.size()));
    }
    for (NamedRefs named : {NamedRefs::refused, NamedRefs::allowed}) {
      auto t = parse_template(text, named);
      if (t.ok()) {
        for (const auto& s : t->segments) {
          EXPECT((s.ref.has_value() || !s.literal.empty()));
        }
      }
    }
    (void)looks_like_reference(text);
    (void)cs::util::split_safe_relative_path(text);
  }
}

TEST_CASE("a parsed template renders back to an equivalent template") {
  std::mt19937_64 rng(2);
  for (int i = 0; i < 5000; ++i) {
    const std::string text = random_text(rng, 40);
    auto t = parse_template(text, NamedRefs::allowed);
    if (!t.ok()) {
      continue;
    }
    // Re-escape literals and re-write references; parsing that gives the same segments.
    std::string again;
    for (const auto& s : t->segments) {
      if (s.ref) {
        again += "${" + describe(*s.ref) + "}";
      } else {
        std::string lit = s.literal;
        for (const char* p : {"${vault:", "${secret:"}) {
          for (std::size_t at = 0; (at = lit.find(p, at)) != std::string::npos; at += 2) {
            lit.insert(at, "$");
          }
        }
        again += lit;
      }
    }
    auto t2 = parse_template(again, NamedRefs::allowed);
    EXPECT_MESSAGE(t2.ok(), "'" << text << "' -> '" << again << "': " << t2.error());
    if (!t2.ok()) {
      continue;
    }
    std::string a;
    std::string b;
    for (const auto& s : t->segments) {
      a += s.ref ? "<" + describe(*s.ref) + ">" : s.literal;
    }
    for (const auto& s : t2->segments) {
      b += s.ref ? "<" + describe(*s.ref) + ">" : s.literal;
    }
    EXPECT_MESSAGE(a == b, "'" << text << "' -> '" << again << "'");
  }
}

TEST_CASE("durations of random text parse or fail cleanly") {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    const std::string text = random_text(rng, 12);
    auto d = cs::util::parse_duration(text);
    if (d.ok()) {
      EXPECT(d->count() >= 0);
    }
  }
}

TEST_CASE("mutated manifests parse or fail with a core::Error") {
  std::mt19937_64 rng(4);
  for (int i = 0; i < 3000; ++i) {
    const std::string text = mutate(rng, k_manifest);
    only_clean_errors(text, [&] {
      const Manifest m = parse_manifest(text, "m.yml");
      PlanInput in;
      in.manifest = std::make_shared<const Manifest>(m);
      in.argv = {"cmd"};
      (void)build_plan(in);
    });
  }
}

TEST_CASE("mutated JSON manifests parse or fail with a core::Error") {
  std::mt19937_64 rng(5);
  const std::string json =
      R"({"version":1,"secrets":{"db":{"path":"kv/db","key":"pw"}},"env":{"A":"${secret:db}"},)"
      R"("files":[{"path":"f","secret":"db","mode":"0400"}]})";
  for (int i = 0; i < 3000; ++i) {
    const std::string text = mutate(rng, json);
    only_clean_errors(text, [&] { (void)parse_manifest(text, "m.json"); });
  }
}

TEST_CASE("random environments plan or fail with a core::Error") {
  std::mt19937_64 rng(6);
  for (int i = 0; i < 5000; ++i) {
    PlanInput in;
    in.environ = {"A=" + random_text(rng, 30), "B=vault:" + random_text(rng, 20)};
    in.argv = {"cmd", random_text(rng, 20)};
    in.argv_templates = (i % 2) == 0;
    only_clean_errors(in.environ[0], [&] { (void)build_plan(in); });
  }
}

TEST_CASE("server_message takes any body") {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 5000; ++i) {
    const std::string body = mutate(rng, R"({"errors":["permission denied","x"]})");
    const std::string m =
        cs::vault::server_message(cs::util::SecureString(body.c_str(), body.size()));
    EXPECT(m.size() <= 200);
    for (char c : m) {
      EXPECT(static_cast<unsigned char>(c) >= 0x20);
    }
  }
}

TEST_SUITE_END();
