// Package source turns a cluster's objects into the cluster's exports: the
// catalog.Export values the control plane writes to etcd and peers
// replicate. It holds the contract every source implements (Source), the
// mapping rules shared by the file source (package filesource, local mode)
// and the Kubernetes source, the compact Workload kind for processes on one
// machine, and the Problem type that reports rejected input.
//
// # Contract
//
//	type Source interface {
//		Run(ctx context.Context, update func([]catalog.Export)) error
//	}
//
// Run calls update with the complete export set after the first read, even
// when some input was rejected, and again each time the set changes; on
// Run's goroutine, one call at a time. The slice is sorted by
// namespace/name; each Export is Sort()ed and passes Validate().
//
// # Objects read
//
//   - Service (v1): namespace, name, spec.ports (name, protocol, port,
//     appProtocol), spec.clusterIP (None makes the export Headless; anything
//     else ClusterSetIP), spec.clusterIPs (or spec.clusterIP alone: the
//     export's Service.ClusterIPs, the addresses this cluster's sidecars
//     mesh besides the ClusterSetIP) and spec.selector (which Workloads
//     serve it).
//   - ServiceExport (multicluster.x-k8s.io/v1alpha1): a Service is exported
//     only when a ServiceExport of the same namespace and name exists (MCS
//     semantics). The export's time is the ServiceExport's
//     metadata.creationTimestamp.
//   - EndpointSlice (discovery.k8s.io/v1) labelled
//     kubernetes.io/service-name: every address of every endpoint serves
//     every port of the slice; ready and serving come from conditions (unset
//     means ready), the zone from the endpoint's zone, the service account
//     from the slice's fedmesh.io/service-account annotation ("default"
//     when absent). A slice port must name a port of the Service.
//   - Workload (fedmesh.io/v1alpha1): one process on this machine, selected
//     by a Service's spec.selector like a Pod.
//   - AuthorizationPolicy (fedmesh.io/v1alpha1, package policy): not part of
//     the exports. Sources that read it implement PolicySource; the control
//     plane hands the valid ones to its xDS server. They stay in the
//     cluster.
//
// Every endpoint belongs to the source's cluster and region; its zone is
// its own or the source's default. An empty port protocol means TCP, as the
// Kubernetes API server defaults it. Objects without a namespace are in
// "default". ExternalName Services cannot be exported.
//
// # Workload
//
//	apiVersion: fedmesh.io/v1alpha1
//	kind: Workload
//	metadata: {name: echo-1, namespace: demo, labels: {app: echo}}
//	spec:
//	  address: 127.0.1.1      # the workload sidecar's address
//	  ports: {http: 15006}    # service port name -> where mesh traffic goes
//	  serviceAccount: echo    # optional, default "default"
//	  zone: a                 # optional, default the source's zone
//	  ready: true             # optional, default true
//
// The keys of spec.ports are service port names. A Service port named
// "http" is served by the Workloads whose ports have the key http, at that
// port; a Workload without the key does not serve that service port. A
// Service with a single unnamed port is served through the key "" (write
// `"": 15006`), or else through the only entry of a one-entry map. So with
//
//	kind: Service    spec: {selector: {app: echo}, ports: [{name: http, port: 8080}, {name: admin, port: 9090}]}
//	kind: Workload   spec: {address: 127.0.1.1, ports: {http: 15006}}
//
// the export has one endpoint, 127.0.1.1:15006 for port http, and none for
// admin.
//
// # Problems
//
// Bad input is reported as a Problem naming the file, the document, the
// object ("Service demo/echo") and a Reason (parse, unknown_kind, invalid,
// duplicate, unmatched, read), and never breaks what was good: see the
// filesource package for how files keep their last good version.
package source
