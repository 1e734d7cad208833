package controlplane

import (
	"fmt"
	"net/http"
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
// Handle and AddReadyCheck may be called from any goroutine.
type Admin struct {
	mux      *http.ServeMux
	gatherer prometheus.Gatherer

	mu     sync.Mutex // guards the following
	checks map[string]func() error
}

// NewAdmin returns an Admin serving metrics from g.
func NewAdmin(g prometheus.Gatherer) *Admin {
	a := &Admin{mux: http.NewServeMux(), gatherer: g, checks: map[string]func() error{}}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	a.mux.HandleFunc("GET /readyz", a.serveReady)
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return a
}

// Handle mounts h at pattern (net/http ServeMux syntax).
func (a *Admin) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// AddReadyCheck adds a named readiness check; /readyz answers 503 while any
// check returns an error.
func (a *Admin) AddReadyCheck(name string, check func() error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks[name] = check
}

// ServeHTTP implements http.Handler.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

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
