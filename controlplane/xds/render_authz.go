package xds

import (
	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// This file renders the plan's inbound authorization (docs/xds.md,
// "Inbound authorization") for internal/xdsresource: the plan's plain
// RBAC trees become xdsresource's, one to one.

// renderRBAC returns a chain's RBAC filters in order; none when no
// policy applies.
func renderRBAC(a *plan.Authorization) []xdsresource.RBAC {
	if a == nil {
		return nil
	}
	out := make([]xdsresource.RBAC, len(a.Filters))
	for i, f := range a.Filters {
		r := xdsresource.RBAC{Action: xdsresource.RBACAction(f.Action), Policies: make([]xdsresource.RBACPolicy, len(f.Policies))}
		for j, p := range f.Policies {
			rp := xdsresource.RBACPolicy{Name: p.Name}
			for k := range p.Permissions {
				rp.Permissions = append(rp.Permissions, renderPermission(&p.Permissions[k]))
			}
			for k := range p.Principals {
				rp.Principals = append(rp.Principals, renderPrincipal(&p.Principals[k]))
			}
			r.Policies[j] = rp
		}
		out[i] = r
	}
	return out
}

func renderMatch(m *plan.StringMatch) *xdsresource.StringMatch {
	if m == nil {
		return nil
	}
	return &xdsresource.StringMatch{Kind: xdsresource.MatchKind(m.Kind), Value: m.Value}
}

func renderPermission(p *plan.Permission) xdsresource.RBACPermission {
	var out xdsresource.RBACPermission
	switch {
	case len(p.And) > 0:
		for i := range p.And {
			out.And = append(out.And, renderPermission(&p.And[i]))
		}
	case len(p.Or) > 0:
		for i := range p.Or {
			out.Or = append(out.Or, renderPermission(&p.Or[i]))
		}
	case p.Not != nil:
		not := renderPermission(p.Not)
		out.Not = &not
	case p.Method != "":
		out.Header = &xdsresource.HeaderMatch{Name: ":method", Match: xdsresource.StringMatch{Kind: xdsresource.MatchExact, Value: p.Method}}
	case p.Path != nil:
		out.Path = renderMatch(p.Path)
	default:
		out.Any = true
	}
	return out
}

func renderPrincipal(p *plan.Principal) xdsresource.RBACPrincipal {
	var out xdsresource.RBACPrincipal
	switch {
	case len(p.And) > 0:
		for i := range p.And {
			out.And = append(out.And, renderPrincipal(&p.And[i]))
		}
	case len(p.Or) > 0:
		for i := range p.Or {
			out.Or = append(out.Or, renderPrincipal(&p.Or[i]))
		}
	case p.Not != nil:
		not := renderPrincipal(p.Not)
		out.Not = &not
	case p.Name != nil:
		out.Name = renderMatch(p.Name)
	case p.PeerCluster != nil:
		out.FilterState = &xdsresource.FilterStateMatch{Key: plan.PeerClusterKey, Match: *renderMatch(p.PeerCluster)}
	case p.Header != nil:
		out.Header = &xdsresource.HeaderMatch{Name: p.Header.Name, Match: *renderMatch(&p.Header.Match)}
	default:
		out.Any = true
	}
	return out
}
