package arvadosauth

// pluginVersion is what the plugin reports as its RunningVersion: OpenBao records it in the
// plugin catalog when the binary is registered without an explicit version, and shows it as
// running_plugin_version in sys/auth (`bao auth list -detailed`). build.sh sets it at link time
// to the project's version from meson.build:
//
//	go build -ldflags "-X crunch-secrets/vault-plugin-auth-arvados.pluginVersion=v0.1.0" ./cmd/...
//
// The default marks a binary built without build.sh. It must stay a semantic version with a
// leading "v": OpenBao refuses to register a plugin whose self-reported version is not one.
var pluginVersion = "v0.0.0-dev"

// Version returns the version this build of the plugin reports.
func Version() string { return pluginVersion }
