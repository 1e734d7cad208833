// Package proxycmd holds the data-plane commands, sidecar and gateway, and
// the flag wiring they share with every other command: logging flags, the
// xDS client flags and the version command. Both binaries use it: the lean
// fedmesh-proxy, which links no etcd, client-go, Kubernetes scheme or CEL
// (test/arch checks it), and fedmesh, where `fedmesh sidecar` and
// `fedmesh gateway` are the same commands.
//
// Like the rest of cmd/, it only wires flags into the sidecar and gateway
// packages' Configs.
package proxycmd

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// ExitError carries a process exit code through cobra: 2 for bad usage,
// 1 for a failure.
type ExitError struct {
	// Code is the process exit code.
	Code int
	// Err is what went wrong, printed on stderr.
	Err error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// usage marks err as a usage error (exit code 2).
func usage(err error) error { return &ExitError{Code: 2, Err: err} }

// NewRegistry returns a metrics registry with the Go runtime and process
// collectors registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
