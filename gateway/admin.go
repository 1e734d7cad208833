package gateway

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fedmesh/fedmesh/internal/httpjson"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
)

// AdminHandler serves the gateway's admin port (15021): /stats/prometheus,
// /ready (200 once routes arrived and while not draining; "ok (stale
// config: ...)" while the routes are the persisted ones, Config.DataDir), /debug/routes
// (the routing table as JSON) and status (when given, e.g. the xDS
// client's) at /debug/xds.
func (g *Gateway) AdminHandler(gatherer prometheus.Gatherer, xdsStatus func() any) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /stats/prometheus", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case g.Draining():
			http.Error(w, "draining", http.StatusServiceUnavailable)
		case !g.hasRoutes():
			http.Error(w, "no configuration from the control plane yet", http.StatusServiceUnavailable)
		case g.xds != nil && g.xds.Status().Source == xdsclient.SourcePersisted:
			fmt.Fprintln(w, "ok ("+StaleConfigNote+")")
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	mux.HandleFunc("GET /debug/routes", func(w http.ResponseWriter, _ *http.Request) {
		type routeJSON struct {
			SNI string `json:"sni"`
			Route
		}
		var out []routeJSON
		for _, r := range g.Routes() {
			out = append(out, routeJSON{SNI: r.Service.SNI(), Route: r})
		}
		httpjson.Write(w, http.StatusOK, out)
	})
	if xdsStatus != nil {
		mux.HandleFunc("GET /debug/xds", func(w http.ResponseWriter, _ *http.Request) { httpjson.Write(w, http.StatusOK, xdsStatus()) })
	}
	return mux
}

// hasRoutes reports whether a routing table was ever set (an empty table
// from the control plane counts: the cluster exports nothing).
func (g *Gateway) hasRoutes() bool {
	g.hostsMu.Lock()
	defer g.hostsMu.Unlock()
	return g.configured
}

// StaleConfigNote is what /ready adds while the gateway routes by the
// persisted configuration.
const StaleConfigNote = "stale config: routing by the persisted configuration; no control plane has answered since start"
