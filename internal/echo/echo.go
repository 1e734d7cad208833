// Package echo is the sample workload of the demo and the end-to-end tests:
// an HTTP server that answers every request with who served it (cluster,
// workload, and the service and version it runs as) and who called (the caller's SPIFFE ID as the sidecar passed it
// in the x-fedmesh-client-id header).
//
//	srv := echo.New(echo.Config{Cluster: "west-1", Workload: "echo-v2-1", Service: "echo-v2", Version: "v2"})
//	http.Serve(ln, srv)
package echo

import (
	"encoding/json"
	"io"
	"net/http"
	"sync/atomic"
)

// ClientIDHeader is the header in which the server sidecar passes the
// caller's verified SPIFFE ID to the app.
const ClientIDHeader = "x-fedmesh-client-id"

// Config says who this echo server is.
type Config struct {
	// Cluster is the name of the cluster the server runs in.
	Cluster string
	// Workload names this replica.
	Workload string
	// Service is the service this replica runs as, so that a caller of
	// a route that splits traffic between services (a canary) sees which
	// one answered; empty leaves it out of the reply.
	Service string
	// Version is the version of the software it runs; empty leaves it
	// out of the reply.
	Version string
}

// Reply is the JSON body of every answer.
type Reply struct {
	Cluster  string `json:"cluster"`
	Workload string `json:"workload"`
	Service  string `json:"service,omitempty"`
	Version  string `json:"version,omitempty"`
	// ClientID is the caller's SPIFFE ID, empty when the request did not
	// come through a sidecar.
	ClientID string `json:"clientId,omitempty"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	// BodyBytes is how many request body bytes were read.
	BodyBytes int64 `json:"bodyBytes"`
	// Count is how many requests this server has answered, this one
	// included.
	Count uint64 `json:"count"`
}

// Server is an http.Handler; safe for concurrent use.
type Server struct {
	cfg   Config
	count atomic.Uint64
}

// New returns an echo server.
func New(cfg Config) *Server { return &Server{cfg: cfg} }

// ServeHTTP answers with a Reply. GET /healthz answers "ok".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		io.WriteString(w, "ok\n")
		return
	}
	n, _ := io.Copy(io.Discard, r.Body)
	rep := Reply{
		Cluster:   s.cfg.Cluster,
		Workload:  s.cfg.Workload,
		Service:   s.cfg.Service,
		Version:   s.cfg.Version,
		ClientID:  r.Header.Get(ClientIDHeader),
		Method:    r.Method,
		Path:      r.URL.Path,
		BodyBytes: n,
		Count:     s.count.Add(1),
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-fedmesh-served-by", s.cfg.Cluster+"/"+s.cfg.Workload)
	json.NewEncoder(w).Encode(rep)
}
