// Where a CA bundle is looked for when none is configured. A self-contained build links a
// libcurl without a compiled-in bundle path, and the dynamic build must not depend on which
// path the host's libcurl was compiled with, so the product chooses the file itself.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cs::util {

// The files tried, in order: crunch-run's bundle (`/etc/arvados/ca-certificates.crt`, which
// holds a private Vault or Arvados CA when there is one), then the system bundles of Debian,
// Ubuntu and Alpine, Fedora and RHEL, openSUSE, and the OpenSSL default.
const std::vector<std::string>& ca_bundle_candidates();

// True when `path` names a regular file this process can read.
bool readable_file(const std::string& path);

// The first of `ca_bundle_candidates()` for which `usable` is true, or nullopt. `usable` is a
// parameter so the order can be tested without touching the file system.
std::optional<std::string>
find_ca_bundle(const std::function<bool(const std::string&)>& usable = readable_file);

} // namespace cs::util
