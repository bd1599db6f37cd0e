// Command bao is OpenBao's own command-line entry point, built from the Go module proxy so the
// integration tests can run a real server (`bao server -dev`) without a release download.
package main

import (
	"os"

	"github.com/openbao/openbao/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
