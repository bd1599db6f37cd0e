// Untrusted text made safe to show: in a terminal, inside a JSON string, cut to a sane length;
// and the check that a credential can travel in an HTTP header or a login body unchanged.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace cs::util {

// `text` with everything a terminal could act on shown as an escape, so that a file name or a
// server's message cannot recolour, retitle or rewrite the terminal: C0 controls and DEL as
// `\xNN` (line breaks and tabs become spaces: a log line stays one line), C1 controls and the
// Unicode line separators and bidirectional overrides as `\u{NNNN}`, and each byte that is not
// part of a UTF-8 sequence as `\xNN`. Printable UTF-8 is kept as it is.
std::string printable(std::string_view text);

// Appends `text` to `out` as the inside of a JSON string literal (without the quotes). The
// result is valid UTF-8 whatever `text` holds: each byte that is not part of a UTF-8 sequence
// becomes U+FFFD (as Go's encoding/json does); `"` and `\` are escaped, and control, line
// separator and bidirectional override characters are written as `\uNNNN`.
void append_json_string(std::string& out, std::string_view text);

// For echoing an input that is not secret in a message: `text` cut to at most `limit` bytes
// (never inside a UTF-8 sequence) with "... (N bytes)" appended when it was cut, then made
// `printable`.
std::string excerpt(std::string_view text, std::size_t limit = 64);

// Why `value` cannot be a credential (a Vault token, a secret id, an Arvados token), or nothing
// when it can: a credential is sent in an HTTP header or a request body as it is, so a line
// break would start a header of the sender's choosing, a NUL would cut it short, and other
// control characters or whitespace around it are a mistake of whoever wrote it. The text never
// includes the value.
std::optional<std::string> credential_problem(std::string_view value);

} // namespace cs::util
