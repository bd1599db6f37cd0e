#include "crunchsecrets/util/duration.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>

using cs::util::parse_duration;
using ms = std::chrono::milliseconds;

namespace {

long long parsed_ms(std::string_view text) {
  auto r = parse_duration(text);
  REQUIRE_MESSAGE(r.ok(), "'" << std::string(text) << "': " << r.error());
  return static_cast<long long>(r->count());
}

} // namespace

TEST_SUITE_BEGIN("util::parse_duration");

TEST_CASE("a plain number is seconds") {
  CHECK(parsed_ms("30") == 30000);
  CHECK(parsed_ms("0") == 0);
  CHECK(parsed_ms("1.5") == 1500);
  CHECK(parsed_ms("0.25") == 250);
  CHECK(parsed_ms(".5") == 500);
  CHECK(parsed_ms("5.") == 5000);
  CHECK(parsed_ms("007") == 7000);
}

TEST_CASE("Go-style units are accepted and combined") {
  CHECK(parsed_ms("30s") == 30000);
  CHECK(parsed_ms("1m30s") == 90000);
  CHECK(parsed_ms("500ms") == 500);
  CHECK(parsed_ms("2h") == 7200000);
  CHECK(parsed_ms("1h2m3s") == 3723000);
  CHECK(parsed_ms("1.5s") == 1500);
  CHECK(parsed_ms("1s500ms") == 1500);
  CHECK(parsed_ms("1m") == 60000);
  CHECK(parsed_ms("1500us") == 2); // 1.5 ms rounds to the nearest millisecond
  CHECK(parsed_ms("1000000ns") == 1);
}

TEST_CASE("milliseconds are not mistaken for minutes") {
  CHECK(parsed_ms("5ms") == 5);
  CHECK(parsed_ms("5m") == 300000);
  CHECK(parsed_ms("5m5ms") == 300005);
}

TEST_CASE("an empty text is refused") {
  auto r = parse_duration("");
  REQUIRE_FALSE(r.ok());
  CHECK_CONTAINS(r.error(), "empty");
}

TEST_CASE("unknown units are refused and the message names the text") {
  for (const char* bad : {"30x", "10d", "1y", "5sec", "3 s", "1S", "1M"}) {
    CAPTURE(bad);
    auto r = parse_duration(bad);
    REQUIRE_FALSE(r.ok());
    CHECK_CONTAINS(r.error(), bad);
  }
}

TEST_CASE("malformed numbers are refused") {
  for (const char* bad : {"abc", "s", "ms", ".", "-5", "-5s", "+5", " 30", "30 ", "1e3", "1m30",
                          "1m-30s", "1..5", "1.5.5s", "0x10", "inf", "nan"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_duration(bad).ok());
  }
}

TEST_CASE("absurdly large durations are refused") {
  CHECK_FALSE(parse_duration("99999999999999h").ok());
  CHECK(parse_duration("1000h").ok());
  // Found by fuzz-duration: numbers beyond double's range are errors, not exceptions.
  CHECK_FALSE(parse_duration("1" + std::string(400, '0')).ok());
  CHECK_FALSE(parse_duration("10s" + std::string(400, '2') + "s").ok());
}

TEST_SUITE_END();
