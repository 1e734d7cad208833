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
