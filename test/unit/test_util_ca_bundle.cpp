#include "crunchsecrets/util/ca_bundle.hpp"
#include "testutil.hpp"

#include <doctest/doctest.h>
#include <fstream>
#include <set>
#include <sys/stat.h>

using cs::util::ca_bundle_candidates;
using cs::util::find_ca_bundle;
using cs::util::readable_file;

TEST_SUITE_BEGIN("util::ca_bundle");

TEST_CASE("crunch-run's bundle comes first, then Debian's, then the other systems'") {
  const auto& c = ca_bundle_candidates();
  REQUIRE(c.size() >= 5);
  CHECK(c[0] == "/etc/arvados/ca-certificates.crt");
  CHECK(c[1] == "/etc/ssl/certs/ca-certificates.crt");
  CHECK(std::set<std::string>(c.begin(), c.end()).count("/etc/pki/tls/certs/ca-bundle.crt") == 1);
}

TEST_CASE("the first usable candidate wins") {
  std::set<std::string> present = {"/etc/ssl/cert.pem", "/etc/pki/tls/certs/ca-bundle.crt"};
  auto usable = [&](const std::string& p) { return present.count(p) == 1; };
  CHECK(find_ca_bundle(usable) == "/etc/pki/tls/certs/ca-bundle.crt");
  present.insert("/etc/arvados/ca-certificates.crt");
  CHECK(find_ca_bundle(usable) == "/etc/arvados/ca-certificates.crt");
}

TEST_CASE("no usable candidate gives nothing, so libcurl reports the missing CA") {
  CHECK_FALSE(find_ca_bundle([](const std::string&) { return false; }).has_value());
}

TEST_CASE("only readable regular files are usable") {
  cs::test::TempDir dir;
  const std::string file = dir.path() + "/bundle.pem";
  std::ofstream(file) << "not checked here\n";
  CHECK(readable_file(file));
  CHECK_FALSE(readable_file(dir.path()));
  CHECK_FALSE(readable_file(dir.path() + "/missing.pem"));
}

TEST_SUITE_END();
