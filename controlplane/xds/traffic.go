package xds

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/internal/httpjson"
	"github.com/fedmesh/fedmesh/policy"
)

// UpdateTraffic publishes the local cluster's traffic objects in force
// (the complete set, each valid): its consumer routes and the
// FaultInjections they use change the routes of that namespace's
// callers; its TelemetryPolicies the tracing and access log of the
// sidecars' HTTP connection managers. Producer routes and policies arrive with the view. A set
// with an invalid or repeated object is refused whole and counted
// (reason "traffic"); the last good set stays. Safe to call from any
// goroutine.
func (s *Server) UpdateTraffic(t policy.Traffic) error {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	if err := validateTraffic(&t); err != nil {
		s.metrics.invalid.WithLabelValues("traffic").Inc()
		return fmt.Errorf("xds: traffic not applied: %w", err)
	}
	s.mu.Lock()
	prev := s.gen
	s.mu.Unlock()
	gen, err := prev.withTraffic(t)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.gen = gen
	if !s.viewDirty {
		s.viewDirty, s.viewAt = true, s.cfg.Now()
	}
	s.mu.Unlock()
	s.log.Info("traffic objects in force", "httpRoutes", len(t.HTTPRoutes), "grpcRoutes", len(t.GRPCRoutes),
		"resiliencePolicies", len(t.Resilience), "faultInjections", len(t.Faults), "telemetryPolicies", len(t.Telemetry), "rateLimitPolicies", len(t.RateLimits))
	s.signal()
	return nil
}

// validateTraffic checks every object of t and that none is repeated.
func validateTraffic(t *policy.Traffic) error {
	seen := map[string]bool{}
	check := func(kind, key string, obj any) error {
		if err := policy.ValidateObject(obj); err != nil {
			return err
		}
		if seen[kind+" "+key] {
			return fmt.Errorf("%s %s is in the set twice", kind, key)
		}
		seen[kind+" "+key] = true
		return nil
	}
	for i := range t.HTTPRoutes {
		r := &t.HTTPRoutes[i]
		if err := check(policy.KindHTTPRoute, r.Namespace+"/"+r.Name, r); err != nil {
			return err
		}
	}
	for i := range t.GRPCRoutes {
		r := &t.GRPCRoutes[i]
		if err := check(policy.KindGRPCRoute, r.Namespace+"/"+r.Name, r); err != nil {
			return err
		}
	}
	for i := range t.Resilience {
		if err := check(policy.KindResiliencePolicy, t.Resilience[i].Key(), &t.Resilience[i]); err != nil {
			return err
		}
	}
	for i := range t.Faults {
		if err := check(policy.KindFaultInjection, t.Faults[i].Key(), &t.Faults[i]); err != nil {
			return err
		}
	}
	for i := range t.Telemetry {
		if err := check(policy.KindTelemetryPolicy, t.Telemetry[i].Key(), &t.Telemetry[i]); err != nil {
			return err
		}
	}
	for i := range t.RateLimits {
		if err := check(policy.KindRateLimitPolicy, t.RateLimits[i].Key(), &t.RateLimits[i]); err != nil {
			return err
		}
	}
	return nil
}

// Traffic returns the local traffic set in force.
func (s *Server) Traffic() policy.Traffic {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen.traffic
}

// DebugRoutesPath is the page that explains how a caller's sidecar
// routes one request (Handler).
const DebugRoutesPath = "/debug/routes"

// RouteCheck is what /debug/routes answers.
type RouteCheck struct {
	// Cluster is the control plane's cluster.
	Cluster string `json:"cluster"`
	// Decision is plan.Explain's answer.
	Decision plan.RouteDecision `json:"decision"`
}

// serveRoutes answers /debug/routes?namespace=NS&host=H&port=P&path=/x&
// method=GET&header=k:v (header repeatable; port optional when host
// carries it or the service has one port; method GET by default).
func (s *Server) serveRoutes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	host := q.Get("host")
	if host == "" {
		http.Error(w, "query parameter host (NAME.NAMESPACE[:PORT] or NAME.NAMESPACE.svc.clusterset.local) is required", http.StatusBadRequest)
		return
	}
	var port int32
	if ps := q.Get("port"); ps != "" {
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || n == 0 {
			http.Error(w, fmt.Sprintf("query parameter port %q is not a port number", ps), http.StatusBadRequest)
			return
		}
		port = int32(n)
	}
	method := q.Get("method")
	if method == "" {
		method = http.MethodGet
	}
	path := q.Get("path")
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		http.Error(w, fmt.Sprintf("query parameter path %q does not start with /", path), http.StatusBadRequest)
		return
	}
	headers := map[string]string{}
	for _, h := range q["header"] {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			http.Error(w, fmt.Sprintf("query parameter header %q is not NAME:VALUE", h), http.StatusBadRequest)
			return
		}
		headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	d := gen.plan.Explain(q.Get("namespace"), host, port, method, path, headers)
	httpjson.Write(w, http.StatusOK, RouteCheck{Cluster: s.cfg.Cluster, Decision: d})
}
