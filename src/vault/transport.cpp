#include "crunchsecrets/vault/transport.hpp"

#include <algorithm>
#include <stdexcept>

namespace cs::vault {

TransferWindow::TransferWindow(std::size_t total, std::size_t limit)
    : m_limit(std::max<std::size_t>(1, limit)), m_started(total), m_ended(total) {}

std::optional<std::size_t> TransferWindow::next() {
  if (m_in_flight >= m_limit || m_next >= m_started.size()) {
    return std::nullopt;
  }
  m_started[m_next] = true;
  ++m_in_flight;
  return m_next++;
}

void TransferWindow::set_limit(std::size_t limit) {
  m_limit = std::max<std::size_t>(1, limit);
}

void TransferWindow::finish(std::size_t i) {
  // A transfer finishing twice, or one never started, would let the window overfill: a bug in
  // the transport, not something to carry on from.
  if (i >= m_started.size() || !m_started[i] || m_ended[i]) {
    throw std::logic_error("TransferWindow::finish: request not in flight");
  }
  m_ended[i] = true;
  --m_in_flight;
  ++m_finished;
}

} // namespace cs::vault

namespace cs::vault {

namespace {

std::string_view trim_blanks(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && blank(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && blank(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// The value of `digits` (all decimal digits, at most 9 of them), or -1.
long number(std::string_view digits) {
  if (digits.empty() || digits.size() > 9) {
    return -1;
  }
  long n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return -1;
    }
    n = n * 10 + (c - '0');
  }
  return n;
}

// Index of `word` in `names` (three letters each, case-sensitive as RFC 9110 says), or -1.
int index_of(std::string_view word, std::string_view names) {
  for (std::size_t i = 0; i + 3 <= names.size(); i += 3) {
    if (names.substr(i, 3) == word) {
      return static_cast<int>(i / 3);
    }
  }
  return -1;
}

// An IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT", as a point in time; nothing if malformed.
// Seconds, not the clock's nanoseconds: a date in year 9999 would overflow those.
std::optional<std::chrono::sys_seconds> imf_fixdate(std::string_view s) {
  using namespace std::chrono;
  if (s.size() != 29 || s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
      s[19] != ':' || s[22] != ':' || s.substr(25) != " GMT" ||
      index_of(s.substr(0, 3), "MonTueWedThuFriSatSun") < 0) {
    return std::nullopt;
  }
  const int mon = index_of(s.substr(8, 3), "JanFebMarAprMayJunJulAugSepOctNovDec");
  const long day = number(s.substr(5, 2));
  const long yr = number(s.substr(12, 4));
  const long hh = number(s.substr(17, 2));
  const long mm = number(s.substr(20, 2));
  const long ss = number(s.substr(23, 2));
  if (mon < 0 || day < 0 || yr < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60) {
    return std::nullopt;
  }
  const year_month_day date{year{static_cast<int>(yr)}, month{static_cast<unsigned>(mon + 1)},
                            std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) {
    return std::nullopt; // 31 Feb, 00 Jan
  }
  return sys_days{date} + hours{hh} + minutes{mm} + seconds{ss};
}

} // namespace

std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) noexcept {
  using namespace std::chrono;
  const std::string_view v = trim_blanks(value);
  if (!v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // More digits than a day's seconds can have is a day (and cannot overflow).
    const long n = number(v);
    return n < 0 ? k_max_retry_after : std::min<milliseconds>(seconds{n}, k_max_retry_after);
  }
  const auto when = imf_fixdate(v);
  if (!when) {
    return std::nullopt;
  }
  const milliseconds ahead =
      time_point_cast<milliseconds>(*when) - time_point_cast<milliseconds>(now);
  return std::clamp<milliseconds>(ahead, milliseconds{0}, k_max_retry_after);
}

} // namespace cs::vault
