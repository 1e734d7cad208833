package xds

import "sort"

// Nodes returns the nodes connected now, sorted by key, for pages that
// list them (the web view's scrape targets and explain choices).
func (s *Server) Nodes() []Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		if n.streams > 0 {
			out = append(out, n.node)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// ConnectedNode is a connected node with the identity its credentials
// proved when it connected.
type ConnectedNode struct {
	Node
	// Identity is what the node's credentials proved: in Kubernetes mode
	// a projected token's ServiceAccount and, when the token is bound to
	// one, its pod (Identity.Workload).
	Identity Identity
}

// Connected is Nodes with the proven identities, for callers that must
// act on what a node proved rather than on what it claims (the web view
// reads a Kubernetes sidecar at its proven pod's address).
func (s *Server) Connected() []ConnectedNode {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ConnectedNode, 0, len(s.nodes))
	for _, n := range s.nodes {
		if n.streams > 0 {
			out = append(out, ConnectedNode{Node: n.node, Identity: n.id})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}
