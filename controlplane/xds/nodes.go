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
