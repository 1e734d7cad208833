// Package plan decides what every node of the mesh receives from its
// control plane, as plain data with no protobuf in it: which endpoints of
// each service port a node may reach, directly or through which cluster's
// gateway, at which failover priority and weight, which listeners a
// sidecar serves its own workload on and what each of its service ports
// enforces (AuthorizationPolicies translated into RBAC rules,
// authorization.go; RateLimitPolicies into token buckets, quota shares
// sized per node by RateLimitInput.QuotaShares, ratelimit.go), and which
// services a gateway routes. Every decision carries its reason, which /debug/endpoints
// serves.
//
// The plan is pure: a function of the merged catalog.View and the
// topology.Policy, with no I/O, clock or goroutine. controlplane/xds
// renders it into Envoy resources (internal/xdsresource builds them) and
// caches what nodes share. Routes, authorization and limits join the plan
// here as they come.
//
//	p := plan.New("fedmesh.local", topology.Policy{}, view)
//	loc := p.NodeLocality("east-1", topology.Locality{})
//	for _, sp := range p.ServicePorts(&view.Services[0]) {
//		a := p.Assign(&view.Services[0], sp.Port, loc, naming.RoleSidecar)
//		// a.Localities[0].Priority == 0: east-1's own endpoints first;
//		// a.Report says why each endpoint got its priority.
//	}
package plan
