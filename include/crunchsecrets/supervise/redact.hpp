// Output redaction: a streaming filter that replaces every delivered secret value, and its
// common encodings, with "[redacted:<name>]" and passes every other byte through unchanged.
#pragma once

#include "crunchsecrets/util/secret.hpp"

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace cs::supervise {

// Values shorter than this many bytes are not redacted: a two-letter value would turn most
// output into noise and reveal, by the replacements, where the short value occurs.
inline constexpr std::size_t k_min_redact_length = 4;

// The encodings of a value that are also redacted (README.md, "Output redaction"):
//   raw           the bytes themselves;
//   base64        RFC 4648 section 4 of the value alone, with and without "=" padding;
//   base64url     RFC 4648 section 5 (alphabet "-_"), with and without padding;
//   percent       RFC 3986 percent-encoding of every byte outside the unreserved set
//                 (A-Z a-z 0-9 - . _ ~), with upper-case and with lower-case hex digits.
// Encodings identical to the raw value (a value of only unreserved characters) are not added
// twice. Base64 text of a longer stream that merely contains the value is not recognised:
// its alignment makes the encoding depend on the bytes before it.
std::vector<util::Secret> encodings_of(std::string_view value);

// A filter fed with the chunks a child writes, in order, that returns what may be written
// out now. Bytes that could be the start of a value are held back until the next chunk (or
// `finish()`) decides, so a value split across writes is still found. At each position the
// longest matching form wins. The held bytes are wiped when released.
class Redactor {
public:
  // Adds `value` (and its encodings) to be replaced by "[redacted:<name>]". Returns false,
  // adding nothing, when the value is shorter than `k_min_redact_length`.
  bool add(const std::string& name, const util::Secret& value);

  // Filters the next chunk; appends the bytes that can be written now to `out`.
  void feed(std::string_view chunk, std::string& out);
  // Ends the stream: appends every byte still held (no value can complete any more).
  void finish(std::string& out);

  // Bytes currently held back (for tests and the supervisor's flush decisions).
  std::size_t held() const { return m_pending.size(); }
  std::size_t pattern_count() const { return m_patterns.size(); }

private:
  struct Pattern {
    util::Secret bytes;
    std::string replacement;
  };
  // Processes `m_pending`; when `final`, a partial match at the end is not a match.
  void drain(std::string& out, bool final);

  std::vector<Pattern> m_patterns;
  // For each first byte, the indexes of the patterns starting with it.
  std::array<std::vector<std::size_t>, 256> m_by_first;
  util::SecureString m_pending;
};

} // namespace cs::supervise
