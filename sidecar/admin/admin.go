// Package admin serves the sidecar's admin listener (port 15000 by
// default), for operators and probes:
//
//	GET /stats/prometheus   every metric of the sidecar, Prometheus text format
//	GET /config_dump        the runtime configuration and xDS state, as JSON
//	GET /endpoints          per service: every endpoint with its priority,
//	                        health, ejection state and why, as JSON
//	GET /ready              200 "ready" once the sidecar has a certificate,
//	                        a trust bundle and its first configuration; 503
//	                        with the reason before; 200 "ready (NOTE)"
//	                        when ready with a note, such as serving the
//	                        persisted configuration ("stale config: ...")
//
// ReadyHandler serves /ready and /stats/prometheus, for a listener that
// probes and Prometheus reach from outside the workload (on the pod
// address): the admin listener itself, with the configuration and
// endpoints, is on loopback, for the workload's own eyes.
//
// The pages read from a Source, so this package knows nothing of xDS.
package admin

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fedmesh/fedmesh/internal/httpjson"
)

// Source provides the admin pages' content. Its methods are called from
// HTTP handler goroutines, concurrently.
type Source interface {
	// ConfigDump returns a JSON-encodable view of the configuration.
	ConfigDump() any
	// Endpoints returns a JSON-encodable view of every service's endpoints.
	Endpoints() any
	// Ready reports whether the sidecar can serve, and if not, why; a
	// why with ok is a note (/ready shows it in parentheses).
	Ready() (ok bool, why string)
}

// Handler returns the admin HTTP handler.
func Handler(src Source, g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /stats/prometheus", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, _ *http.Request) { httpjson.Write(w, http.StatusOK, src.ConfigDump()) })
	mux.HandleFunc("GET /endpoints", func(w http.ResponseWriter, _ *http.Request) { httpjson.Write(w, http.StatusOK, src.Endpoints()) })
	mux.Handle("GET /ready", ready(src))
	return mux
}

// ReadyHandler serves GET /ready and GET /stats/prometheus, as Handler
// does, and nothing else.
func ReadyHandler(src Source, g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ready", ready(src))
	mux.Handle("GET /stats/prometheus", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}

func ready(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ok, why := src.Ready()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + why + "\n"))
			return
		}
		if why != "" {
			_, _ = w.Write([]byte("ready (" + why + ")\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
}
