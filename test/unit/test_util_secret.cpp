#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/util/secret.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sstream>

using cs::util::Secret;
using cs::util::SecretJson;
using cs::util::SecureString;

namespace {
constexpr std::string_view k_canary = "CANARY-s3cr3t-7f1e";
}

TEST_SUITE_BEGIN("util::Secret");

TEST_CASE("a secret formats as [redacted] with fmt") {
  const Secret s(k_canary);
  CHECK(fmt::format("{}", s) == "[redacted]");
  CHECK(fmt::format("x={}!", s) == "x=[redacted]!");
  CHECK(fmt::format("{:>12}", s) == "  [redacted]");
  CHECK(cs::util::k_redacted == "[redacted]");
}

TEST_CASE("a secret streams as [redacted]") {
  const Secret s(k_canary);
  std::ostringstream out;
  out << s;
  CHECK(out.str() == "[redacted]");
  // doctest's own stringification of a failed comparison goes through operator<< too.
  CHECK(std::string(doctest::toString(s).c_str()) == "[redacted]");
}

TEST_CASE("reveal gives the bytes back, including NUL and newlines") {
  const std::string raw("a\0b\nc", 5);
  const Secret s(raw);
  CHECK(s.reveal() == raw);
  CHECK(s.size() == 5);
  CHECK_FALSE(s.empty());
}

TEST_CASE("append builds a value") {
  Secret s;
  CHECK(s.empty());
  s.append("user:");
  s.append(k_canary);
  CHECK(s.reveal() == fmt::format("user:{}", k_canary));
}

TEST_CASE("a moved-from secret is empty and the copy compares equal") {
  Secret a(k_canary);
  Secret b(a);
  CHECK(a == b);
  Secret c(std::move(a));
  CHECK(a.empty()); // NOLINT(bugprone-use-after-move): the promise under test
  CHECK(c.reveal() == k_canary);
  Secret d;
  d = std::move(c);
  CHECK(c.empty()); // NOLINT(bugprone-use-after-move)
  CHECK(d.reveal() == k_canary);
  d = b;
  CHECK(d == b);
}

TEST_CASE("clear wipes the whole buffer, including a short string inside the object") {
  Secret s(std::string_view("short"));
  const char* p = s.reveal_string().data();
  const std::size_t cap = s.reveal_string().capacity();
  s.clear();
  CHECK(s.empty());
  // The small-string buffer lives inside the object, so it is still ours to inspect.
  for (std::size_t i = 0; i < cap; ++i) {
    CHECK(p[i] == '\0');
  }
}

TEST_CASE("wipe_string zeroes every byte of the capacity") {
  SecureString s(k_canary.data(), k_canary.size());
  s.reserve(64);
  const char* p = s.data();
  const std::size_t cap = s.capacity();
  cs::util::wipe_string(s);
  CHECK(s.empty());
  CHECK(s.capacity() == cap);
  for (std::size_t i = 0; i < cap; ++i) {
    CHECK(p[i] == '\0');
  }
}

TEST_CASE("wipe_json blanks every string in a nested document, keys included") {
  SecretJson j = SecretJson::parse(R"({"CANARY-key":"CANARY-one","b":{"c":["CANARY-two",3]}})");
  cs::util::wipe_json(j);
  // Keys are wiped in place too, so lookups by name no longer work: inspect the dump.
  const auto dumped = j.dump();
  const std::string_view text(dumped.data(), dumped.size());
  CHECK_NOT_CONTAINS(text, "CANARY");
  CHECK_CONTAINS(text, "3");
  CHECK(j.size() == 2);
}

TEST_CASE("a core::Error built from a message about a secret never formats the value") {
  const Secret s(k_canary);
  const cs::core::Error e(cs::core::ExitCode::not_found, "reading {} failed", s);
  CHECK(std::string(e.what()) == "reading [redacted] failed");
  CHECK_NOT_CONTAINS(e.what(), k_canary);
  CHECK(e.code() == cs::core::ExitCode::not_found);
}

TEST_CASE("a log line built from a secret by mistake shows [redacted]") {
  // log::debug etc. format with fmt; the formatter is what keeps the value out.
  const Secret s(k_canary);
  CHECK(fmt::format("token {} for {}", s, "secret/data/app") ==
        "token [redacted] for secret/data/app");
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("util::log");

TEST_CASE("json_quote escapes quotes, backslashes and control characters") {
  using cs::util::log::json_quote;
  CHECK(json_quote("plain") == "\"plain\"");
  CHECK(json_quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(json_quote("l1\nl2\tx\r") == "\"l1\\nl2\\tx\\r\"");
  CHECK(json_quote(std::string_view("\x01\x7f", 2)) == "\"\\u0001\\u007f\"");
  CHECK(json_quote("") == "\"\"");
}

TEST_SUITE_END();
