// Package controlplane is one cluster's fedmesh control plane: it reads the
// cluster's services from a source (a directory of YAML files in local mode,
// Kubernetes informers in Kubernetes mode), writes the cluster's exports to
// its etcd store under a lease, federates with the control planes of other
// clusters, serves xDS and workload certificates to sidecars and gateways,
// and answers on an admin port (/healthz, /readyz, /metrics, debug pages).
//
// The data flows one way: source -> store (this cluster's exports) ->
// federation (peers' exports replicated and merged into a catalog.View) ->
// plan (what each node receives, pure) -> xDS (rendered and served). Each
// stage keeps its last good state when its input goes bad. The catalog
// model (catalog/) and the etcd layout (store/) are packages of their own,
// shared with federation/; federation never imports controlplane/.
//
//	srv, err := controlplane.New(controlplane.Config{
//		Cluster:     "east-1",
//		Locality:    topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"},
//		BindAddress: "127.0.0.11",
//		DataDir:     "/var/lib/fedmesh/east-1",
//		Source:      src,
//	})
//	err = srv.Run(ctx) // until ctx is done; closes etcd cleanly
//
// # The admin port
//
// One listener (default BIND-ADDRESS:15014). With a CA (Config.Mesh) it
// serves TLS with the control plane's SVID and requests a client
// certificate without requiring one: kubelet probes (scheme HTTPS, which
// does not verify the server) and Prometheus (scheme https) reach the open
// routes with none, operators present one. One port rather than a second
// plain listener for health and metrics keeps the ports table, the
// probes' port and the Service unchanged, and nothing on the port travels
// in clear; it is how the Kubernetes API server serves /healthz, /readyz
// and /livez next to its protected API. The NetworkPolicy in deploy/
// limits who reaches the port at all.
//
// Routes, by what they expose (see Admin for the checks a protected
// request passes, and operatorAuth for who may call):
//
//	open       GET /healthz, GET /readyz, GET /metrics        liveness, readiness, counters
//	protected  /federation/v1/token, join, keys (GET, POST),  secrets (the gossip key,
//	           members/{name}/forget                          join tokens) and state changes
//	protected  /federation/v1/members, /federation/v1/status  the federation's topology
//	protected  /debug/view, /debug/exports, /debug/source     the catalog: every service,
//	                                                          endpoint address and identity
//	protected  /debug/xds, /debug/endpoints                   what each node is sent
//	protected  /ui/, /debug/graph                             the live picture (package webview;
//	                                                          `fedmesh dashboard` proxies it)
//	protected  /debug/quotas                                  the clusterset quotas' split
//	                                                          (`fedmesh get quotas`)
//
// Clusterset quotas (quotas.go, docs/quota.md): sidecars report their
// quota demand over LRS (xds.LRSServer, on the xDS port); the control
// plane publishes its cluster's demand and share with the exports, splits
// every quota each period with package quota from the replicated records,
// and sizes each sidecar's bucket through xds.Settings.QuotaShares.
//
// Every route mounted with Admin.Handle is protected; only the three open
// ones are mounted otherwise, so a new page is protected by default (a test
// walks Admin.Routes). Operators authenticate with certificates from
// `fedmesh ca issue-operator` (controlplane/ca): spiffe://TD/fedmesh/operator/NAME
// signed by this cluster's CA or by the root; the control plane's own
// identity is accepted too. Peers never call each other's admin API
// (joining goes through gossip), so their identities, and workloads',
// are refused. Without a CA there is no identity to check: the listener
// is plain HTTP and protected routes answer loopback callers only.
package controlplane
