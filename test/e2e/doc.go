// Package e2e holds fedmesh's end-to-end tests: real fedmesh processes
// (control planes with embedded etcd, gateways, sidecars, sample workloads)
// on loopback addresses, driven through their command lines and admin
// endpoints. TestMain builds the binary once; every process's output goes to
// a log file, and when a test fails the directory that holds every log is
// printed.
package e2e
