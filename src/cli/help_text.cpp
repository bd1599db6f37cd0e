#include "help_text.hpp"

#include "crunchsecrets/core/options.hpp"
#include "crunchsecrets/util/ca_bundle.hpp"

#include <array>
#include <sstream>

namespace cs::cli {

using core::ExitCode;

std::string exit_code_meaning(ExitCode code) {
  // No default: a new exit code that is not described here fails the build (-Wswitch).
  switch (code) {
  case ExitCode::ok:
    return "success (check); run replaces itself with COMMAND and exits with its status";
  case ExitCode::usage:
    return "usage: bad option or missing command; see crunch-secrets --help";
  case ExitCode::invalid_input:
    return "invalid reference, manifest or template; fix the named file:line or reference";
  case ExitCode::no_input:
    return "an input file (manifest, template, token file) is missing or unreadable, or "
           "standard input (--token-file -) did not end within --wait; check the path";
  case ExitCode::unavailable:
    return "Vault unavailable until the --wait deadline (connection failed, sealed, 5xx), or a "
           "single-use login's outcome is unknown; check VAULT_ADDR and Vault's status, or raise "
           "--wait";
  case ExitCode::internal:
    return "internal error; please report a bug";
  case ExitCode::cannot_create:
    return "cannot write a secret file (not tmpfs, unsafe path, exists); fix --secrets-dir or "
           "the file path";
  case ExitCode::protocol:
    return "Vault (or the Arvados API) answered something unexpected (not JSON, wrong shape, "
           "over 32 MiB, not KV v2 where required); check the path and engine";
  case ExitCode::permission_denied:
    return "permission denied (403) with a valid token; ask the Vault admin for a policy granting "
           "read on the path";
  case ExitCode::config:
    return "configuration: no Vault address, no usable auth method, a credential that is not "
           "one line of printable characters, two options reading standard input, a wrapped "
           "AppRole secret id without its role id (not unwrapped), a TLS certificate that fails "
           "verification or a CA/client certificate file or CA directory that cannot be used, a "
           "TLS handshake that cannot succeed (no TLS 1.2 or later, no shared cipher), https:// "
           "on a plain-HTTP server or http:// on a TLS server (not retried), no libcurl 7.85 or "
           "later to load when something must be fetched; set VAULT_ADDR, VAULT_CACERT or "
           "credentials, install libcurl4";
  case ExitCode::not_found:
    return "secret, key or version not found (404, deleted or destroyed version, missing key); "
           "check the path, key and version";
  case ExitCode::auth_failed:
    return "authentication failed (login refused, token invalid or expired, used wrapping token "
           "or secret id), or a token refused so that crunch-secrets cannot tell whether it is "
           "invalid or only lacks the default policy; check credentials or role (bao token "
           "lookup)";
  case ExitCode::not_executable:
    return "COMMAND found but not executable";
  case ExitCode::command_not_found:
    return "COMMAND not found in PATH";
  }
  return "unknown";
}

namespace {

constexpr std::array k_exit_codes = {
    ExitCode::ok,
    ExitCode::usage,
    ExitCode::invalid_input,
    ExitCode::no_input,
    ExitCode::unavailable,
    ExitCode::internal,
    ExitCode::cannot_create,
    ExitCode::protocol,
    ExitCode::permission_denied,
    ExitCode::config,
    ExitCode::not_found,
    ExitCode::auth_failed,
    ExitCode::not_executable,
    ExitCode::command_not_found,
};

Section exit_status_section() {
  Section s{"EXIT STATUS",
            "Before COMMAND starts, crunch-secrets exits with one of its own codes and leaves no "
            "file behind; after exec, the exit status is COMMAND's.",
            {},
            true};
  for (ExitCode code : k_exit_codes) {
    s.entries.push_back({std::to_string(static_cast<int>(code)), exit_code_meaning(code)});
  }
  return s;
}

Section files_section() {
  Section s{"FILES", "", {}, true};
  s.entries = {
      {"/etc/crunch-secrets/manifest.yml, .yaml, .json",
       "the manifest read when neither --manifest nor CRUNCH_SECRETS_MANIFEST is given and "
       "--no-manifest is not"},
      {"/dev/shm/crunch-secrets",
       "the default secrets directory: a symlink to this run's own directory "
       "/dev/shm/.crunch-secrets.run-* (mode 0700; must be on tmpfs or ramfs)"},
      {"~/.vault-token", "the Vault CLI's token file, used after BAO_TOKEN/VAULT_TOKEN"},
  };
  std::string bundles;
  for (const auto& path : util::ca_bundle_candidates()) {
    bundles += (bundles.empty() ? "" : ", ") + path;
  }
  s.entries.push_back(
      {"CA bundles",
       "when neither BAO_CACERT/VAULT_CACERT nor BAO_CAPATH/VAULT_CAPATH is set, the first "
       "readable file of: " +
           bundles + " (also for the Arvados API unless CRUNCH_SECRETS_ARVADOS_CACERT is set)"});
  return s;
}

std::vector<Section> make_sections() {
  std::vector<Section> sections;
  sections.push_back(
      {"REFERENCES",
       "A reference names one value in Vault. PATH is the HTTP API path after /v1/: for KV "
       "version 2 it includes data/ (secret/data/app), for KV version 1 it does not (kv/app).\n\n"
       "Grammar: PATH is one or more /-separated segments of [A-Za-z0-9_.@=+-] (no empty, . or "
       ".. segment, no leading /); KEY is one or more characters other than #, }, NUL and "
       "newline; VERSION is 1 to 10 digits. A value starting with vault: that does not match is "
       "an error (exit 65), never passed through.",
       {
           {"vault:PATH#KEY[#VERSION]",
            "a whole environment value, replaced by the key's value (KV v2 version VERSION)"},
           {"${vault:PATH#KEY[#VERSION]}",
            "inside any environment value, manifest template or (with --argv-templates) "
            "argument: substituted in place"},
           {"${secret:NAME[#KEY]}",
            "a secret named in the manifest; without #KEY its own key, or the whole object as "
            "JSON"},
           {"$${vault: and $${secret:",
            "a literal ${vault: or ${secret:; any other ${...} is left as it is"},
       },
       true});
  sections.push_back(
      {"MANIFEST",
       "A YAML or JSON file with version: 1; unknown fields are errors reported with file and "
       "line. Command-line options win over the manifest, which wins over environment "
       "variables.",
       {
           {"version", "1 (required)"},
           {"auth", "defaults for the login: method (auto, token, approle, wrapped, arvados), "
                    "role (the Arvados role, or the AppRole role id), mount"},
           {"secrets", "a map NAME -> {path, engine (auto, kv2, kv1, generic), key, version}; "
                       "NAME matches [A-Za-z_][A-Za-z0-9_-]*"},
           {"env", "a map VARIABLE -> template, set in COMMAND's environment"},
           {"files", "a list of {path (relative to the secrets directory), secret, key, format "
                     "(raw, json, dotenv, ini, aws-credentials), section, profile, mode "
                     "(default 0400, at most 0640), template or template_file}"},
           {"argv", "true is the same as --argv-templates"},
           {"secrets_dir", "the directory for secret files"},
       },
       false});
  sections.push_back(
      {"ENVIRONMENT",
       "BAO_* variables win over the VAULT_* variable of the same name.",
       {
           {"BAO_ADDR, VAULT_ADDR", "Vault address, http:// or https:// (--vault-addr wins)"},
           {"BAO_TOKEN, VAULT_TOKEN",
            "a Vault token (auth method token); then ~/.vault-token, as the Vault CLI does"},
           {"BAO_CACERT, VAULT_CACERT, BAO_CAPATH, VAULT_CAPATH",
            "CA file or directory for Vault's certificate (the file wins when both are set, as "
            "in Vault's client); without them see FILES"},
           {"BAO_CLIENT_CERT, VAULT_CLIENT_CERT, BAO_CLIENT_KEY, VAULT_CLIENT_KEY",
            "client certificate and key for TLS"},
           {"BAO_SKIP_VERIFY, VAULT_SKIP_VERIFY",
            "1, t, T, TRUE, true or True disables certificate verification (Go's ParseBool)"},
           {"BAO_TLS_SERVER_NAME, VAULT_TLS_SERVER_NAME", "name to verify and send as SNI"},
           {"BAO_NAMESPACE, VAULT_NAMESPACE", "sent as X-Vault-Namespace"},
           {"BAO_CLIENT_TIMEOUT, VAULT_CLIENT_TIMEOUT", "per request, default 60s"},
           {"BAO_MAX_RETRIES, VAULT_MAX_RETRIES",
            "retries per request (default: until --wait runs out)"},
           {"CRUNCH_SECRETS_MANIFEST", "manifest file when --manifest is not given"},
           {"CRUNCH_SECRETS_DIR", "secrets directory; set for COMMAND when files were written"},
           {"CRUNCH_SECRETS_ROLE_ID, CRUNCH_SECRETS_SECRET_ID", "AppRole credentials"},
           {"CRUNCH_SECRETS_WRAPPED_TOKEN", "a response-wrapping token (auth method wrapped)"},
           {"ARVADOS_API_TOKEN", "the Arvados token for auth method arvados"},
           {"CRUNCH_SECRETS_ARVADOS_ROLE", "the Arvados role (default: default)"},
           {"ARVADOS_API_HOST, ARVADOS_API_HOST_INSECURE, CRUNCH_SECRETS_ARVADOS_CACERT",
            "the Arvados API server and its CA, for Arvados credentials"},
       },
       true});
  // The settings that replace flags (fixed ENTRYPOINTs, crunch-run), from the option table.
  for (const core::OptionDoc& o : core::option_docs()) {
    if (o.env_is_default) {
      const std::string_view names = o.names;
      const std::size_t comma = names.rfind(',');
      const std::string flag(comma == std::string_view::npos ? names : names.substr(comma + 1));
      sections.back().entries.push_back(
          {std::string(o.env), "sets " + flag + " when it is not given (the command line wins): " +
                                   std::string(o.help)});
    }
  }
  sections.push_back(exit_status_section());
  sections.push_back(files_section());
  sections.push_back(
      {"EXAMPLES",
       "Whole and embedded references in the environment:\n\n"
       "  export VAULT_ADDR=https://vault.example:8200\n"
       "  export DB_PASSWORD='vault:secret/data/app#password'\n"
       "  export DB_URL='postgres://app:${vault:secret/data/app#password}@db/app'\n"
       "  crunch-secrets run -- psql \"$DB_URL\"\n\n"
       "Check a manifest and what it would deliver, without reading any value:\n\n"
       "  crunch-secrets check -m manifest.yml --online\n\n"
       "In an Arvados container, logging in with the container's token:\n\n"
       "  crunch-secrets run --auth arvados --arvados-role etl -- python3 /app/etl.py",
       {},
       false});
  return sections;
}

// Appends `text` wrapped at `width` columns, every line indented by `indent` spaces.
void wrap(std::ostringstream& out, const std::string& text, std::size_t indent, std::size_t width) {
  std::istringstream words(text);
  std::string word;
  std::size_t column = 0;
  while (words >> word) {
    if (column > 0 && column + 1 + word.size() > width) {
      out << '\n';
      column = 0;
    }
    if (column == 0) {
      out << std::string(indent, ' ') << word;
      column = indent + word.size();
    } else {
      out << ' ' << word;
      column += 1 + word.size();
    }
  }
  out << '\n';
}

} // namespace

const std::vector<Section>& help_sections() {
  static const std::vector<Section> sections = make_sections();
  return sections;
}

std::string help_epilog() {
  constexpr std::size_t k_width = 100;
  std::ostringstream out;
  for (const Section& s : help_sections()) {
    if (!s.in_help) {
      continue;
    }
    out << '\n' << s.title << '\n';
    std::size_t start = 0;
    while (start <= s.intro.size() && !s.intro.empty()) {
      const std::size_t end = s.intro.find("\n\n", start);
      const std::string para = s.intro.substr(start, end - start);
      if (start > 0) {
        out << '\n';
      }
      if (para.rfind("  ", 0) == 0) {
        out << para << '\n';
      } else {
        wrap(out, para, 2, k_width);
      }
      if (end == std::string::npos) {
        break;
      }
      start = end + 2;
    }
    for (const Entry& e : s.entries) {
      out << "  " << e.term << '\n';
      wrap(out, e.text, 6, k_width);
    }
  }
  return out.str();
}

} // namespace cs::cli
