#include "crunchsecrets/core/manifest.hpp"
#include "crunchsecrets/core/options.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <set>
#include <string>

using namespace cs::core;

TEST_SUITE_BEGIN("core::options");

TEST_CASE("every option has help, and values have a metavariable in capitals") {
  std::set<std::string> names;
  for (const OptionDoc& o : option_docs()) {
    CAPTURE(std::string(o.names));
    CHECK_FALSE(o.help.empty());
    // The zsh completion quotes descriptions with single quotes.
    CHECK(o.help.find('\'') == std::string_view::npos);
    CHECK(names.insert(std::string(o.names)).second);
    for (char c : o.metavar) {
      CHECK(((c >= 'A' && c <= 'Z') || c == '_'));
    }
  }
  CHECK(option_doc("--manifest").metavar == "FILE");
  CHECK(option_doc("--wait").metavar == "DURATION");
  CHECK(option_doc("--vault-addr").metavar == "URL");
  CHECK(option_doc("--auth").metavar == "METHOD");
  CHECK(option_doc("--quiet").metavar.empty());
}

TEST_CASE("the settings without flags are the environment defaults of their options") {
  CHECK(option_doc("--auth").env == "CRUNCH_SECRETS_AUTH");
  CHECK(option_doc("--wait").env == "CRUNCH_SECRETS_WAIT");
  CHECK(option_doc("--log-level").env == "CRUNCH_SECRETS_LOG_LEVEL");
  CHECK(option_doc("--log-format").env == "CRUNCH_SECRETS_LOG_FORMAT");
  for (const char* name : {"--auth", "--wait", "--log-level", "--log-format"}) {
    CHECK(option_doc(name).env_is_default);
  }
  // Read where their precedence is decided, not as plain option defaults.
  CHECK_FALSE(option_doc("--secrets-dir").env_is_default);
  CHECK_THROWS_AS(option_doc("--no-such-option"), std::out_of_range);
}

TEST_CASE("--auth offers exactly the names of the auth method table, in its order") {
  // The options table is constexpr data, so it spells the choices out; the table that parses
  // them (auth_method_names) is the reference.
  CHECK(option_doc("--auth").choices ==
        fmt::format("{}", fmt::join(auth_method_names().names(), ",")));
  CHECK(option_doc("--auth").help == "Login method: " + auth_method_names().list(" or "));
}

TEST_CASE("the usage lines are the real ones") {
  CHECK(usage_text("run") == "crunch-secrets run [OPTIONS] -- COMMAND [ARG...]");
  CHECK(usage_text("check").rfind("crunch-secrets check [OPTIONS]", 0) == 0);
}

TEST_SUITE_END();
