// Package merge builds the federation-wide catalog.View from every
// cluster's exports, following the Multi-Cluster Services (MCS) rules. It
// is pure: no I/O, no goroutines, no clock; equal inputs give equal views,
// on every cluster, so two control planes can compare their views by Hash.
//
// # Rules
//
// Services are unioned by namespace/name ("namespace sameness"). When the
// exports of one service disagree, the oldest export (lowest
// Service.ExportCreated, ties broken by cluster name) wins: the merged
// service takes its type and ports. Every other export is compared with the
// winner:
//
//   - a different Type is a TypeConflict. Such an export is not merged: its
//     endpoints would need a different address model (a virtual IP versus
//     per-endpoint addresses), so it contributes nothing.
//   - a different port set (by name, number and protocol, protocol empty
//     meaning TCP) is a PortConflict. The export is still merged, but only
//     its endpoints of ports identical to one of the winner's; endpoints of
//     other ports are left out, as the merged service does not have them.
//   - the same ports with a different appProtocol is an AppProtocolConflict.
//     The export is merged with all its endpoints (the wire is the same);
//     clients use the winner's appProtocol.
//
// As in MCS, the conflict is recorded for every export involved: each
// conflicting export gets a Condition{Type: Conflict, Status: True} with
// the reason above (TypeConflict over PortConflict over
// AppProtocolConflict when several apply) and a message naming the winner,
// and the winner gets one too, naming the clusters it conflicts with.
// Services without conflicts carry no conditions.
//
// # Producer policies
//
// An export may carry its cluster's producer routes and policies of the
// service (catalog.Policies). The merged service takes those of the
// oldest merged export that carries any (same order as above: creation
// time, then cluster name); exports carrying none never conflict, and a
// TypeConflict loser's policies are not merged with it. Another export
// whose policies have a different Digest is a PolicyConflict, recorded on
// both sides like the conflicts above (the lowest ranked reason: when an
// export also conflicts in type or ports, its one Conflict condition
// carries the worse reason and both messages). Merge trusts the policies
// it is given; CheckPolicies is how a caller checks what a peer sent
// before merging it.
//
// # Local ClusterIPs
//
// An export's Service.ClusterIPs are its cluster's own Service addresses;
// they mean nothing in another cluster, whose Service range may overlap.
// The merged service keeps only the local cluster's, as
// LocalClusterIPs, when the local export is merged in (not a
// TypeConflict loser), so that local sidecars mesh traffic sent to them.
//
// # Health
//
// A merged endpoint is Healthy when it is Ready and its cluster is not
// fenced. Otherwise HealthReason says why: "cluster east-2 fenced: <the
// cluster's FenceReason>" (fencing wins), "terminating" (serving but not
// ready) or "not ready". Fenced endpoints are kept, so that they come back
// the moment their cluster does.
//
// # Incremental merging
//
// Merger gives the same view as Merge but recomputes only the services
// whose exports, or whose clusters' fencing, changed since the last View:
// the federation uses it so that one endpoint change among thousands of
// services costs about a millisecond instead of a full merge.
//
// # Example
//
//	view := merge.Merge("east-1", clusters, map[string][]catalog.Export{
//		"east-1": eastExports,
//		"west-1": westExports,
//	})
//	fmt.Println(merge.Hash(view)) // equal on every cluster that knows the same
package merge
