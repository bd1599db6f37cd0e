// Command vault-plugin-auth-arvados serves the Arvados auth method (package arvadosauth) as an
// external OpenBao/Vault plugin. Everything the method does lives in that package; this file only
// hands its factory to the SDK's plugin server, so that the package can be tested and embedded
// without a process of its own.
package main

import (
	"os"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/openbao/openbao/sdk/v2/plugin"

	arvadosauth "crunch-secrets/vault-plugin-auth-arvados"
)

func main() {
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: arvadosauth.Factory,
	}); err != nil {
		hclog.New(&hclog.LoggerOptions{Output: os.Stderr}).Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}
