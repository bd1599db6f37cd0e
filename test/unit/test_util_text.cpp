#include "crunchsecrets/util/text.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <string>

using cs::util::append_json_string;
using cs::util::credential_problem;
using cs::util::excerpt;
using cs::util::printable;

TEST_SUITE_BEGIN("util::text");

TEST_CASE("printable keeps printable UTF-8 and shows terminal controls as escapes") {
  CHECK(printable("plain /path: ok") == "plain /path: ok");
  CHECK(printable("p\xc3\xa4sswort \xe2\x9c\x93") == "p\xc3\xa4sswort \xe2\x9c\x93");
  CHECK(printable("a\x1b[31mred\x07") == "a\\x1b[31mred\\x07");
  CHECK(printable("l1\nl2\r\tx") == "l1 l2  x");
  CHECK(printable(std::string("nul\0end", 7)) == "nul\\x00end");
  CHECK(printable("del\x7f") == "del\\x7f");
  // C1 CSI (U+009B) and a right-to-left override (U+202E).
  CHECK(printable("\xc2\x9b"
                  "2J \xe2\x80\xae"
                  "x") == "\\u{009b}2J \\u{202e}x");
}

TEST_CASE("printable shows each byte that is not UTF-8 as \\xNN") {
  CHECK(printable("a\xff\xfe"
                  "b") == "a\\xff\\xfeb");
  CHECK(printable("\xc3") == "\\xc3");                   // cut short
  CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");          // overlong '/'
  CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80"); // a surrogate
}

TEST_CASE("append_json_string always yields valid UTF-8 JSON") {
  const std::string nasty = "a\"b\\c\n\x1b[31m\xff\xfe \xc2\x9b \xe2\x80\xae \xe6\x97\xa5";
  std::string out = "\"";
  append_json_string(out, nasty);
  out += "\"";
  const auto j = nlohmann::json::parse(out); // throws on invalid UTF-8 or escapes
  CHECK(j.get<std::string>() == "a\"b\\c\n\x1b[31m\xef\xbf\xbd\xef\xbf\xbd \xc2\x9b \xe2\x80\xae "
                                "\xe6\x97\xa5");
  CHECK(out.find('\x1b') == std::string::npos);
  CHECK(out.find("\xc2\x9b") == std::string::npos);
  CHECK(out.find("\\u009b") != std::string::npos);
}

TEST_CASE("excerpt cuts long inputs at a character boundary and says how long they were") {
  CHECK(excerpt("short") == "short");
  const std::string long_value(100000, 'A');
  const std::string e = excerpt(long_value);
  CHECK(e == std::string(64, 'A') + "... (100000 bytes)");
  // 63 ASCII bytes then a two-byte character: the cut falls before it, not inside it.
  const std::string mixed = std::string(63, 'a') + "\xc3\xa4" + std::string(10, 'b');
  CHECK(excerpt(mixed) == std::string(63, 'a') + "... (75 bytes)");
}

TEST_CASE("a credential is one line of printable characters") {
  CHECK_FALSE(credential_problem("s.abcDEF123").has_value());
  CHECK_FALSE(
      credential_problem("v2/zzzzz-gj3su-000000000000000/secret/zzzzz-dz642-x").has_value());
  CHECK(credential_problem("tok\r\nX-Injected: yes")->find("line break") != std::string::npos);
  CHECK(credential_problem("tok\n")->find("line break") != std::string::npos);
  CHECK(credential_problem(std::string("tok\0more", 8))->find("NUL") != std::string::npos);
  CHECK(credential_problem("tok\x1b")->find("control character") != std::string::npos);
  CHECK(credential_problem("tok\t")->find("control character") != std::string::npos);
  CHECK(credential_problem(" tok")->find("whitespace") != std::string::npos);
  CHECK(credential_problem("tok ")->find("whitespace") != std::string::npos);
  // The message never holds the value.
  CHECK(credential_problem("CANARY-7f1e\r\n")->find("CANARY") == std::string::npos);
}

TEST_SUITE_END();
