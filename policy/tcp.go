package policy

// HTTPOnly lists the HTTP-only conditions of rule r ("methods", "paths",
// "grpc", "when" ...), which an opaque TCP connection cannot be matched
// against.
func HTTPOnly(r *Rule) []string {
	var out []string
	seen := map[string]bool{}
	add := func(name string, set bool) {
		if set && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for i := range r.To {
		op := &r.To[i].Operation
		add("methods", len(op.Methods) > 0)
		add("notMethods", len(op.NotMethods) > 0)
		add("paths", len(op.Paths) > 0)
		add("notPaths", len(op.NotPaths) > 0)
		add("grpc", op.GRPC != nil)
	}
	add("when", len(r.When) > 0)
	return out
}

// RuleOnTCP returns rule r of a policy with action a as it is enforced
// on an opaque TCP port, as Istio does: a DENY rule drops its HTTP-only
// conditions (and so denies more); an ALLOW or AUDIT rule with any
// HTTP-only condition can never match and is left out (ok false). A rule
// without HTTP-only conditions is returned as it is.
func RuleOnTCP(r Rule, a Action) (Rule, bool) {
	if len(HTTPOnly(&r)) == 0 {
		return r, true
	}
	if a != ActionDeny {
		return Rule{}, false
	}
	out := Rule{From: r.From}
	for _, t := range r.To {
		op := t.Operation
		out.To = append(out.To, RuleTo{Operation: Operation{Ports: op.Ports, NotPorts: op.NotPorts}})
	}
	return out, true
}

// RuleOnProxyless returns rule r of a policy with action a as a grpc-go
// xDS server enforces it. Such a server cannot tell the caller's cluster
// (grpc-go's RBAC has no filter state), so, as for HTTP conditions on
// TCP: a DENY rule drops its cluster conditions (and so denies more); an
// ALLOW or AUDIT rule with one can never match and is left out (ok
// false). A rule without cluster conditions is returned as it is.
func RuleOnProxyless(r Rule, a Action) (Rule, bool) {
	has := false
	for i := range r.From {
		s := &r.From[i].Source
		has = has || len(s.Clusters) > 0 || len(s.NotClusters) > 0
	}
	if !has {
		return r, true
	}
	if a != ActionDeny {
		return Rule{}, false
	}
	out := r
	out.From = make([]RuleFrom, len(r.From))
	for i, f := range r.From {
		f.Source.Clusters, f.Source.NotClusters = nil, nil
		out.From[i] = f
	}
	return out, true
}
