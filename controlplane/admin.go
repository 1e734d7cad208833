package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin is the control plane's admin HTTP surface: /healthz (the process is
// alive), /readyz (every readiness check passes; ?verbose lists them, as the
// Kubernetes API server does), /metrics (Prometheus) and whatever debug and
// API handlers the parts of the control plane mount on it.
//
// Those three are the open routes: read-only, answered to anyone (kubelet
// probes, Prometheus). Every route mounted with Handle is protected: it
// answers only a request that passes, in this order,
//
//  1. the Host check: the Host header names a configured admin host
//     (AdminConfig.Hosts) or a localhost name or loopback address, which
//     defeats DNS rebinding (a browser sends the attacker's name);
//  2. the Origin check: an Origin header, when present, is the admin's own
//     origin (scheme://Host), which defeats cross-site requests from a
//     browser holding an operator certificate;
//  3. the Content-Type check: POST, PUT, PATCH and DELETE carry
//     application/json, which no browser sends cross-site without a CORS
//     preflight (a form's urlencoded, multipart or text/plain are refused);
//  4. authentication: the AdminAuth set with SetAuth accepts the caller
//     (the control plane's: an operator certificate over mTLS). Without
//     one (a control plane without a CA has no identity to check against)
//     only loopback callers are answered.
//
// Refusals answer JSON {"error": "..."} (403 for Host and Origin, 415
// for Content-Type, 401 without credentials, 403 for a caller that is
// not allowed) and count in fedmesh_controlplane_admin_refused_total{reason}.
//
// Handle, AddReadyCheck and SetAuth may be called from any goroutine.
type Admin struct {
	mux      *http.ServeMux
	gatherer prometheus.Gatherer
	log      *slog.Logger
	hosts    map[string]bool
	refused  *prometheus.CounterVec

	mu     sync.Mutex // guards the following
	checks map[string]func() error
	routes []AdminRoute
	auth   AdminAuth
}

// AdminConfig configures an Admin.
type AdminConfig struct {
	// Gatherer serves /metrics. Required.
	Gatherer prometheus.Gatherer
	// Registerer registers the refusal counter. Default: none.
	Registerer prometheus.Registerer
	// Hosts are the host names and IP addresses (without port) protected
	// requests may name in their Host header, besides localhost names and
	// loopback addresses: the addresses the admin listens on and the DNS
	// names operators reach it by (a Service name).
	Hosts []string
	// Logger receives the admin's logs. Default: discard.
	Logger *slog.Logger
}

// AdminRoute is one pattern mounted on the admin mux.
type AdminRoute struct {
	// Pattern is the net/http ServeMux pattern, e.g. "GET /debug/view".
	Pattern string
	// Open routes answer anyone; the others pass every check.
	Open bool
}

// AdminAuth authenticates and authorizes the caller of a protected
// request. It returns the caller's identity (for logs), or an error
// wrapping ErrUnauthenticated (no or unusable credentials) or
// ErrForbidden (a caller who may not use the admin API). Called from
// request goroutines concurrently.
type AdminAuth func(r *http.Request) (caller string, err error)

// Errors an AdminAuth wraps.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// Refusal reasons, the values of the reason label.
const (
	refuseHost            = "host"
	refuseOrigin          = "origin"
	refuseContentType     = "content_type"
	refuseUnauthenticated = "unauthenticated"
	refuseForbidden       = "forbidden"
)

// NewAdmin returns an Admin serving metrics from cfg.Gatherer.
func NewAdmin(cfg AdminConfig) (*Admin, error) {
	if cfg.Gatherer == nil {
		return nil, errors.New("admin: Gatherer is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Admin{
		mux:      http.NewServeMux(),
		gatherer: cfg.Gatherer,
		log:      cfg.Logger,
		hosts:    map[string]bool{},
		checks:   map[string]func() error{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_controlplane_admin_refused_total",
			Help: "Admin requests refused, by reason (host, origin, content_type, unauthenticated, forbidden, tls_*).",
		}, []string{"reason"}),
	}
	for _, h := range cfg.Hosts {
		h = normalizeHost(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			continue // 0.0.0.0 is where it listens, never a name to call
		}
		a.hosts[h] = true
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(a.refused); err != nil {
			return nil, fmt.Errorf("admin: register metrics: %w", err)
		}
	}
	a.handleOpen("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	a.handleOpen("GET /readyz", http.HandlerFunc(a.serveReady))
	a.handleOpen("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	return a, nil
}

// Handle mounts h at pattern (net/http ServeMux syntax) as a protected
// route: see Admin for the checks every request passes first. When h
// lists its own routes (a Routes() []string method, as the federation
// admin API has), they are listed in Routes too.
func (a *Admin) Handle(pattern string, h http.Handler) {
	a.addRoute(AdminRoute{Pattern: pattern})
	if rl, ok := h.(interface{ Routes() []string }); ok {
		for _, p := range rl.Routes() {
			a.addRoute(AdminRoute{Pattern: p})
		}
	}
	a.mux.Handle(pattern, a.protect(h))
}

// handleOpen mounts one of the open, read-only routes.
func (a *Admin) handleOpen(pattern string, h http.Handler) {
	a.addRoute(AdminRoute{Pattern: pattern, Open: true})
	a.mux.Handle(pattern, h)
}

func (a *Admin) addRoute(r AdminRoute) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.routes = append(a.routes, r)
}

// Routes lists the mounted patterns in mounting order.
func (a *Admin) Routes() []AdminRoute {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.routes)
}

// SetAuth sets how protected requests are authenticated. Until it is set,
// only loopback callers are answered.
func (a *Admin) SetAuth(auth AdminAuth) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.auth = auth
}

// AddReadyCheck adds a named readiness check; /readyz answers 503 while any
// check returns an error.
func (a *Admin) AddReadyCheck(name string, check func() error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks[name] = check
}

// ServeHTTP implements http.Handler.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// refuseTLS counts a TLS handshake the admin listener refused; reason is
// an identity.Reason label.
func (a *Admin) refuseTLS(reason string) { a.refused.WithLabelValues("tls_" + reason).Inc() }

func (a *Admin) refuse(w http.ResponseWriter, r *http.Request, status int, reason string, err error) {
	a.refused.WithLabelValues(reason).Inc()
	a.log.Debug("admin request refused", "reason", reason, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	writeJSONStatus(w, status, map[string]string{"error": err.Error()})
}

func (a *Admin) protect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.hostAllowed(r.Host) {
			a.refuse(w, r, http.StatusForbidden, refuseHost, fmt.Errorf("host %q is not an address or name of this admin endpoint", r.Host))
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
			a.refuse(w, r, http.StatusForbidden, refuseOrigin, fmt.Errorf("cross-origin request from %q refused", o))
			return
		}
		if changesState(r.Method) {
			if err := checkJSON(r.Header.Get("Content-Type")); err != nil {
				a.refuse(w, r, http.StatusUnsupportedMediaType, refuseContentType, err)
				return
			}
		}
		a.mu.Lock()
		auth := a.auth
		a.mu.Unlock()
		if auth == nil {
			auth = loopbackOnly
		}
		caller, err := auth(r)
		switch {
		case err == nil:
		case errors.Is(err, ErrUnauthenticated):
			a.refuse(w, r, http.StatusUnauthorized, refuseUnauthenticated, err)
			return
		default:
			a.refuse(w, r, http.StatusForbidden, refuseForbidden, err)
			return
		}
		if changesState(r.Method) {
			a.log.Info("admin request", "caller", caller, "method", r.Method, "path", r.URL.Path)
		} else {
			a.log.Debug("admin request", "caller", caller, "method", r.Method, "path", r.URL.Path)
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackOnly is the AdminAuth of a control plane without a CA: it has
// no identity to check a certificate against, so only callers on this
// machine are answered (the Host and Origin checks keep browsers out).
func loopbackOnly(r *http.Request) (string, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsLoopback() {
		return "loopback " + host, nil
	}
	return "", fmt.Errorf("%w: this control plane runs without a CA (--ca-dir) and answers its protected admin pages to loopback callers only", ErrForbidden)
}

func changesState(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// checkJSON accepts application/json with any parameters (charset).
func checkJSON(contentType string) error {
	if contentType == "" {
		return errors.New("missing Content-Type: requests that change state must send application/json")
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("Content-Type %q: %w", contentType, err)
	}
	if mt != "application/json" {
		return fmt.Errorf("Content-Type %q refused: requests that change state must send application/json", mt)
	}
	return nil
}

// normalizeHost lower-cases a host (a Host header, with or without port)
// and strips the port, IPv6 brackets and a trailing dot.
func normalizeHost(h string) string {
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.Trim(strings.ToLower(h), "[]"), ".")
	return h
}

func (a *Admin) hostAllowed(host string) bool {
	h := normalizeHost(host)
	if h == "" {
		return false
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return true
	}
	return a.hosts[h]
}

// sameOrigin reports whether origin (scheme://host[:port], as browsers
// send it) is the origin of r itself: its scheme (https when it came over
// TLS) and Host. "null" and anything else are never the same.
func sameOrigin(origin string, r *http.Request) bool {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return r.Host != "" && strings.EqualFold(strings.TrimSuffix(origin, "/"), scheme+"://"+r.Host)
}

func (a *Admin) serveReady(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	names := make([]string, 0, len(a.checks))
	for n := range a.checks {
		names = append(names, n)
	}
	checks := make(map[string]func() error, len(a.checks))
	for n, c := range a.checks {
		checks[n] = c
	}
	a.mu.Unlock()
	sort.Strings(names)

	var b strings.Builder
	failed := 0
	for _, n := range names {
		if err := checks[n](); err != nil {
			failed++
			fmt.Fprintf(&b, "[-]%s failed: %v\n", n, err)
		} else {
			fmt.Fprintf(&b, "[+]%s ok\n", n)
		}
	}
	_, verbose := r.URL.Query()["verbose"]
	if failed > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, b.String())
		fmt.Fprintf(w, "readyz check failed\n")
		return
	}
	if verbose {
		fmt.Fprint(w, b.String())
	}
	fmt.Fprintln(w, "ok")
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
