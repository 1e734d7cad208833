// Package kube holds fedmesh's integration tests against real Kubernetes
// API servers: two "clusters", each a kube-apiserver with its own etcd
// started from binaries built by scripts/kube-tools.sh, each with a fedmesh
// control plane (the Kubernetes source, the etcd store, serf membership,
// federation and the ServiceImport sink). The tests show that a
// ServiceExport in one cluster yields a ServiceImport and EndpointSlices in
// the other, that conflicts and malformed exports are reported in the
// ServiceExports' status, that deleting an export deletes the imports, that
// leader election lets only one of two replicas write and hands over when
// it stops, that AuthorizationPolicies are read (a bad one refused with
// its field named, a bad edit keeping the last accepted version) and get
// Accepted and ResolvedRefs conditions from the leader only, that workload tokens are checked with TokenReview (the east-west gateway's too: the pod of deploy/'s gateway template gets its routes from xDS with its projected token, another ServiceAccount's token is refused the gateway role), that the
// injection webhook mutates pods through the API server (which accepts the
// injected spec), and that every manifest in deploy/ (base and overlays)
// passes a server-side dry run, with RBAC that is exactly sufficient: the
// control planes of these tests run as deploy/'s ServiceAccount, and
// SubjectAccessReviews show it may do nothing else.
//
// The binaries are found through the FEDMESH_KUBE_TOOLS environment
// variable (the directory scripts/kube-tools.sh prints), or else by asking
// scripts/kube-tools.sh --check. Without them the tests fail when CI=true
// and are skipped otherwise, saying how to build them.
package kube
