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
package controlplane
