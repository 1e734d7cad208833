// Command fedmesh-proxy is fedmesh's lean data-plane binary: the sidecar
// and the east-west gateway, without the control plane's libraries (etcd,
// client-go, the Kubernetes scheme, CEL), which test/arch checks.
package main

import (
	"os"

	"github.com/fedmesh/fedmesh/cmd/internal/proxycmd"
)

// Set with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

func main() {
	os.Exit(proxycmd.Run(proxycmd.NewProxyRoot(version, commit), os.Args[1:], os.Stderr))
}
