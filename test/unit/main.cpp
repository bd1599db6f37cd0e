// The one unit-test binary. The listener below lets `TempDir` keep the directory of a test
// that failed, so its files can be inspected.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "testutil.hpp"

#include <doctest/doctest.h>

namespace cs::test {

bool g_current_test_failed = false;

namespace {

// Records whether the running test case (or subcase) has failed an assertion so far.
struct FailureListener : doctest::IReporter {
  explicit FailureListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { g_current_test_failed = false; }
  void test_case_reenter(const doctest::TestCaseData&) override { g_current_test_failed = false; }
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& data) override {
    if (data.m_failed) {
      g_current_test_failed = true;
    }
  }
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

} // namespace

} // namespace cs::test

DOCTEST_REGISTER_LISTENER("tempdir-keeper", 1, cs::test::FailureListener);
