#include "crunchsecrets/supervise/redact.hpp"

#include <doctest/doctest.h>
#include <random>
#include <string>
#include <vector>

using cs::supervise::encodings_of;
using cs::supervise::Redactor;
using cs::util::Secret;

namespace {

// Feeds `input` to `r` in chunks of the given sizes (cycled) and returns the whole output.
std::string run_chunks(Redactor& r, const std::string& input,
                       const std::vector<std::size_t>& sizes) {
  std::string out;
  std::size_t pos = 0;
  std::size_t k = 0;
  while (pos < input.size()) {
    const std::size_t n = std::min(sizes[k++ % sizes.size()], input.size() - pos);
    r.feed(std::string_view(input).substr(pos, n), out);
    pos += n;
  }
  r.finish(out);
  return out;
}

std::string run_whole(Redactor& r, const std::string& input) {
  return run_chunks(r, input, {input.size() + 1});
}

} // namespace

TEST_SUITE_BEGIN("supervise::Redactor");

TEST_CASE("a value is replaced by its name and nothing else changes") {
  Redactor r;
  REQUIRE(r.add("db", Secret("hunter2-canary")));
  CHECK(run_whole(r, "user=app pass=hunter2-canary end\n") == "user=app pass=[redacted:db] end\n");
}

TEST_CASE("a value split across every possible pair of writes is still replaced") {
  const std::string input = "xx hunter2-canary yy hunter2-canary";
  for (std::size_t cut = 1; cut < input.size(); ++cut) {
    Redactor r;
    r.add("db", Secret("hunter2-canary"));
    std::string out;
    r.feed(std::string_view(input).substr(0, cut), out);
    CHECK(out.find("hunter2") == std::string::npos);
    r.feed(std::string_view(input).substr(cut), out);
    r.finish(out);
    CHECK(out == "xx [redacted:db] yy [redacted:db]");
  }
}

TEST_CASE("one byte at a time") {
  Redactor r;
  r.add("db", Secret("hunter2-canary"));
  CHECK(run_chunks(r, "a hunter2-canaryhunter2-canary b", {1}) == "a [redacted:db][redacted:db] b");
}

TEST_CASE("a prefix that does not complete is released unchanged") {
  Redactor r;
  r.add("db", Secret("hunter2-canary"));
  std::string out;
  r.feed("abc hunter2-can", out);
  CHECK(out == "abc ");
  CHECK(r.held() == 11);
  r.feed("opy", out);
  CHECK(out == "abc hunter2-canopy");
  CHECK(r.held() == 0);
  r.feed("hunter", out);
  r.finish(out);
  CHECK(out == "abc hunter2-canopyhunter");
}

TEST_CASE("base64 and percent-encoded forms are replaced") {
  Redactor r;
  r.add("tok", Secret("p@ss w/rd+x?"));
  // base64 of "p@ss w/rd+x?" is cEBzcyB3L3JkK3g/ ; base64url cEBzcyB3L3JkK3g_
  CHECK(run_whole(r, "b64=cEBzcyB3L3JkK3g/") == "b64=[redacted:tok]");
  CHECK(run_whole(r, "url=cEBzcyB3L3JkK3g_") == "url=[redacted:tok]");
  CHECK(run_whole(r, "q=p%40ss%20w%2Frd%2Bx%3F&") == "q=[redacted:tok]&");
  CHECK(run_whole(r, "q=p%40ss%20w%2frd%2bx%3f&") == "q=[redacted:tok]&");
}

TEST_CASE("padded base64 is replaced whole, padding included") {
  Redactor r;
  r.add("k", Secret("abcd")); // YWJjZA==
  CHECK(run_whole(r, "[YWJjZA==]") == "[[redacted:k]]");
  CHECK(run_whole(r, "[YWJjZA]") == "[[redacted:k]]");
}

TEST_CASE("the longest form at a position wins") {
  Redactor r;
  r.add("short", Secret("secret"));
  r.add("long", Secret("secret-and-more"));
  CHECK(run_chunks(r, "secret-and-more secret-and secret", {3}) ==
        "[redacted:long] [redacted:short]-and [redacted:short]");
}

TEST_CASE("values shorter than the minimum are not redacted") {
  Redactor r;
  CHECK_FALSE(r.add("pin", Secret("123")));
  CHECK(r.pattern_count() == 0);
  CHECK(run_whole(r, "pin 123") == "pin 123");
  CHECK(r.add("pin4", Secret("1234")));
}

TEST_CASE("the same value under two names keeps the first name") {
  Redactor r;
  r.add("a", Secret("same-value"));
  r.add("b", Secret("same-value"));
  CHECK(run_whole(r, "same-value") == "[redacted:a]");
}

TEST_CASE("binary output without values passes byte for byte, in any chunking") {
  std::mt19937 rng(42);
  std::string input(200000, '\0');
  for (auto& c : input) {
    c = static_cast<char>(rng() & 0xff);
  }
  // Plant many prefixes of the value so holding and releasing is exercised.
  const std::string value = "\x01\x02\x03secret\xff";
  for (std::size_t at = 100; at + 8 < input.size(); at += 997) {
    input.replace(at, 7, value.substr(0, 7));
  }
  REQUIRE(input.find(value) == std::string::npos);
  for (std::vector<std::size_t> sizes : {std::vector<std::size_t>{1}, {7, 13}, {4096}, {65536}}) {
    Redactor r;
    r.add("bin", Secret(value));
    CHECK(run_chunks(r, input, sizes) == input);
  }
}

TEST_CASE("binary output with a value: only the value's bytes change") {
  std::string input("\x00\x01\xfe\xff", 4);
  input += "Zm9vYmFyYmF6"; // base64 of "foobarbaz"
  input += std::string("\x00\x00\x80", 3);
  Redactor r;
  r.add("f", Secret("foobarbaz"));
  CHECK(run_chunks(r, input, {5}) ==
        std::string("\x00\x01\xfe\xff", 4) + "[redacted:f]" + std::string("\x00\x00\x80", 3));
}

TEST_CASE("encodings_of lists each distinct form once") {
  auto forms = encodings_of("abc_def"); // only unreserved: percent forms equal the raw value
  std::vector<std::string> seen;
  for (auto& f : forms) {
    seen.emplace_back(f.reveal());
  }
  CHECK(std::count(seen.begin(), seen.end(), "abc_def") == 1);
  CHECK(std::find(seen.begin(), seen.end(), "YWJjX2RlZg==") != seen.end());
  CHECK(std::find(seen.begin(), seen.end(), "YWJjX2RlZg") != seen.end());
}

TEST_SUITE_END();
