//go:build !linux

package sidecar

// dropStartupPages does nothing outside Linux (pages_linux.go).
func dropStartupPages() (int, error) { return 0, nil }
