// Package demo runs `fedmesh demo`: three local clusters (east-1, east-2,
// west-1), each a control plane with its embedded etcd, a gateway and
// echo workloads behind sidecars, on loopback addresses of their own. It
// federates them, sends traffic from a client sidecar and walks through
// the phases a user watches: locality, failover when a cluster dies,
// recovery when it comes back. Every cluster's source also holds the same
// AuthorizationPolicies (PolicyFile: echo admits only the client, nobody
// on DeniedPath); each phase ends with a request for DeniedPath, which the
// echo sidecars of the cluster serving that phase must refuse with 403 and
// record in their audit log (WORKDIR/CLUSTER/workloads/echo-N/audit.log),
// whose record the demo shows. Every child is a real process of the
// fedmesh binary, stopped when the demo ends.
package demo
