// Package netns holds tests that need network namespaces of their own.
//
// sidecar_test.go: a "pod" (a workload and its sidecar, with the capture
// rules that injection generates) and a peer namespace beside it, joined
// by a veth pair on 198.19.14.0/24. The peer plays the rest of the
// cluster: the control plane, a server workload with its sidecar, and an
// attacker, a process of another pod that tries to use the pod's sidecar.
//
// pods_test.go: the pod path end to end. Two clusters (east-1, west-1),
// each a namespace with its control plane (embedded etcd) and east-west
// gateway, federated with a join token; pods as namespaces of their own
// on a bridge (198.19.15.0/24, in a hub namespace, so nothing of the lab
// is in the host's namespace), each running the injector's own init
// script (nftables in one pod, iptables and ip6tables in the other) and
// the real sidecar with the arguments injection gives; and another pod
// outside the mesh. It proves mesh calls by name and by ClusterSetIP are
// captured and served across clusters over mTLS, other addresses pass
// through, plaintext reaches the app in PERMISSIVE and not in STRICT
// (where the rewritten kubelet probe still does), and no other pod uses a
// sidecar's outbound proxy or admin pages. Last (dns6_test.go), the pods
// get an IPv6 nameserver (fd00:fed:15::53 on the bridge, a small DNS
// server, this test binary run again with FEDMESH_NETNS_DNS_UPSTREAM set):
// their IPv6 DNS is captured to their sidecars, which answer clusterset
// names and forward the rest to it.
//
// apphealth_test.go: a STRICT pod whose kubelet probes (HTTPS, TCP, gRPC)
// pass through the sidecar's ready port while plaintext to the app's port
// is refused, and whose app hears a server-first server outside the mesh
// on an opaque port at once (the app's servers and sockets are the test's
// own, made in the pods' namespaces).
//
// Every process is a child started with `ip netns exec`: the fedmesh
// binary (built once per run, or -fedmesh PATH), the pods' sidecars as uid
// 1337 (the uid the capture rules exempt) through setpriv, and probes,
// which are this test binary run again with FEDMESH_NETNS_PROBE set (see
// probe_test.go). The tests need root, iproute2 and util-linux's setpriv,
// and iptables, ip6tables and nft for the capture rules; they skip with
// the reason when these are missing, and fail instead under CI=true.
// scripts/test-deps.sh installs iproute2, iptables and nftables.
package netns
