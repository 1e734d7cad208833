// Package kube is fedmesh's Kubernetes mode of the control plane: a Source
// that reads the cluster (its exports, its AuthorizationPolicies and its
// traffic objects) through client-go shared informers, a Sink that
// writes the merged federation view back as Multi-Cluster Services
// (multicluster.x-k8s.io) ServiceImports and EndpointSlices, an Elector so
// that of several control plane replicas only one writes, and a
// TokenReviewer that proves a workload's identity from its projected
// ServiceAccount token.
//
// # Data flow
//
//	Services, EndpointSlices, Pods, Nodes, ServiceExports (informers)
//	   --> Source: Build --> []catalog.Export --> control plane --> etcd --> peers
//	                   \--> Validity of each ServiceExport --+
//	federation View (merged) ----------------------------> Sink --> ServiceImport, EndpointSlices,
//	                                                               ServiceExport status (Valid, Conflict)
//	AuthorizationPolicies (dynamic informer), Services
//	   --> Source: PolicyFromObject --> policies in force --> control plane --> xDS (this cluster only)
//	                   \--> PolicyStatus of each object ------> Sink --> AuthorizationPolicy status
//	                                                               (Accepted, ResolvedRefs)
//	HTTPRoutes, GRPCRoutes, ResiliencePolicies, FaultInjections (dynamic informers),
//	Services, ServiceImports
//	   --> Source: TrafficObjectFromUnstructured --> policy.Traffic in force --> control plane
//	                   \--> TrafficStatus of each object -----> Sink --> route status.parents,
//	                                                               policy status.conditions
//
// # Source
//
// Source implements source.Source. It follows package source's mapping
// rules (a Service is exported when a ServiceExport of the same name
// exists; endpoints come from its EndpointSlices) and adds what only a
// cluster knows: an endpoint's address is the pod IP with the slice's
// target port; its zone is the slice endpoint's zone, else the node's
// topology.kubernetes.io/zone label, else the configured zone; its region
// is the node's topology.kubernetes.io/region label, else the configured
// region; its service account is its Pod's. Pods are kept slim in the
// cache (name, service account, node, IPs). Events are debounced; update is
// called only when the export set changes. Rejected objects are listed by
// Problems (the control plane shows them on /debug/source) and counted in
// fedmesh_kube_source_rejected_total{reason}.
//
// # AuthorizationPolicies
//
// Source also implements source.PolicySource. It reads fedmesh.io
// AuthorizationPolicies with a dynamic informer and converts each with
// PolicyFromObject, which is policy.Parse (the file source's strict
// decoding and validation) on the object without its status. A refused
// object is listed by Problems with its reason and the fields it got
// wrong, counted once per generation in
// fedmesh_kube_source_policies_rejected_total{reason}, and keeps its last
// accepted version (same UID) in force; one that never was valid is not
// in force. The whole set is replaced at once, after a debounce, and
// AuthorizationPolicies is ready once the informer has synced. While the
// API server does not serve the CRD no policy can exist: the empty set is
// ready, and the source asks again every PolicyProbe. With
// SourceConfig.Namespace only that namespace's policies are read.
//
// With SinkConfig.Policies the sink writes each object's conditions, in
// the Gateway API's style, with observedGeneration, and only when they
// change: Accepted (True, or False with reason Invalid and the error
// naming the field) and ResolvedRefs (True, or False with reason
// BackendNotFound when a targetRef names no Service of the namespace, or
// InvalidKind).
//
// # Traffic objects
//
// Source also implements source.TrafficSource. It reads Gateway API
// HTTPRoutes and GRPCRoutes (gateway.networking.k8s.io/v1, the CRDs of
// sigs.k8s.io/gateway-api) and fedmesh.io ResiliencePolicies and
// FaultInjections with dynamic informers, and converts each with
// TrafficObjectFromUnstructured, which is policy.ParseObject (the file
// source's strict decoding and validation) on the object without its
// status. A route is cross-checked too: each ExtensionRef filter must name
// a fedmesh.io FaultInjection in force in the route's namespace. A
// refused object is listed by Problems, counted once per generation in
// fedmesh_kube_source_traffic_rejected_total{kind,reason}, and keeps its
// last accepted version (same UID) in force; a new object that is refused
// is not in force. The whole set is replaced at once, after a debounce.
// Until the API server serves all four CRDs the empty set is ready, and
// the source asks again every PolicyProbe.
//
// With SinkConfig.Traffic the sink writes, only when it changes:
//
//   - on a route, one status.parents entry per parentRef that is not a
//     Gateway API Gateway (those are their gateway controller's), with
//     controllerName fedmesh.io/mesh-controller and, as the Gateway API
//     specifies, Accepted (True; False/UnsupportedValue when the route is
//     refused, the message naming the field, or when the parent is not a
//     Service or ServiceImport) and ResolvedRefs (True; False/BackendNotFound
//     when a backend Service or ServiceImport, or a FaultInjection, does
//     not exist; False/InvalidKind for a backend or filter kind fedmesh
//     does not implement), with observedGeneration. Other controllers'
//     entries are left alone. A missing backend does not refuse the route.
//   - on a ResiliencePolicy, Accepted (True, or False/Invalid) and
//     ResolvedRefs (False/BackendNotFound when a targetRef names no
//     existing Service or ServiceImport); on a FaultInjection, Accepted.
//
// # Sink
//
// Sink takes views with Update (or Follow, from federation.Subscribe) and
// keeps the cluster in step:
//
//   - one ServiceImport per service of the view, labelled
//     app.kubernetes.io/managed-by=fedmesh, with the winning type and
//     ports, its ClusterSetIP in spec.ips (package clusterset: a pure
//     function of the view, so the same in every cluster and after a
//     restart; none for a Headless service), status.clusters and a
//     Conflict condition;
//   - per exporting cluster, EndpointSlices labelled
//     multicluster.kubernetes.io/service-name and
//     multicluster.kubernetes.io/source-cluster (and
//     endpointslice.kubernetes.io/managed-by=controlplane.fedmesh.io),
//     owned by the ServiceImport, ready when the view says healthy;
//   - every local ServiceExport's Valid condition (from the Source:
//     NoService, InvalidServiceType, InvalidService, InvalidServiceExport)
//     and Conflict condition (from the view: PortConflict, TypeConflict,
//     AppProtocolConflict, or NoConflicts);
//   - a ServiceImport whose service no cluster exports any more is deleted
//     with its slices.
//
// Writes that fail are retried with backoff and counted by reason in
// fedmesh_kube_sink_errors_total. Before the first view the sink writes
// only ServiceExport validity, never deleting imports it cannot judge.
//
// # Leader election
//
// With SinkConfig.Elector the sink writes only while its replica holds the
// coordination.k8s.io Lease (client-go leaderelection); the Lease is
// released on shutdown, so a rolling restart hands over at once.
//
// # Joining through the API servers
//
// Joiner is the control plane's side of 'fedmesh join' between clusters
// in Kubernetes: it keeps the cluster's join token in Secret
// JoinTokenSecret (leader only) and joins with the token another
// cluster's CopyJoinToken put in Secret JoinSecret, recording a
// JoinStatus per replica on it (join.go, joinclient.go).
//
// # Example
//
//	rc, _ := kube.RESTConfig("")                  // in-cluster
//	clients, _ := kube.NewClients(rc)
//	src, _ := kube.NewSource(kube.SourceConfig{Clients: clients, Cluster: "east-1", Region: "us-east"})
//	el, _ := kube.NewElector(kube.ElectorConfig{Client: clients.Kube, Namespace: "fedmesh-system", Identity: podName})
//	sink, _ := kube.NewSink(kube.SinkConfig{Clients: clients, Cluster: "east-1", Validity: src, Policies: src, Traffic: src, Elector: el})
//	go src.Run(ctx, writeExports)                 // the control plane does this
//	views, cancel := fed.Subscribe()              // *federation.Federation
//	defer cancel()
//	go sink.Follow(ctx, views)
//	go sink.Run(ctx)
package kube
