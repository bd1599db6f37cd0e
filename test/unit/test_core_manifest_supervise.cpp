#include "crunchsecrets/core/manifest.hpp"
#include "testutil.hpp"

#include <csignal>
#include <doctest/doctest.h>

using namespace cs::core;
using namespace std::chrono_literals;

namespace {

std::string error_text(const std::string& yaml) {
  const auto e = cs::test::error_of([&] { parse_manifest(yaml, "m.yml"); });
  REQUIRE_MESSAGE(e.has_value(), "the manifest was accepted");
  CHECK(e->code() == ExitCode::invalid_input);
  return e->what();
}

} // namespace

TEST_SUITE_BEGIN("core::Manifest supervise");

TEST_CASE("the README's supervise example parses into per-secret policies and the block") {
  const Manifest m = parse_manifest(R"(version: 1
secrets:
  db:
    path: database/creds/app
    engine: generic
    on_change: signal
    signal: HUP
  app:
    path: secret/data/app
    refresh: 5m
    on_change: restart
supervise:
  stop_signal: TERM
  grace: 10s
  on_expiry: stop
  signal_group: false
  redact: true
)",
                                    "m.yml");
  REQUIRE(m.secrets.size() == 2);
  CHECK(m.secrets[0].on_change == "signal");
  CHECK(m.secrets[0].change_signal == SIGHUP);
  CHECK_FALSE(m.secrets[0].refresh.has_value());
  CHECK(m.secrets[1].refresh == std::chrono::milliseconds(300000));
  CHECK(m.secrets[1].on_change == "restart");
  CHECK(m.supervise.present);
  CHECK(m.supervise.stop_signal == SIGTERM);
  CHECK(m.supervise.grace == std::chrono::milliseconds(10000));
  CHECK(m.supervise.on_expiry == "stop");
  CHECK(m.supervise.redact);
  CHECK(m.wants_supervise());
}

TEST_CASE("supervise mode is chosen by refresh, on_change or the block, and not otherwise") {
  CHECK_FALSE(parse_manifest("version: 1\nsecrets:\n  a:\n    path: secret/data/a\n", "m.yml")
                  .wants_supervise());
  CHECK(parse_manifest("version: 1\nsecrets:\n  a:\n    path: secret/data/a\n    refresh: 30s\n",
                       "m.yml")
            .wants_supervise());
  CHECK(parse_manifest("version: 1\nsecrets:\n  a:\n    path: secret/data/a\n    on_change: none\n",
                       "m.yml")
            .wants_supervise());
  CHECK(parse_manifest("version: 1\nsupervise:\n", "m.yml").wants_supervise());
  CHECK(parse_manifest("version: 1\nsupervise: {}\n", "m.yml").wants_supervise());
}

TEST_CASE("bad supervise fields are refused with file:line") {
  CHECK_CONTAINS(error_text("version: 1\nsecrets:\n  a:\n    path: x/y\n    on_change: reload\n"),
                 "m.yml:5: on_change 'reload' is not one of signal, restart, none");
  CHECK_CONTAINS(error_text("version: 1\nsecrets:\n  a:\n    path: x/y\n    signal: BOGUS\n"),
                 "m.yml:5: signal 'BOGUS' is not a signal name");
  CHECK_CONTAINS(
      error_text("version: 1\nsecrets:\n  a:\n    path: x/y\n    on_change: restart\n    signal: "
                 "HUP\n"),
      "'signal' goes with on_change: signal");
  CHECK_CONTAINS(error_text("version: 1\nsecrets:\n  a:\n    path: x/y\n    refresh: soon\n"),
                 "m.yml:5: refresh:");
  CHECK_CONTAINS(error_text("version: 1\nsupervise:\n  grace: 1x\n"), "m.yml:3: supervise.grace");
  CHECK_CONTAINS(error_text("version: 1\nsupervise:\n  on_expiry: panic\n"),
                 "on_expiry 'panic' is not one of stop, keep");
  CHECK_CONTAINS(error_text("version: 1\nsupervise:\n  restart: true\n"),
                 "unknown field 'restart' in supervise");
}

TEST_SUITE_END();
