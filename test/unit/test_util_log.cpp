#include "crunchsecrets/util/log.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace cs::util::log;

TEST_SUITE_BEGIN("util::log");

TEST_CASE("a text line is the program, the level and the message") {
  CHECK(format_line(Level::error, "bad thing: fix it", Fields{}, Format::text, "") ==
        "crunch-secrets: error: bad thing: fix it\n");
}

TEST_CASE("a JSON line is one object with time, level, msg and the set fields") {
  Fields f;
  f.reference = "vault:secret/data/app#k";
  f.path = "secret/data/app";
  f.status = 403;
  f.attempt = 2;
  f.exit_code = 77;
  const std::string line =
      format_line(Level::error, "denied \"x\"\nnext", f, Format::json, "2026-12-04T20:41:07.123Z");
  REQUIRE(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  const auto j = nlohmann::json::parse(line);
  CHECK(j["time"] == "2026-12-04T20:41:07.123Z");
  CHECK(j["level"] == "error");
  CHECK(j["msg"] == "denied \"x\" next");
  CHECK(j["reference"] == "vault:secret/data/app#k");
  CHECK(j["path"] == "secret/data/app");
  CHECK(j["status"] == 403);
  CHECK(j["attempt"] == 2);
  CHECK(j["exit_code"] == 77);
}

TEST_CASE("a text line shows control characters and bytes that are not UTF-8 escaped") {
  CHECK(format_line(Level::error, "cannot read /x/\x1b]0;t\x07\xff", Fields{}, Format::text, "") ==
        "crunch-secrets: error: cannot read /x/\\x1b]0;t\\x07\\xff\n");
}

TEST_CASE("a JSON line is valid UTF-8 whatever the message holds") {
  Fields f;
  f.path = "a/\xff";
  const auto line = format_line(Level::error, "m \xc3\x28 \x1b", f, Format::json, "t");
  const auto j = nlohmann::json::parse(line); // throws on invalid UTF-8
  CHECK(j["msg"] == "m \xef\xbf\xbd( \x1b");
  CHECK(j["path"] == "a/\xef\xbf\xbd");
}

TEST_CASE("unset fields are left out of JSON lines") {
  const auto j = nlohmann::json::parse(format_line(Level::info, "m", Fields{}, Format::json, "t"));
  CHECK(j.size() == 3);
}

TEST_CASE("levels parse from their names") {
  CHECK(parse_level("error") == Level::error);
  CHECK(parse_level("info") == Level::info);
  CHECK(parse_level("debug") == Level::debug);
  CHECK_FALSE(parse_level("loud").has_value());
  CHECK_FALSE(parse_level("").has_value());
}

TEST_CASE("a message that echoed a whole input is cut, in both formats") {
  const std::string message = "bad value '" + std::string(1 << 20, 'v') + "': fix it";
  for (const Format f : {Format::text, Format::json}) {
    const auto line = format_line(Level::error, message, Fields{}, f, "t");
    CHECK(line.size() < 4400);
    CHECK_CONTAINS(line, "vvvv... (" + std::to_string(message.size()) + " bytes)");
  }
  const std::string fits(4096, 'a');
  CHECK(format_line(Level::error, fits, Fields{}, Format::text, "") ==
        "crunch-secrets: error: " + fits + "\n");
}

TEST_SUITE_END();
