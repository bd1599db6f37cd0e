// Helpers shared by the unit tests: a per-test temporary directory and small file utilities.
#pragma once

#include "crunchsecrets/core/error.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <doctest/doctest.h>
#include <exception>
#include <filesystem>
#include <fstream>
#include <linux/magic.h>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <vector>

namespace cs::test {

// Set by the listener in main.cpp when an assertion of the running test fails.
extern bool g_current_test_failed;

// A fresh directory under `base` (default /tmp, which is on disk here; pass "/dev/shm" for a
// tmpfs one). Removed with everything in it when the test passes; kept, and its path printed,
// when the test failed or is being unwound by an exception.
class TempDir {
public:
  explicit TempDir(const std::string& base = "/tmp") {
    std::string templ = base + "/cs-unit-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      FAIL("mkdtemp failed under " << base);
    }
    m_path = templ;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    if (g_current_test_failed || std::uncaught_exceptions() > 0) {
      std::fprintf(stderr, "unit-tests: keeping %s of a failed test\n", m_path.c_str());
      return;
    }
    std::error_code ec;
    // Files are created read-only (0400); as non-root the directories may need write back.
    std::filesystem::remove_all(m_path, ec);
  }
  const std::string& path() const { return m_path; }
  std::string operator/(const std::string& rel) const { return m_path + "/" + rel; }

private:
  std::string m_path;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool exists_nofollow(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// The names in directory `dir`, sorted, including dot files.
inline std::string list_dir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) {
    out += (out.empty() ? "" : " ") + n;
  }
  return out;
}

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Runs `f` and returns the `core::Error` it throws, or nothing when it returns normally.
template <typename F>
std::optional<core::Error> error_of(F&& f) {
  try {
    f();
  } catch (const core::Error& e) {
    return e;
  }
  return std::nullopt;
}

// The permission bits of `path` (not following a symlink).
inline unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// True when `path` is on tmpfs or ramfs.
inline bool on_memory_fs(const std::string& path) {
  struct statfs st {};
  REQUIRE(::statfs(path.c_str(), &st) == 0);
  return static_cast<unsigned long>(st.f_type) == TMPFS_MAGIC ||
         static_cast<unsigned long>(st.f_type) == RAMFS_MAGIC;
}

inline int code_of(const core::Error& e) {
  return static_cast<int>(e.code());
}

} // namespace cs::test

#define CHECK_CONTAINS(haystack, needle)                                                           \
  CHECK_MESSAGE(::cs::test::contains((haystack), (needle)),                                        \
                "'" << std::string(std::string_view(haystack)) << "' does not contain '"           \
                    << std::string(std::string_view(needle)) << "'")
#define CHECK_NOT_CONTAINS(haystack, needle)                                                       \
  CHECK_MESSAGE(!::cs::test::contains((haystack), (needle)),                                       \
                "'" << std::string(std::string_view(haystack)) << "' contains '"                   \
                    << std::string(std::string_view(needle)) << "'")
