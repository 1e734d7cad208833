// Package e2e holds fedmesh's end-to-end tests: real fedmesh processes
// (control planes with embedded etcd, gateways, sidecars, sample workloads)
// on loopback addresses, driven through their command lines and admin
// endpoints. TestMain builds the binary once; every process's output goes to
// a log file, and when a test fails the directory that holds every log is
// printed.
//
// The fault suite starts the demo's federation (east-1 and east-2 in
// us-east, west-1 in us-west, an echo service with two replicas in each, a
// client in east-1) and breaks it under steady, bounded load:
//
//   - TestDemoScenario: `fedmesh demo`'s scenario, its summary and the
//     processes' metrics (local first, same region next, errors within the
//     retry budget, back to local, GET /admin refused wherever it goes);
//   - TestAuthorization: the demo's AuthorizationPolicies: allowed 200,
//     denied 403 in the client's cluster and behind another cluster's
//     gateway, the denying sidecar's audit record field by field,
//     `fedmesh authz check` agreeing, and an edited policy file obeyed;
//   - TestControlPlaneKilled: kill -9 of a control plane, then a restart on
//     the same data directory;
//   - TestGatewayKilled: kill -9 of the gateway the traffic goes through,
//     then a restart;
//   - TestCertificateRotation: 20 s certificates renewed under traffic;
//   - TestReplicaKilledUnderLoad: east-2's control plane as two replicas
//     (meshSpec.replicated; its proxies reach them through an xDS front
//     that stands for the Kubernetes Service), each killed in turn under
//     cross-cluster load;
//   - TestFencePeerWithoutExports: a peer with no ready endpoint to probe
//     through is probed at its gateway itself, kept while that serves and
//     fenced when it dies;
//   - TestPartition: each cluster in its own network namespace (veth
//     pairs on a bridge, a 198.18.B.0/24 of its own), one cut off by nftables drop
//     rules, then healed. It needs root, iproute2 and nftables (`make
//     test-deps`); without them it skips, except under CI=true, where it
//     fails;
//   - TestTracingFailover: a request that fails over from east-1 to
//     another cluster gives one trace in a real Jaeger (v1.75.0, built by
//     scripts/telemetry-tools.sh, found through FEDMESH_TELEMETRY_TOOLS),
//     read back through Jaeger's HTTP API: the client sidecar's span with
//     its retry and failover events and a server span from each sidecar
//     tried. Without Jaeger it skips, except under CI=true, where it
//     fails.
//
// Each test takes a loopback block 127.B.0.0/16 of its own (B from 100 to
// 239, held by a lock file in the temporary directory while it runs), so
// that suites run at the same time on one machine never share an
// address: its clusters use 127.B.0.N and 127.B.N.0/24, apart from the
// demo's addresses; TestDemoScenario uses the demo's own and skips (fails
// under CI) when a demo already runs there. Flags, after -args:
//
//	-fedmesh PATH   run this binary instead of building one
//	-keep-logs      keep and print the log directory of passing tests too
package e2e
