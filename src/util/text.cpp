#include "crunchsecrets/util/text.hpp"

#include <fmt/format.h>

namespace cs::util {

namespace {

// The length of the UTF-8 sequence starting at `text[i]` and its code point, or 0 when the
// bytes there are not a well-formed sequence (overlong forms, surrogates and code points above
// U+10FFFF are not).
std::size_t utf8_sequence(std::string_view text, std::size_t i, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  std::size_t len = 0;
  char32_t min = 0;
  if ((b0 & 0xe0) == 0xc0) {
    len = 2;
    cp = b0 & 0x1f;
    min = 0x80;
  } else if ((b0 & 0xf0) == 0xe0) {
    len = 3;
    cp = b0 & 0x0f;
    min = 0x800;
  } else if ((b0 & 0xf8) == 0xf0) {
    len = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > text.size()) {
    return 0;
  }
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xc0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return len;
}

// Code points a terminal or a text viewer acts on beyond the C0 range: C1 controls (0x9b is
// CSI on terminals that honour 8-bit controls), the line and paragraph separators, and the
// bidirectional embeddings, overrides and isolates that reorder what is shown.
bool is_special(char32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0x200e ||
         cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

} // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    char32_t cp = 0;
    const std::size_t len = utf8_sequence(text, i, cp);
    if (len == 0) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[i]));
      i += 1;
      continue;
    }
    if (cp == '\n' || cp == '\r' || cp == '\t') {
      out += ' ';
    } else if (cp < 0x20 || cp == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(cp));
    } else if (is_special(cp)) {
      out += fmt::format("\\u{{{:04x}}}", static_cast<unsigned>(cp));
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

void append_json_string(std::string& out, std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    char32_t cp = 0;
    const std::size_t len = utf8_sequence(text, i, cp);
    if (len == 0) {
      out += "\\ufffd";
      i += 1;
      continue;
    }
    switch (cp) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\r':
      out += "\\r";
      break;
    default:
      if (cp < 0x20 || cp == 0x7f || is_special(cp)) {
        out += fmt::format("\\u{:04x}", static_cast<unsigned>(cp));
      } else {
        out.append(text.substr(i, len));
      }
    }
    i += len;
  }
}

std::string excerpt(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) {
    return printable(text);
  }
  std::size_t cut = limit;
  // Back up to the start of a UTF-8 sequence so that none is split.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) {
    --cut;
  }
  return printable(text.substr(0, cut)) + fmt::format("... ({} bytes)", text.size());
}

std::optional<std::string> credential_problem(std::string_view value) {
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n' || c == '\r') {
      return std::string("contains a line break (CR or LF), which would end the HTTP header it "
                         "is sent in");
    }
    if (c == '\0') {
      return std::string("contains a NUL byte, which would cut it short");
    }
    if (u < 0x20 || u == 0x7f) {
      return fmt::format("contains a control character (0x{:02x})", u);
    }
  }
  if (!value.empty() && (value.front() == ' ' || value.back() == ' ')) {
    return std::string("begins or ends with whitespace");
  }
  return std::nullopt;
}

} // namespace cs::util
