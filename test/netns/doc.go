// Package netns holds tests that need network namespaces of their own: a
// "pod" (a workload and its sidecar, with the iptables rules that
// injection generates) and a peer namespace beside it, joined by a veth
// pair on 198.19.14.0/24. The peer plays the rest of the cluster: the
// control plane, a server workload with its sidecar, and an attacker, a
// process of another pod that tries to use the pod's sidecar.
//
// Every process is a child started with `ip netns exec`: the fedmesh
// binary (built once per run, or -fedmesh PATH), the pod's sidecar as uid
// 1337 (the uid the capture rules exempt) through setpriv, and probes,
// which are this test binary run again with FEDMESH_NETNS_PROBE set (see
// probe.go). The tests need root, iproute2 and util-linux's setpriv, and
// iptables for the capture rules; they skip with the reason when these are
// missing, and fail instead under CI=true. scripts/test-deps.sh installs
// iproute2 and iptables.
package netns
