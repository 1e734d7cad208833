// Package clusterset allocates ClusterSetIPs: the virtual address every
// imported service (a ServiceImport of the Multi-Cluster Services API)
// gets, and that NAME.NS.svc.clusterset.local resolves to in pods.
//
// The allocation is a pure function of the clusterset prefix and the set
// of imported services of the merged federation view, so every control
// plane of the federation computes the same address for the same service
// (the merged view is the same everywhere), and a restarted control plane
// computes the addresses it had before without reading anything back:
//
//   - the home slot of a service is the first 8 bytes of
//     SHA-256("NAMESPACE/NAME"), as a big-endian number, modulo the number
//     of usable addresses of the prefix (IPv4: all but the network and
//     broadcast addresses; IPv6: all but the subnet-router anycast
//     address, at most 2^63);
//   - services take their slots in namespace/name order; a service whose
//     home slot is taken probes the next slots (linear probing, wrapping
//     around) and takes the first free one;
//   - when the prefix is full, the services after the last free slot get
//     no address (the caller counts them).
//
// What this means for stability: a service keeps its address as long as
// it stays imported and no service that sorts before it starts to collide
// with its probe chain; a deleted service's address returns to the pool,
// and a re-created service gets the same home slot back when it is free.
// Collisions are rare: with a /16 (65534 slots) and 100 services the
// chance that any two share a home slot is about 7%, and only the later
// of the two (in namespace/name order) moves to the next slot; with an
// IPv6 /64 collisions do not happen in practice. The prefix must be the
// same in every cluster (--clusterset-cidr) for the addresses to be.
//
// Example:
//
//	ips := clusterset.Allocate(clusterset.DefaultPrefix, []catalog.ServiceKey{{Namespace: "demo", Name: "echo"}})
//	ip := ips[catalog.ServiceKey{Namespace: "demo", Name: "echo"}] // the same on every control plane
package clusterset
