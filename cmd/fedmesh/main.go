// Command fedmesh is the one binary of the fedmesh multi-cluster service
// mesh: control plane, sidecar, gateway, CA and federation tooling.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}
