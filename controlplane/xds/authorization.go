package xds

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/internal/httpjson"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// UpdatePolicies publishes the AuthorizationPolicies in force in this
// cluster: the complete set, each valid. Sidecars' inbound listeners are
// rebuilt after the debounce; nothing else changes. A set with an invalid
// policy is refused whole and counted (reason "policy"); the last good
// set stays. Safe to call from any goroutine.
func (s *Server) UpdatePolicies(ps []policy.AuthorizationPolicy) error {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	ps = slices.Clone(ps)
	seen := make(map[string]bool, len(ps))
	for i := range ps {
		p := &ps[i]
		err := policy.Validate(p)
		if err == nil && seen[p.Key()] {
			err = fmt.Errorf("AuthorizationPolicy %s is in the set twice", p.Key())
		}
		if err != nil {
			s.metrics.invalid.WithLabelValues("policy").Inc()
			return fmt.Errorf("xds: policies not applied: %w", err)
		}
		seen[p.Key()] = true
	}
	policy.Sort(ps)
	s.mu.Lock()
	prev := s.gen
	s.mu.Unlock()
	gen, err := prev.withPolicies(ps)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.gen, s.policies, s.policiesIn = gen, ps, true
	if !s.viewDirty {
		s.viewDirty, s.viewAt = true, s.cfg.Now()
	}
	s.mu.Unlock()
	s.log.Info("authorization policies in force", "policies", len(ps))
	s.signal()
	return nil
}

// Policies returns the AuthorizationPolicies in force, sorted by
// namespace/name.
func (s *Server) Policies() []policy.AuthorizationPolicy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.policies)
}

// DebugAuthzPath is the page that decides a request from the policies in
// force (Handler).
const DebugAuthzPath = "/debug/authz"

// AuthzCheck is what /debug/authz answers.
type AuthzCheck struct {
	// Cluster is the control plane's cluster, whose policies decided.
	Cluster string `json:"cluster"`
	// Request is the request decided, with defaults applied.
	Request policy.Request `json:"request"`
	// Decision is policy.Evaluate's answer.
	Decision policy.Decision `json:"decision"`
	// Policies are the policies that apply to the destination service
	// ("NS/NAME"), in evaluation order.
	Policies []string `json:"policies"`
	// Notes are the translation decisions for the destination port (rules
	// reduced or left out on it).
	Notes []plan.AuthorizationNote `json:"notes,omitempty"`
}

// Query parameters of /debug/authz.
const (
	AuthzParamFrom        = "from"        // the caller's SPIFFE ID (required)
	AuthzParamFromCluster = "fromCluster" // the caller's cluster
	AuthzParamTo          = "to"          // the service: NS/NAME or NAME.NS (required)
	AuthzParamPort        = "port"        // a service port (default: its lowest)
	AuthzParamMethod      = "method"      // default GET
	AuthzParamPath        = "path"        // default /
	AuthzParamHeader      = "header"      // NAME=VALUE, repeatable
)

// errBadQuery marks /debug/authz queries that are wrong (answered 400).
var errBadQuery = errors.New("bad query")

// serveAuthz decides one request, described by the query, from the
// policies in force, with policy.Evaluate: what the destination's sidecar
// decides with the RBAC filters rendered from the same policies.
func (s *Server) serveAuthz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ps, view := s.policies, s.view
	s.mu.Unlock()
	out, status, err := authzCheck(s.cfg.Cluster, s.cfg.Settings.TrustDomain, ps, view, r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

// authzCheck builds the request a query describes and decides it; the
// status is the HTTP answer for err.
func authzCheck(cluster, td string, ps []policy.AuthorizationPolicy, view *catalog.View, q map[string][]string) (*AuthzCheck, int, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	req := policy.Request{Principal: get(AuthzParamFrom), Cluster: get(AuthzParamFromCluster), Method: get(AuthzParamMethod), Path: get(AuthzParamPath)}
	if _, _, ok := policy.SplitSpiffeID(req.Principal); !ok {
		return nil, http.StatusBadRequest, fmt.Errorf("%w: %s %q: want the caller's SPIFFE ID, spiffe://%s/ns/NS/sa/SA", errBadQuery, AuthzParamFrom, req.Principal, td)
	}
	to := get(AuthzParamTo)
	if ns, name, ok := strings.Cut(to, "/"); ok {
		req.Namespace, req.Service = ns, name
	} else if name, ns, ok := strings.Cut(to, "."); ok {
		req.Namespace, req.Service = ns, name
	} else {
		return nil, http.StatusBadRequest, fmt.Errorf("%w: %s %q: want the service as NS/NAME or NAME.NS", errBadQuery, AuthzParamTo, to)
	}
	var svc *catalog.ImportedService
	for i := range view.Services {
		if view.Services[i].Namespace == req.Namespace && view.Services[i].Name == req.Service {
			svc = &view.Services[i]
		}
	}
	if svc == nil || len(svc.Ports) == 0 {
		return nil, http.StatusNotFound, fmt.Errorf("service %s/%s is not in cluster %s's view of the federation: no sidecar serves it", req.Namespace, req.Service, cluster)
	}
	ports := plan.Ports(svc)
	port := ports[0]
	if p := get(AuthzParamPort); p != "" {
		n, err := strconv.ParseInt(p, 10, 32)
		i := slices.IndexFunc(ports, func(cp catalog.Port) bool { return int64(cp.Port) == n })
		if err != nil || i < 0 {
			var have []string
			for _, cp := range ports {
				have = append(have, strconv.Itoa(int(cp.Port)))
			}
			return nil, http.StatusBadRequest, fmt.Errorf("%w: %s %q is not a port of %s/%s (ports: %s)", errBadQuery, AuthzParamPort, p, req.Namespace, req.Service, strings.Join(have, ", "))
		}
		port = ports[i]
	}
	req.Port, req.TCP = port.Port, !plan.IsHTTP(port)
	if req.TCP {
		req.Method, req.Path = "", ""
	} else {
		if req.Method == "" {
			req.Method = "GET"
		}
		if req.Path == "" {
			req.Path = "/"
		}
		for _, h := range q[AuthzParamHeader] {
			k, v, ok := strings.Cut(h, "=")
			if !ok || k == "" {
				return nil, http.StatusBadRequest, fmt.Errorf("%w: %s %q: want NAME=VALUE", errBadQuery, AuthzParamHeader, h)
			}
			if req.Headers == nil {
				req.Headers = map[string]string{}
			}
			k = strings.ToLower(k)
			if old, ok := req.Headers[k]; ok {
				v = old + "," + v // as a repeated header reaches a header matcher
			}
			req.Headers[k] = v
		}
	}
	out := &AuthzCheck{Cluster: cluster, Request: req, Decision: policy.Evaluate(ps, req), Policies: []string{}}
	for i := range ps {
		if policy.Applies(&ps[i], req.Namespace, req.Service) {
			out.Policies = append(out.Policies, ps[i].Key())
		}
	}
	sp := naming.ServicePort{Namespace: req.Namespace, Name: req.Service, Port: port.Port}
	if a := plan.New(td, topology.Policy{}, view).WithAuthorization(ps).Authorization(sp, !req.TCP); a != nil {
		out.Notes = a.Notes
	}
	return out, http.StatusOK, nil
}
