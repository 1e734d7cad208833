package webview

import (
	"context"
	"embed"
	"io/fs"
	"net/http"

	"github.com/fedmesh/fedmesh/internal/httpjson"
)

// Paths the control plane's admin port serves.
const (
	// GraphPath answers the Graph as JSON.
	GraphPath = "/debug/graph"
	// UIPath is the page and its assets.
	UIPath = "/ui/"
	// QuotaPath is the control plane's quota report (controlplane.QuotaPath),
	// which the page shows.
	QuotaPath = "/debug/quotas"
)

//go:embed assets
var assets embed.FS

// GraphFunc builds the current graph; called from request goroutines.
type GraphFunc func(ctx context.Context) (Graph, error)

// GraphHandler serves GraphPath.
func GraphHandler(graph GraphFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, err := graph(r.Context())
		if err != nil {
			httpjson.Write(w, http.StatusServiceUnavailable, map[string]string{"error": "graph: " + err.Error()})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		httpjson.Write(w, http.StatusOK, g)
	})
}

// UIHandler serves the page and its assets under UIPath: plain HTML,
// JavaScript and CSS embedded in the binary, which fetch nothing but
// GraphPath, /debug/endpoints and QuotaPath (relative URLs, so the page
// works behind `fedmesh dashboard`'s path prefix too).
func UIHandler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(UIPath, http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
}
