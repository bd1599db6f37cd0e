package main

import (
	"os"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/openbao/openbao/sdk/v2/plugin"
)

func main() {
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: Factory,
	}); err != nil {
		hclog.New(&hclog.LoggerOptions{Output: os.Stderr}).Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}
