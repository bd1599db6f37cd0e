#include "crunchsecrets/core/prepare.hpp"

#include "crunchsecrets/core/auth.hpp"
#include "crunchsecrets/core/credentials.hpp"
#include "crunchsecrets/core/deliver.hpp"
#include "crunchsecrets/core/error.hpp"
#include "crunchsecrets/util/fs.hpp"
#include "crunchsecrets/util/log.hpp"
#include "crunchsecrets/util/text.hpp"
#include "crunchsecrets/vault/curl_transport.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

namespace cs::core {

using util::Secret;
using util::SecretJson;

namespace {

std::optional<std::string> process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) {
    return std::nullopt;
  }
  return std::string(v);
}

util::SecureString secure(std::string_view s) {
  return util::SecureString(s.data(), s.size());
}

// Refuses `template_file` in a manifest that came with a container record: prepare runs on the
// host, so the path would name a host file, and its content would be handed to the container.
void refuse_template_files(const std::string& text, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception&) {
    return; // parse_manifest reports the syntax error with its line
  }
  if (!root.IsMap() || !root["files"] || !root["files"].IsSequence()) {
    return;
  }
  for (const auto& f : root["files"]) {
    if (f.IsMap() && f["template_file"]) {
      throw Error(ExitCode::invalid_input,
                  "{}:{}: template_file is not allowed in a container's manifest (prepare runs on "
                  "the host and would read a host file): write the template inline ('template:')",
                  name, f["template_file"].Mark().line + 1);
    }
  }
}

std::string absolute(const std::string& path) {
  if (!path.empty() && path.front() == '/') {
    return path;
  }
  char buf[4096];
  if (::getcwd(buf, sizeof buf) == nullptr) {
    throw Error(ExitCode::internal, "cannot determine the current directory: {}",
                std::strerror(errno));
  }
  return std::string(buf) + "/" + path;
}

std::string strip_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') {
    path.pop_back();
  }
  return path;
}

std::pair<std::string, std::string> split_parent(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == 0) {
    return {"/", path.substr(1)};
  }
  return {path.substr(0, slash), path.substr(slash + 1)};
}

// The relative directories that hold the files of `plan` (parents first), for cleanup.
std::vector<std::string> subdirs_of(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& f : plan.files) {
    std::size_t pos = 0;
    while ((pos = f.path.find('/', pos)) != std::string::npos) {
      std::string d = f.path.substr(0, pos);
      if (std::find(out.begin(), out.end(), d) == out.end()) {
        out.push_back(std::move(d));
      }
      ++pos;
    }
  }
  return out;
}

void write_all_fd(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw Error(ExitCode::cannot_create, "cannot write the result to {}: {}", what,
                  std::strerror(errno));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

SecretJson vault_config_json(const vault::Config& c) {
  SecretJson j = SecretJson::object();
  j["address"] = secure(c.address);
  j["ca_cert"] = secure(c.tls.ca_cert);
  j["ca_path"] = secure(c.tls.ca_path);
  j["client_cert"] = secure(c.tls.client_cert);
  j["client_key"] = secure(c.tls.client_key);
  j["server_name"] = secure(c.tls.server_name);
  j["skip_verify"] = c.tls.skip_verify;
  j["namespace"] = secure(c.vault_namespace);
  return j;
}

std::string text_of(const SecretJson& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) {
    return {};
  }
  const auto& s = j[key].get_ref<const SecretJson::string_t&>();
  return std::string(s.data(), s.size());
}

vault::Config vault_config_of(const SecretJson& j) {
  vault::Config c;
  c.address = text_of(j, "address");
  c.tls.ca_cert = text_of(j, "ca_cert");
  c.tls.ca_path = text_of(j, "ca_path");
  c.tls.client_cert = text_of(j, "client_cert");
  c.tls.client_key = text_of(j, "client_key");
  c.tls.server_name = text_of(j, "server_name");
  c.tls.skip_verify = j.is_object() && j.contains("skip_verify") && j["skip_verify"].is_boolean() &&
                      j["skip_verify"].get<bool>();
  c.vault_namespace = text_of(j, "namespace");
  return c;
}

// Revokes `leases` and then, when `revoke_token`, the token itself, through the same Vault
// client as run and supervise mode, retrying an unavailable Vault until `deadline`. A token or
// lease that is already gone (Vault refuses it) is not an error. Throws `core::Error`
// (unavailable) when Vault cannot be reached.
void revoke(const vault::Config& config, const Secret& token,
            const std::vector<std::string>& leases, bool revoke_token,
            vault::Clock::time_point deadline) {
  if (token.empty() || (leases.empty() && !revoke_token)) {
    return;
  }
  vault::CurlTransport transport(config);
  vault::Client client(config, transport, deadline);
  client.use_token(token);
  // Runs one revocation; true when done or already gone, false when Vault refused it.
  auto attempt = [&](const std::function<void()>& call, const std::string& what) {
    try {
      call();
      util::log::debug("revoked {}", what);
      return true;
    } catch (const Error& e) {
      if (e.code() == ExitCode::unavailable || e.code() == ExitCode::config) {
        throw Error(ExitCode::unavailable,
                    "cannot revoke {}: {}; run cleanup again when Vault is reachable", what,
                    e.what());
      }
      // 400/403/404: the token (and with it its leases) expired or was revoked already, or a
      // lease the token's policy may not revoke by id, which revoking the token ends too.
      util::log::debug("{} not revoked by id ({})", what, e.what());
      return false;
    }
  };
  for (std::size_t i = 0; i < leases.size(); ++i) {
    attempt([&] { client.revoke_lease(leases[i]); }, fmt::format("lease {}", i + 1));
  }
  if (revoke_token) {
    attempt([&] { client.revoke_self(); }, "the Vault token");
  }
}

// What must be undone if prepare fails after logging in.
struct Undo {
  vault::Config config;
  Secret token;
  bool revoke_token = false;
  std::vector<std::string> leases;
  std::string state_file;
  bool done = false;

  ~Undo() {
    if (done) {
      return;
    }
    // The state file goes only once the revocation succeeded: when Vault cannot be reached it
    // is the one record of the token for the cleanup the launcher runs after a failed prepare.
    try {
      revoke(config, token, leases, revoke_token, vault::Clock::now() + std::chrono::seconds(10));
    } catch (const std::exception& e) {
      util::log::warning("after the failure, revoking what prepare obtained failed too: {}{}",
                         e.what(),
                         state_file.empty() ? std::string()
                                            : fmt::format(" (run crunch-secrets cleanup --state "
                                                          "{}, which records it)",
                                                          state_file));
      return;
    }
    if (!state_file.empty()) {
      ::unlink(state_file.c_str());
    }
  }
};

// Where the state file goes: DIR.state, beside DIR (docs/crunch-run-protocol.md).
struct StateLocation {
  int parent_fd = -1;
  std::string name;
  std::string path;
};

void write_state_file(const StateLocation& at, const Secret& text, Undo& undo);

// Writes (or atomically replaces) the state file `cleanup` works from: the files and
// directories prepare writes (listed before they exist: cleanup skips missing ones), the Vault
// token and the leases. It holds no secret value. prepare writes it right after the login and
// again after the reads, so that a prepare killed at any later point has recorded everything
// it obtained for `cleanup`; `undo` removes it when prepare fails without being killed and
// has revoked what it obtained.
void write_state(const StateLocation& at, const std::string& uuid, const std::string& dir,
                 const Plan& plan, Undo& undo) {
  SecretJson state = SecretJson::object();
  state["version"] = 1;
  state["container_uuid"] = secure(uuid);
  state["secrets_dir"] = secure(dir);
  state["files"] = SecretJson::array();
  for (const auto& f : plan.files) {
    state["files"].push_back(secure(f.path));
  }
  state["dirs"] = SecretJson::array();
  for (const auto& d : subdirs_of(plan)) {
    state["dirs"].push_back(secure(d));
  }
  state["vault"] = vault_config_json(undo.config);
  state["token"] = undo.token.reveal_string();
  state["revoke_token"] = undo.revoke_token;
  state["leases"] = SecretJson::array();
  for (const auto& l : undo.leases) {
    state["leases"].push_back(secure(l));
  }
  Secret text(state.dump());
  util::wipe_json(state);
  // Signals wait while the file is written: a prepare ended between creating the temporary
  // file and renaming it would leave the token in a file whose random name cleanup cannot know.
  // A signal that arrived meanwhile ends prepare once the state file is complete (or the
  // temporary file is gone), as if it had arrived just after.
  BlockedSignals blocked;
  write_state_file(at, text, undo);
  if (const int sig = blocked.pending()) {
    undo.done = true;
    blocked.die_of(sig);
  }
}

// Writes `text` as the state file `at` through a temporary file renamed into place.
void write_state_file(const StateLocation& at, const Secret& text, Undo& undo) {
  auto f = util::AtomicFile::create(at.parent_fd, at.name, 0600);
  if (!f) {
    throw Error(ExitCode::cannot_create, "state file {}: {}", at.path, f.error());
  }
  undo.state_file = at.path;
  if (auto s = f->write_all(text.reveal()); !s) {
    throw Error(ExitCode::cannot_create, "state file {}: {}", at.path, s.error());
  }
  if (auto s = f->commit(); !s) {
    throw Error(ExitCode::cannot_create, "state file {}: {}", at.path, s.error());
  }
}

std::string read_container_input(const std::string& from) {
  if (from == "-") {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (std::cin.bad()) {
      throw Error(ExitCode::no_input, "cannot read the container record from stdin");
    }
    return text;
  }
  auto text = util::read_file(from);
  if (!text) {
    throw Error(ExitCode::no_input, "{}: check the --container path", text.error());
  }
  return std::move(*text);
}

// Removes `rel` below `dirfd` without following symlinks; a missing file is fine.
void remove_below(int dirfd, const std::string& rel, bool directory) {
  auto segs = util::split_safe_relative_path(rel);
  if (!segs) {
    throw Error(ExitCode::invalid_input, "state file: unsafe path '{}': {}", rel, segs.error());
  }
  util::Fd parent;
  int at = dirfd;
  for (std::size_t i = 0; i + 1 < segs->size(); ++i) {
    const int fd =
        ::openat(at, (*segs)[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        return;
      }
      throw Error(ExitCode::cannot_create, "cleanup: cannot open the directory of {}: {}", rel,
                  std::strerror(errno));
    }
    parent = util::Fd(fd);
    at = fd;
  }
  if (::unlinkat(at, segs->back().c_str(), directory ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT &&
      !(directory && errno == ENOTEMPTY)) {
    throw Error(ExitCode::cannot_create, "cleanup: cannot remove {}: {}", rel,
                std::strerror(errno));
  }
}

// Deeper than any manifest or real mount content, shallow enough for recursive serialisation.
constexpr std::size_t k_max_json_depth = 512;

// True when `j` has more than `limit` levels of arrays and objects (counted without recursion).
bool nested_deeper_than(const nlohmann::json& j, std::size_t limit) {
  std::vector<std::pair<const nlohmann::json*, std::size_t>> todo{{&j, 1}};
  while (!todo.empty()) {
    const auto [node, depth] = todo.back();
    todo.pop_back();
    if (!node->is_structured()) {
      continue;
    }
    if (depth > limit) {
      return true;
    }
    for (const auto& child : *node) {
      todo.emplace_back(&child, depth + 1);
    }
  }
  return false;
}

// True when `state_file` is DIR.state beside `dir` (the same parent directory, however the
// paths spell it), as prepare writes it.
bool is_state_file_of(const std::string& state_file, const std::string& dir) {
  const auto [dir_parent, dir_name] = split_parent(strip_slashes(absolute(dir)));
  const auto [state_parent, state_name] = split_parent(absolute(state_file));
  struct stat a {};
  struct stat b {};
  return state_name == dir_name + ".state" && ::stat(dir_parent.c_str(), &a) == 0 &&
         ::stat(state_parent.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

} // namespace

std::optional<std::string> ContainerRecord::env(const std::string& name) const {
  for (const auto& [k, v] : environment) {
    if (k == name) {
      return v;
    }
  }
  return std::nullopt;
}

const std::string* ContainerRecord::mount_content(const std::string& path) const {
  for (const auto& [k, v] : content_mounts) {
    if (k == path) {
      return &v;
    }
  }
  return nullptr;
}

ContainerRecord parse_container_record(std::string_view text, const std::string& origin) {
  const nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(ExitCode::invalid_input,
                "{}: not a container record (a JSON object as GET /arvados/v1/containers/{{uuid}} "
                "returns it)",
                origin);
  }
  ContainerRecord r;
  if (j.contains("uuid") && j["uuid"].is_string()) {
    r.uuid = j["uuid"].get<std::string>();
  }
  if (j.contains("environment") && !j["environment"].is_null()) {
    if (!j["environment"].is_object()) {
      throw Error(ExitCode::invalid_input, "{}: 'environment' must be an object of strings",
                  origin);
    }
    for (const auto& [k, v] : j["environment"].items()) {
      if (!v.is_string()) {
        throw Error(ExitCode::invalid_input, "{}: environment.{} must be a string", origin,
                    util::excerpt(k));
      }
      if (!is_env_name(k)) {
        throw Error(ExitCode::invalid_input, "{}: environment.{} is not a valid variable name",
                    origin, util::excerpt(k));
      }
      r.environment.emplace_back(k, v.get<std::string>());
    }
  }
  if (!j.contains("command") || !j["command"].is_array() || j["command"].empty()) {
    throw Error(ExitCode::invalid_input, "{}: 'command' must be a non-empty array of strings",
                origin);
  }
  for (const auto& a : j["command"]) {
    if (!a.is_string()) {
      throw Error(ExitCode::invalid_input, "{}: 'command' must be a non-empty array of strings",
                  origin);
    }
    r.command.push_back(a.get<std::string>());
  }
  if (j.contains("mounts") && j["mounts"].is_object()) {
    for (const auto& [path, m] : j["mounts"].items()) {
      if (!m.is_object() || !m.contains("kind") || !m["kind"].is_string() ||
          !m.contains("content")) {
        continue;
      }
      const std::string kind = m["kind"].get<std::string>();
      if (kind == "json") {
        // dump() recurses once per level: a hostile record must not overflow the stack.
        if (nested_deeper_than(m["content"], k_max_json_depth)) {
          throw Error(ExitCode::invalid_input,
                      "{}: mounts.{}.content is nested deeper than {} levels: not a container "
                      "record prepare accepts",
                      origin, util::excerpt(path), k_max_json_depth);
        }
        r.content_mounts.emplace_back(path, m["content"].dump());
      } else if (kind == "text" && m["content"].is_string()) {
        r.content_mounts.emplace_back(path, m["content"].get<std::string>());
      }
    }
  }
  return r;
}

PreparedRecord plan_container(const ContainerRecord& record) {
  PreparedRecord out;
  const vault::EnvLookup env = [&](const std::string& n) { return record.env(n); };
  // Inside the container a manifest "exists" at a path when the record mounts content there.
  const FileExists mounted = [&](const std::string& p) {
    return record.mount_content(p) != nullptr;
  };
  ManifestSource source = find_manifest_source("", false, env, mounted);
  if (source.kind == ManifestSource::Kind::file) {
    const std::string* content = record.mount_content(source.name);
    if (content == nullptr) {
      throw Error(ExitCode::no_input,
                  "container record: {} names {}, which is not a json or text mount of the "
                  "record; prepare cannot read files inside the image: use {} or a json mount",
                  k_manifest_var, source.name, k_manifest_json_var);
    }
    source = ManifestSource{ManifestSource::Kind::inline_text, "mount " + source.name, *content};
  }
  if (source.kind == ManifestSource::Kind::inline_text) {
    refuse_template_files(source.text, source.name);
  }
  std::shared_ptr<const Manifest> manifest = load_manifest_source(source);

  PlanInput in;
  in.manifest = manifest;
  for (const auto& [k, v] : record.environment) {
    in.environ.push_back(k + "=" + v);
  }
  in.environ = without_manifest_marker(std::move(in.environ));
  in.argv_templates = (manifest && manifest->argv_templates) || argv_marker(env);
  in.argv = record.command;
  if (!in.argv_templates) {
    for (std::size_t i = 0; i < record.command.size(); ++i) {
      if (looks_like_reference(record.command[i])) {
        throw Error(ExitCode::invalid_input,
                    "container record: command[{}] contains a reference; set environment {}=1 "
                    "(or manifest argv: true) to substitute it (the value will be visible in "
                    "/proc/PID/cmdline), or use an environment variable",
                    i, k_argv_var);
      }
    }
  }
  out.plan = std::make_shared<const Plan>(build_plan(in));

  out.container_secrets_dir = k_default_container_secrets_dir;
  if (manifest && !manifest->secrets_dir.empty()) {
    out.container_secrets_dir = manifest->secrets_dir;
  } else if (auto d = record.env("CRUNCH_SECRETS_DIR"); d && !d->empty()) {
    out.container_secrets_dir = *d;
  }
  if (out.container_secrets_dir.front() != '/') {
    throw Error(ExitCode::invalid_input,
                "container record: the secrets directory '{}' must be an absolute path in the "
                "container",
                util::excerpt(out.container_secrets_dir));
  }
  out.container_secrets_dir = strip_slashes(out.container_secrets_dir);
  // The launcher bind-mounts DIR there: "/", "/a/../etc" or "/a//b" would cover or name some
  // other directory of the container than the one written.
  if (auto segs =
          util::split_safe_relative_path(std::string_view(out.container_secrets_dir).substr(1));
      !segs) {
    throw Error(ExitCode::invalid_input,
                "container record: the secrets directory '{}' must be a plain absolute path below "
                "/ in the container: {}",
                util::excerpt(out.container_secrets_dir), segs.error());
  }

  std::vector<std::string> unset{k_manifest_json_var, k_manifest_var, k_argv_var};
  unset.insert(unset.end(), auth_env_names().begin(), auth_env_names().end());
  for (const auto& n : unset) {
    if (record.env(n)) {
      out.unset_environment.push_back(n);
    }
  }
  return out;
}

namespace {

// DIR must be fresh: cleanup removes DIR when it is empty, and must not remove or reveal
// anything that was there before.
void require_fresh_dir(const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    return;
  }
  auto fd = value_or_throw(util::open_private_dir(dir, false), ExitCode::cannot_create,
                           "--secrets-dir: {}");
  const int dup = ::dup(fd.get());
  DIR* d = dup < 0 ? nullptr : ::fdopendir(dup);
  bool empty = true;
  while (d != nullptr) {
    const dirent* e = ::readdir(d);
    if (e == nullptr) {
      break;
    }
    empty = empty && (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0);
  }
  if (d != nullptr) {
    ::closedir(d);
  }
  if (!empty) {
    throw Error(ExitCode::cannot_create,
                "--secrets-dir {} is not empty: give each container a fresh directory", dir);
  }
}

// Opens the directory the state file `path` (`name` in `parent`) goes into, and checks that it
// is on tmpfs and that no state file is there yet.
util::Fd open_state_parent(const std::string& parent, const std::string& name,
                           const std::string& path) {
  util::Fd parent_fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent_fd.valid()) {
    throw Error(ExitCode::cannot_create, "cannot open {} (the parent of --secrets-dir): {}", parent,
                std::strerror(errno));
  }
  if (auto mem = util::is_memory_fs(parent_fd.get()); !mem || !*mem) {
    throw Error(ExitCode::cannot_create,
                "{} is not on tmpfs: the state file (it holds the Vault token for cleanup) and "
                "--secrets-dir must be on tmpfs, e.g. under /dev/shm",
                parent);
  }
  if (struct stat st{}; ::fstatat(parent_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    throw Error(ExitCode::cannot_create,
                "state file {} exists: run crunch-secrets cleanup --state {} first, or use a "
                "fresh --secrets-dir",
                path, path);
  }
  return parent_fd;
}

// Logs in and reads what the plan needs; the state file records the token and the leases as
// soon as they exist. Vault and the Arvados credentials API (with the launcher's ARVADOS_API_*
// settings) are asked at the same time.
CredentialValues fetch_for_container(const PrepareOptions& o, const ContainerRecord& record,
                                     const Plan& plan, const StateLocation& state,
                                     const std::string& dir, vault::Clock::time_point deadline,
                                     Undo& undo, std::vector<vault::Fetched>& fetched) {
  // The launcher's environment gives the credentials; the record's gives the role and, when
  // the launcher does not set one, the Vault address.
  const vault::EnvLookup auth_env = [&](const std::string& n) -> std::optional<std::string> {
    if (n == "CRUNCH_SECRETS_ARVADOS_ROLE") {
      if (auto v = record.env(n); v && !v->empty()) {
        return v;
      }
    }
    return process_env(n);
  };
  const vault::EnvLookup config_env = [&](const std::string& n) -> std::optional<std::string> {
    if (n == "VAULT_ADDR" && !process_env("BAO_ADDR") && !process_env("VAULT_ADDR")) {
      return record.env("VAULT_ADDR");
    }
    return process_env(n);
  };
  return with_credentials(plan, process_env, "", deadline, [&] {
    if (plan.fetches.empty()) {
      return;
    }
    vault::Config config = vault::config_from_env(config_env);
    if (!o.vault_addr.empty()) {
      config.address = strip_slashes(o.vault_addr);
    }
    undo.config = config;
    vault::CurlTransport transport(config);
    vault::Client client(config, transport, deadline);
    const AuthOptions auth = merge_auth(AuthOptions{}, plan.manifest.get(), auth_env);
    const AuthMethod method = choose_method(auth, auth_env);
    login(client, auth, auth_env);
    undo.token = client.token();
    undo.revoke_token = method != AuthMethod::token;
    // From here on a signal may end prepare at any moment: the state file records the token
    // at once, and the leases as soon as they exist, for cleanup to revoke.
    write_state(state, record.uuid, dir, plan, undo);
    fetched = client.read_all(reads_of(plan));
    for (const auto& f : fetched) {
      if (!f.lease_id.empty()) {
        undo.leases.push_back(f.lease_id);
      }
    }
    if (!undo.leases.empty()) {
      write_state(state, record.uuid, dir, plan, undo);
    }
  });
}

// Writes the files in place: DIR is fresh for this container and the launcher bind-mounts it
// as it is. Signals wait while files are written, so that no temporary file (whose name the
// state file cannot know) is left; once all are written, the state file lists every one, and
// a signal that arrived meanwhile ends prepare, leaving them to cleanup.
FileDelivery write_container_files(const Plan& plan, const Resolver& resolver,
                                   const std::string& dir, Undo& undo) {
  BlockedSignals blocked;
  FileDelivery files = FileDelivery::write(plan, resolver, SecretsDirOptions{dir, false, true});
  if (const int sig = blocked.pending()) {
    files.keep();
    undo.done = true;
    blocked.die_of(sig);
  }
  blocked.restore();
  return files;
}

// The result's `files` entries for the files written into `dir`.
SecretJson written_files(const Plan& plan, const std::string& dir,
                         const std::string& container_dir) {
  SecretJson file_list = SecretJson::array();
  for (const auto& f : plan.files) {
    struct stat st {};
    if (::lstat((dir + "/" + f.path).c_str(), &st) != 0) {
      throw Error(ExitCode::cannot_create, "cannot stat {} after writing it: {}", f.path,
                  std::strerror(errno));
    }
    SecretJson entry = SecretJson::object();
    entry["path"] = secure(f.path);
    entry["container_path"] = secure(container_dir + "/" + f.path);
    entry["mode"] = secure(fmt::format("{:04o}", st.st_mode & 07777));
    entry["size"] = static_cast<std::uint64_t>(st.st_size);
    file_list.push_back(std::move(entry));
  }
  return file_list;
}

// What prepare rendered for the container, in memory until the result is written.
struct PreparedValues {
  std::map<std::string, Secret> environment; // later assignments win, as in `run`
  std::vector<Secret> command;
  SecretJson files = SecretJson::array();
  bool mounted = false; // DIR holds files and is bind-mounted
};

// The result document (docs/crunch-run-protocol.md) as one line.
Secret result_text(const ContainerRecord& record, const PreparedRecord& pr, PreparedValues& v,
                   const std::string& dir, const std::string& state_file) {
  SecretJson result = SecretJson::object();
  result["version"] = 1;
  result["container_uuid"] = secure(record.uuid);
  result["environment"] = SecretJson::object();
  for (const auto& [name, value] : v.environment) {
    result["environment"][secure(name)] = value.reveal_string();
  }
  result["unset_environment"] = SecretJson::array();
  for (const auto& n : pr.unset_environment) {
    result["unset_environment"].push_back(secure(n));
  }
  result["command"] = SecretJson::array();
  for (const auto& a : v.command) {
    result["command"].push_back(a.reveal_string());
  }
  result["files"] = std::move(v.files);
  if (v.mounted) {
    result["mount"] = SecretJson::object();
    result["mount"]["host_path"] = secure(dir);
    result["mount"]["container_path"] = secure(pr.container_secrets_dir);
    result["mount"]["read_only"] = true;
  }
  result["state"] = secure(state_file);
  Secret text(result.dump());
  text.append("\n");
  util::wipe_json(result);
  return text;
}

} // namespace

int prepare_command(const PrepareOptions& o) {
  // No core dumps while secrets are in memory; a launcher that stops reading the result must
  // produce an error (and the rollback below), not a silent death by SIGPIPE.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  std::signal(SIGPIPE, SIG_IGN);
  const auto deadline = vault::Clock::now() + o.wait;
  if (o.result_fd && ::fcntl(*o.result_fd, F_GETFD) == -1) {
    throw Error(ExitCode::usage, "--result-fd {} is not an open file descriptor", *o.result_fd);
  }
  const std::string origin = o.container == "-" ? "container record on stdin" : o.container;
  const ContainerRecord record = parse_container_record(read_container_input(o.container), origin);
  PreparedRecord pr = plan_container(record);
  const Plan& plan = *pr.plan;
  const std::string dir = strip_slashes(absolute(o.secrets_dir));
  require_fresh_dir(dir);
  const std::string state_file = dir + ".state";
  const auto [state_parent, state_name] = split_parent(state_file);
  const util::Fd parent_fd = open_state_parent(state_parent, state_name, state_file);

  Undo undo;
  const StateLocation state{parent_fd.get(), state_name, state_file};
  std::vector<vault::Fetched> fetched;
  CredentialValues credentials =
      fetch_for_container(o, record, plan, state, dir, deadline, undo, fetched);
  const Resolver resolver(pr.plan, std::move(fetched), std::move(credentials));
  resolver.check_engines();

  // Render everything in memory first.
  PreparedValues values;
  for (const auto& e : plan.env) {
    values.environment[e.name] =
        resolver.render(e.value, fmt::format("environment variable {}", e.name));
  }
  values.command = build_child_argv(plan, &resolver);
  std::optional<FileDelivery> files;
  if (!plan.files.empty()) {
    files.emplace(write_container_files(plan, resolver, dir, undo));
    values.files = written_files(plan, dir, pr.container_secrets_dir);
    values.environment["CRUNCH_SECRETS_DIR"] = Secret(pr.container_secrets_dir);
    values.mounted = true;
  }
  if (undo.state_file.empty()) {
    // No Vault login: the state file still names the files for cleanup.
    write_state(state, record.uuid, dir, plan, undo);
  }

  const Secret text = result_text(record, pr, values, dir, state_file);
  const int fd = o.result_fd.value_or(STDOUT_FILENO);
  write_all_fd(fd, text.reveal(), o.result_fd ? fmt::format("fd {}", fd) : "stdout");
  if (o.result_fd) {
    ::close(fd);
  }
  if (files) {
    files->keep();
  }
  undo.done = true;
  util::log::debug("prepared {}: {} environment variable(s), {} file(s), {} Vault read(s)",
                   record.uuid.empty() ? origin : record.uuid, values.environment.size(),
                   plan.files.size(), plan.fetches.size());
  return 0;
}

namespace {

// A state file's contents, read by cleanup.
struct StateRecord {
  std::string dir;
  std::vector<std::string> files;
  std::vector<std::string> dirs;
  std::vector<std::string> leases;
  vault::Config config;
  Secret token;
  bool revoke_token = false;
};

// The raw contents of `state_file`, or nullopt when it does not exist. cleanup removes the
// files the state file names, often as root, and state files live in shared directories such
// as /dev/shm: only one that prepare could have written is read.
std::optional<util::SecureString> read_state_file(const std::string& state_file) {
  const int fd = ::open(state_file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return std::nullopt;
    }
    throw Error(ExitCode::no_input, "cannot open the state file {}: {}", state_file,
                std::strerror(errno));
  }
  util::Fd owned(fd);
  struct stat st {};
  if (::fstat(owned.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
      (st.st_mode & 022) != 0) {
    throw Error(ExitCode::invalid_input,
                "{} is not a state file written by prepare (not a regular file owned by uid {} "
                "and writable only by it): left alone, nothing removed or revoked",
                state_file, ::geteuid());
  }
  util::SecureString raw;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(owned.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      util::wipe(buf, sizeof buf);
      throw Error(ExitCode::no_input, "cannot read the state file {}: {}", state_file,
                  std::strerror(errno));
    }
    if (n == 0) {
      break;
    }
    raw.append(buf, static_cast<std::size_t>(n));
  }
  util::wipe(buf, sizeof buf);
  return raw;
}

StateRecord parse_state(util::SecureString raw, const std::string& state_file) {
  SecretJson state = SecretJson::parse(raw.begin(), raw.end(), nullptr, false);
  util::wipe_string(raw);
  if (!state.is_object() || !state.contains("version") || state["version"] != 1) {
    util::wipe_json(state);
    throw Error(ExitCode::invalid_input,
                "{} is not a crunch-secrets prepare state file (version 1)", state_file);
  }
  auto strings = [&](const char* key) {
    std::vector<std::string> out;
    if (state.contains(key) && state[key].is_array()) {
      for (const auto& v : state[key]) {
        if (v.is_string()) {
          const auto& s = v.get_ref<const SecretJson::string_t&>();
          out.emplace_back(s.data(), s.size());
        }
      }
    }
    return out;
  };
  StateRecord r;
  r.dir = text_of(state, "secrets_dir");
  r.files = strings("files");
  r.dirs = strings("dirs");
  r.leases = strings("leases");
  r.config = state.contains("vault") ? vault_config_of(state["vault"]) : vault::Config{};
  if (state.contains("token") && state["token"].is_string()) {
    r.token = Secret(state["token"].get_ref<const SecretJson::string_t&>());
  }
  r.revoke_token = state.contains("revoke_token") && state["revoke_token"].is_boolean() &&
                   state["revoke_token"].get<bool>();
  util::wipe_json(state);
  return r;
}

// Removes the files and directories prepare wrote, then DIR when it is empty.
void remove_delivered(const StateRecord& r) {
  util::Fd dirfd(::open(r.dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dirfd.valid()) {
    for (const auto& f : r.files) {
      remove_below(dirfd.get(), f, false);
    }
    for (auto it = r.dirs.rbegin(); it != r.dirs.rend(); ++it) {
      remove_below(dirfd.get(), *it, true);
    }
  } else if (errno != ENOENT) {
    throw Error(ExitCode::cannot_create, "cleanup: cannot open {}: {}", r.dir,
                std::strerror(errno));
  }
  if (::rmdir(r.dir.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY) {
    throw Error(ExitCode::cannot_create, "cleanup: cannot remove {}: {}", r.dir,
                std::strerror(errno));
  }
}

} // namespace

int cleanup_command(const std::string& state_file, std::chrono::milliseconds wait) {
  const auto deadline = vault::Clock::now() + wait;
  std::optional<util::SecureString> raw = read_state_file(state_file);
  if (!raw) {
    util::log::info("{} does not exist: nothing to clean up", state_file);
    return 0;
  }
  const StateRecord r = parse_state(std::move(*raw), state_file);
  // prepare writes DIR.state beside DIR: a state file naming another directory is not its own.
  if (!r.dir.empty() && !is_state_file_of(state_file, r.dir)) {
    throw Error(ExitCode::invalid_input,
                "{} names the secrets directory {}, whose state file it is not (that is {}.state): "
                "left alone, nothing removed or revoked",
                state_file, r.dir, strip_slashes(r.dir));
  }
  // Files first: they are what the container could still read.
  if (!r.dir.empty()) {
    remove_delivered(r);
  }
  if (!r.config.address.empty()) {
    revoke(r.config, r.token, r.leases, r.revoke_token, deadline);
  }
  if (::unlink(state_file.c_str()) != 0 && errno != ENOENT) {
    throw Error(ExitCode::cannot_create, "cleanup: cannot remove {}: {}", state_file,
                std::strerror(errno));
  }
  util::log::debug("cleaned up {}: {} file(s), {} lease(s){}", r.dir, r.files.size(),
                   r.leases.size(), r.revoke_token ? ", the token revoked" : "");
  return 0;
}

} // namespace cs::core
