#include "crunchsecrets/supervise/redact.hpp"

#include <algorithm>
#include <cstring>

namespace cs::supervise {

namespace {

util::SecureString base64(std::string_view in, bool url, bool pad) {
  static constexpr char std_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static constexpr char url_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const char* a = url ? url_alphabet : std_alphabet;
  util::SecureString out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const auto n = (static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16) |
                   (static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8) |
                   static_cast<unsigned>(static_cast<unsigned char>(in[i + 2]));
    out += a[(n >> 18) & 63];
    out += a[(n >> 12) & 63];
    out += a[(n >> 6) & 63];
    out += a[n & 63];
  }
  const std::size_t rest = in.size() - i;
  if (rest > 0) {
    unsigned n = static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16;
    if (rest == 2) {
      n |= static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8;
    }
    out += a[(n >> 18) & 63];
    out += a[(n >> 12) & 63];
    if (rest == 2) {
      out += a[(n >> 6) & 63];
    }
    if (pad) {
      out.append(rest == 1 ? 2 : 1, '=');
    }
  }
  return out;
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

util::SecureString percent(std::string_view in, bool upper) {
  const char* hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  util::SecureString out;
  for (char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (unreserved(c)) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

} // namespace

std::vector<util::Secret> encodings_of(std::string_view value) {
  std::vector<util::Secret> forms;
  auto add = [&](util::SecureString s) {
    util::Secret candidate(std::move(s));
    if (candidate.empty()) {
      return;
    }
    for (const auto& f : forms) {
      if (f == candidate) {
        return;
      }
    }
    forms.push_back(std::move(candidate));
  };
  add(util::SecureString(value.data(), value.size()));
  add(base64(value, false, true));
  add(base64(value, false, false));
  add(base64(value, true, true));
  add(base64(value, true, false));
  add(percent(value, true));
  add(percent(value, false));
  return forms;
}

bool Redactor::add(const std::string& name, const util::Secret& value) {
  if (value.size() < k_min_redact_length) {
    return false;
  }
  for (auto& form : encodings_of(value.reveal())) {
    const bool known = std::any_of(m_patterns.begin(), m_patterns.end(),
                                   [&](const Pattern& p) { return p.bytes == form; });
    if (known) {
      continue; // the same value under another name keeps its first name
    }
    const auto first = static_cast<unsigned char>(form.reveal()[0]);
    m_by_first[first].push_back(m_patterns.size());
    m_patterns.push_back(Pattern{std::move(form), "[redacted:" + name + "]"});
  }
  return true;
}

void Redactor::feed(std::string_view chunk, std::string& out) {
  if (m_patterns.empty() && m_pending.empty()) {
    out.append(chunk);
    return;
  }
  m_pending.append(chunk.data(), chunk.size());
  drain(out, false);
}

void Redactor::finish(std::string& out) {
  drain(out, true);
  out.append(m_pending.data(), m_pending.size());
  util::wipe_string(m_pending);
}

void Redactor::drain(std::string& out, bool final) {
  const char* data = m_pending.data();
  const std::size_t n = m_pending.size();
  std::size_t i = 0;
  std::size_t copied = 0; // bytes of m_pending already appended to `out` or replaced
  while (i < n) {
    const auto& candidates = m_by_first[static_cast<unsigned char>(data[i])];
    const Pattern* best = nullptr;
    bool undecided = false;
    const std::size_t avail = n - i;
    for (std::size_t idx : candidates) {
      const std::string_view p = m_patterns[idx].bytes.reveal();
      if (avail >= p.size()) {
        if (std::memcmp(data + i, p.data(), p.size()) == 0 &&
            (best == nullptr || p.size() > best->bytes.size())) {
          best = &m_patterns[idx];
        }
      } else if (!final && std::memcmp(data + i, p.data(), avail) == 0) {
        // A longer form may still complete with the next chunk; it would beat any full match
        // found here, which is at most `avail` bytes long.
        undecided = true;
        break;
      }
    }
    if (undecided) {
      break;
    }
    if (best != nullptr) {
      out.append(data + copied, i - copied);
      out.append(best->replacement);
      i += best->bytes.size();
      copied = i;
    } else {
      ++i;
    }
  }
  out.append(data + copied, i - copied);
  if (i == n) {
    util::wipe_string(m_pending);
  } else if (i > 0) {
    util::SecureString rest(data + i, n - i);
    util::wipe_string(m_pending);
    m_pending = std::move(rest);
  }
}

} // namespace cs::supervise
