// Package policy holds the fedmesh policies users write on top of the
// mesh, as pure values: their Go types, strict parsing, validation and
// evaluation. It does no I/O (test/arch checks it). Today it holds
// AuthorizationPolicy (fedmesh.io/v1alpha1), shaped after Istio's
// AuthorizationPolicy and attached to Services with Gateway API
// targetRefs:
//
//	apiVersion: fedmesh.io/v1alpha1
//	kind: AuthorizationPolicy
//	metadata: {name: echo-readers, namespace: demo}
//	spec:
//	  targetRefs: [{kind: Service, name: echo}]
//	  action: ALLOW                  # or DENY, AUDIT; default ALLOW
//	  rules:
//	  - from:
//	    - source:
//	        principals: ["spiffe://fedmesh.local/ns/demo/sa/client"]
//	        clusters: ["east-*"]
//	    to:
//	    - operation: {methods: [GET], paths: ["/api/*"]}
//	    when:
//	    - key: request.headers[x-env]
//	      values: [prod]
//
// A policy without targetRefs applies to every service of its namespace;
// one in RootNamespace (fedmesh-system) to every service of the mesh. An
// ALLOW policy with no rules matches nothing, so it denies every request
// to what it targets: `spec: {}` in a namespace is that namespace's
// default-deny switch, in fedmesh-system the mesh's.
//
// The data flows one way: a source reads objects (Parse, or the file
// source with Validate), the control plane keeps the valid ones in force,
// controlplane/plan translates them per inbound service port into RBAC
// rules, and the server's sidecar enforces those. Evaluate decides a
// request from the same policies in the same order (Istio's: DENY, then
// ALLOW, AUDIT only records), which `fedmesh authz check` uses:
//
//	d := policy.Evaluate(policies, policy.Request{
//		Principal: "spiffe://fedmesh.local/ns/demo/sa/client", Cluster: "east-1",
//		Namespace: "demo", Service: "echo", Port: 8080, Method: "GET", Path: "/api/x",
//	})
//	// d.Allowed, d.Policy == "demo/echo-readers", *d.Rule == 0
//
// # Traffic objects
//
// Traffic holds what routes requests: Gateway API HTTPRoute and
// GRPCRoute (gateway.networking.k8s.io/v1, the GAMMA form: parentRefs
// name a Service or a ServiceImport, written out in full since unset
// they mean a Gateway), and ResiliencePolicy and FaultInjection
// (fedmesh.io/v1alpha1). ParseObject reads one strictly; ValidateObject
// checks what the Gateway API CRDs check plus fedmesh's rules and names
// every wrong field ("spec.rules[0].matches[1].path.value"); Resolve
// finds routes whose ExtensionRef names no FaultInjection of their
// namespace (Gateway API reason BackendNotFound), which sources refuse as
// a whole (Without). examples/traffic shows each kind:
//
//	apiVersion: gateway.networking.k8s.io/v1
//	kind: HTTPRoute
//	metadata: {name: echo-canary, namespace: demo}
//	spec:
//	  parentRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo}]
//	  rules:
//	  - backendRefs:
//	    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 8080, weight: 90}
//	    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080, weight: 10}
//
// TelemetryPolicy and RateLimitPolicy (docs/ratelimit.md: local token
// buckets, clusterset quotas, TCP connection rates; enforced by the
// server's sidecar) are traffic objects too, local to their cluster.
//
// The producer part of a service's set (ProducerOf) travels with its
// export as canonical JSON (EncodePolicies, DecodePolicies); it never
// holds a TelemetryPolicy or a RateLimitPolicy.
package policy
