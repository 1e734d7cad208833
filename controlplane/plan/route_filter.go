package plan

import (
	"fmt"
	"strings"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
)

// This file translates route filters, backendRefs and retries.

// grpcToHTTPFilters converts the filters GRPCRoute shares with HTTPRoute.
func grpcToHTTPFilters(fs []gatewayv1.GRPCRouteFilter) []gatewayv1.HTTPRouteFilter {
	out := make([]gatewayv1.HTTPRouteFilter, len(fs))
	for i, f := range fs {
		out[i] = gatewayv1.HTTPRouteFilter{
			Type:                   gatewayv1.HTTPRouteFilterType(f.Type),
			RequestHeaderModifier:  f.RequestHeaderModifier,
			ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror:          f.RequestMirror,
			ExtensionRef:           f.ExtensionRef,
		}
	}
	return out
}

func (b *routeBuilder) grpcFilters(rt *Route, key string, ri int, fs []gatewayv1.GRPCRouteFilter, ns string) bool {
	return b.httpFilters(rt, key, ri, grpcToHTTPFilters(fs), ns)
}

// duration parses a Gateway API duration; a bad one is noted and
// ignored (nil).
func (b *routeBuilder) duration(key string, ri int, field string, d *gatewayv1.Duration) *time.Duration {
	if d == nil {
		return nil
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil || v < 0 {
		b.note("%s rule %d: %s %q is not a duration: ignored", key, ri, field, *d)
		return nil
	}
	return &v
}

// httpFilters applies a rule's filters to rt; false when the rule must be
// left out (a filter it cannot honour: Gateway API says such a rule is
// not configured).
func (b *routeBuilder) httpFilters(rt *Route, key string, ri int, fs []gatewayv1.HTTPRouteFilter, ns string) bool {
	for fi, f := range fs {
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			rt.RequestHeaders = headerModifier(f.RequestHeaderModifier)
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			rt.ResponseHeaders = headerModifier(f.ResponseHeaderModifier)
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			rt.Redirect = redirect(f.RequestRedirect)
		case gatewayv1.HTTPRouteFilterURLRewrite:
			rt.Rewrite = rewrite(f.URLRewrite)
		case gatewayv1.HTTPRouteFilterRequestMirror:
			if m := f.RequestMirror; m != nil {
				rt.Mirrors = append(rt.Mirrors, b.mirror(ns, m))
			}
		case gatewayv1.HTTPRouteFilterExtensionRef:
			ref := f.ExtensionRef
			if ref == nil || string(ref.Group) != policy.ExtensionGroup || string(ref.Kind) != policy.KindFaultInjection {
				b.note("%s rule %d left out: filter %d: extensionRef is not a %s %s", key, ri, fi, policy.ExtensionGroup, policy.KindFaultInjection)
				return false
			}
			fi := b.fault(ns, string(ref.Name))
			if fi == nil {
				b.note("%s rule %d left out: FaultInjection %s/%s not found", key, ri, ns, ref.Name)
				return false
			}
			rt.Fault = faultOf(fi)
		default:
			b.note("%s rule %d left out: filter %d of type %s is not supported", key, ri, fi, f.Type)
			return false
		}
	}
	return true
}

func (b *routeBuilder) fault(ns, name string) *policy.FaultInjection {
	for i := range b.faults {
		if f := &b.faults[i]; f.Namespace == ns && f.Name == name {
			return f
		}
	}
	return nil
}

func headerModifier(f *gatewayv1.HTTPHeaderFilter) HeaderModifier {
	var m HeaderModifier
	if f == nil {
		return m
	}
	for _, h := range f.Set {
		m.Set = append(m.Set, Header{Name: strings.ToLower(string(h.Name)), Value: h.Value})
	}
	for _, h := range f.Add {
		m.Add = append(m.Add, Header{Name: strings.ToLower(string(h.Name)), Value: h.Value})
	}
	for _, h := range f.Remove {
		m.Remove = append(m.Remove, strings.ToLower(h))
	}
	return m
}

func pathModifier(pm *gatewayv1.HTTPPathModifier) (full, prefix *string) {
	if pm == nil {
		return nil, nil
	}
	switch pm.Type {
	case gatewayv1.FullPathHTTPPathModifier:
		return pm.ReplaceFullPath, nil
	case gatewayv1.PrefixMatchHTTPPathModifier:
		return nil, pm.ReplacePrefixMatch
	}
	return nil, nil
}

func redirect(f *gatewayv1.HTTPRequestRedirectFilter) *Redirect {
	r := &Redirect{StatusCode: 302}
	if f == nil {
		return r
	}
	if f.Scheme != nil {
		r.Scheme = *f.Scheme
	}
	if f.Hostname != nil {
		r.Hostname = string(*f.Hostname)
	}
	if f.Port != nil {
		r.Port = uint32(*f.Port)
	}
	if f.StatusCode != nil {
		r.StatusCode = *f.StatusCode
	}
	r.FullPath, r.PrefixPath = pathModifier(f.Path)
	return r
}

func rewrite(f *gatewayv1.HTTPURLRewriteFilter) *Rewrite {
	r := &Rewrite{}
	if f == nil {
		return r
	}
	if f.Hostname != nil {
		r.Hostname = string(*f.Hostname)
	}
	r.FullPath, r.PrefixPath = pathModifier(f.Path)
	return r
}

// backendRef resolves a backendRef (of a route in routeNS, attached to
// b.parent) to a cluster: kind ServiceImport to the whole service,
// kind Service to its local-only subset. missing says why it does not
// resolve.
func (b *routeBuilder) backendRef(routeNS string, ref gatewayv1.BackendObjectReference) (cluster, service, missing string) {
	group, kind, ns := "", policy.KindService, routeNS
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	port := b.parent.Port
	if ref.Port != nil {
		port = *ref.Port
	}
	sp := naming.ServicePort{Namespace: ns, Name: string(ref.Name), Port: port}
	if !isServiceKind(group, kind) {
		return MissingBackendCluster, "", fmt.Sprintf("backend kind %q of group %q is not Service or ServiceImport", kind, group)
	}
	svc := b.p.service(ns, string(ref.Name))
	if svc == nil {
		return MissingBackendCluster, sp.String(), "service " + ns + "/" + string(ref.Name) + " is not in the catalog"
	}
	if _, ok := portByNumber(svc, port); !ok {
		return MissingBackendCluster, sp.String(), fmt.Sprintf("service %s/%s has no port %d", ns, ref.Name, port)
	}
	if group == "" {
		return sp.LocalCluster(), sp.String(), ""
	}
	return sp.OutboundCluster(), sp.String(), ""
}

func portByNumber(svc *catalog.ImportedService, port int32) (catalog.Port, bool) {
	for _, p := range svc.Ports {
		if p.Port == port {
			return p, true
		}
	}
	return catalog.Port{}, false
}

func (b *routeBuilder) httpBackends(rt *Route, key string, ri int, ns string, refs []gatewayv1.HTTPBackendRef) {
	if rt.Redirect != nil {
		return // a redirect forwards nothing
	}
	var total uint32
	for _, br := range refs {
		w := uint32(1)
		if br.Weight != nil {
			w = uint32(max(0, *br.Weight))
		}
		if w == 0 {
			continue
		}
		total += w
		be := Backend{Weight: w}
		be.Cluster, be.Service, be.Missing = b.backendRef(ns, br.BackendObjectReference)
		for _, f := range br.Filters {
			switch f.Type {
			case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
				be.RequestHeaders = headerModifier(f.RequestHeaderModifier)
			case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
				be.ResponseHeaders = headerModifier(f.ResponseHeaderModifier)
			default:
				b.note("%s rule %d: backend %s filter %s is not supported on a backend: ignored", key, ri, br.Name, f.Type)
			}
		}
		if be.Missing != "" {
			b.note("%s rule %d: backend %s: %s: its share is answered 500", key, ri, br.Name, be.Missing)
		}
		rt.Backends = append(rt.Backends, be)
	}
	if total == 0 {
		rt.Backends, rt.DirectStatus = nil, 500
	}
}

func (b *routeBuilder) mirror(ns string, m *gatewayv1.HTTPRequestMirrorFilter) Mirror {
	c, _, missing := b.backendRef(ns, m.BackendRef)
	pct := 100.0
	switch {
	case m.Percent != nil:
		pct = float64(*m.Percent)
	case m.Fraction != nil:
		den := int32(100)
		if m.Fraction.Denominator != nil {
			den = *m.Fraction.Denominator
		}
		if den > 0 {
			pct = 100 * float64(m.Fraction.Numerator) / float64(den)
		}
	}
	return Mirror{Cluster: c, Percent: min(100, max(0, pct)), Missing: missing}
}

// ruleRetry is a rule's own retry (Gateway API HTTPRouteRetry): its
// codes are retried besides connection failures; its per-try timeout
// and unset fields come from inherited.
func (b *routeBuilder) ruleRetry(key string, ri int, r *gatewayv1.HTTPRouteRetry, inherited *Retry) *Retry {
	out := &Retry{On: []string{"connect-failure", "refused-stream", "reset"}, Attempts: 2}
	if inherited != nil {
		out.Attempts, out.PerTryTimeout = inherited.Attempts, inherited.PerTryTimeout
		out.BaseInterval, out.MaxInterval = inherited.BaseInterval, inherited.MaxInterval
	}
	if len(r.Codes) > 0 {
		out.On = append(out.On, "retriable-status-codes")
		for _, c := range r.Codes {
			out.StatusCodes = append(out.StatusCodes, uint32(c))
		}
	} else {
		out.On = append(out.On, "5xx")
	}
	if r.Attempts != nil {
		out.Attempts = uint32(max(0, *r.Attempts))
	}
	if d := b.duration(key, ri, "retry.backoff", r.Backoff); d != nil {
		out.BaseInterval = *d
		out.MaxInterval = max(out.MaxInterval, 10**d)
	}
	return out
}
