package xds

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/internal/httpjson"
)

// Debug paths served by Handler.
const (
	DebugXDSPath       = "/debug/xds"
	DebugEndpointsPath = "/debug/endpoints"
)

// Handler serves the debug pages: /debug/xds?node=ID (what the node holds),
// /debug/endpoints?node=ID&service=NS/NAME (each endpoint's priority,
// health and why) and /debug/authz?from=SPIFFE-ID&to=NS/NAME&... (a
// request decided from the authorization policies in force) and
// /debug/routes?namespace=NS&host=H&port=P&path=/x&method=GET&header=k:v
// (which route and rule a caller's request takes). The control plane
// mounts it on its admin mux.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(DebugXDSPath, s.serveXDS)
	mux.HandleFunc(DebugEndpointsPath, s.serveEndpoints)
	mux.HandleFunc("GET "+DebugAuthzPath, s.serveAuthz)
	mux.HandleFunc("GET "+DebugRoutesPath, s.serveRoutes)
	return mux
}

// NodeDump is what /debug/xds returns per node.
type NodeDump struct {
	Key      string                       `json:"key"`
	Node     Node                         `json:"node"`
	Identity Identity                     `json:"identity"`
	Streams  int                          `json:"streams"`
	Versions map[string]string            `json:"versions,omitempty"`
	Resource map[string][]json.RawMessage `json:"resources,omitempty"`
}

var typeNames = map[string]string{
	resourcev3.ClusterType:  "clusters",
	resourcev3.EndpointType: "endpoints",
	resourcev3.ListenerType: "listeners",
	resourcev3.RouteType:    "routes",
	resourcev3.SecretType:   "secrets",
}

// nodesByID returns the states of nodes with node.id id, sorted by key.
func (s *Server) nodesByID(id string) []*nodeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*nodeState
	for _, n := range s.nodes {
		if n.node.ID == id {
			cp := *n
			out = append(out, &cp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].node.Key() < out[j].node.Key() })
	return out
}

func (s *Server) serveXDS(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("node")
	if id == "" {
		http.Error(w, "query parameter node (the node.id) is required", http.StatusBadRequest)
		return
	}
	nodes := s.nodesByID(id)
	if len(nodes) == 0 {
		http.Error(w, "no connected node with id "+id, http.StatusNotFound)
		return
	}
	out := make([]NodeDump, 0, len(nodes))
	for _, n := range nodes {
		d := NodeDump{Key: n.node.Key(), Node: n.node, Identity: n.id, Streams: n.streams}
		if n.built != nil {
			d.Versions = map[string]string{}
			d.Resource = map[string][]json.RawMessage{}
			for typ, label := range typeNames {
				d.Versions[label] = n.built.Snapshot.GetVersion(typ)
				items := n.built.Snapshot.GetResources(typ)
				names := make([]string, 0, len(items))
				for name := range items {
					names = append(names, name)
				}
				sort.Strings(names)
				for _, name := range names {
					b, err := protojson.Marshal(redact(items[name]))
					if err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
						return
					}
					d.Resource[label] = append(d.Resource[label], b)
				}
			}
		}
		out = append(out, d)
	}
	httpjson.Write(w, http.StatusOK, out)
}

// redact hides private keys.
func redact(r types.Resource) proto.Message {
	sec, ok := r.(*tlsv3.Secret)
	if !ok || sec.GetTlsCertificate() == nil {
		return r
	}
	cp := proto.Clone(sec).(*tlsv3.Secret)
	cp.GetTlsCertificate().PrivateKey = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "[redacted]"}}
	return cp
}

// EndpointsDump is what /debug/endpoints returns per node.
type EndpointsDump struct {
	Node     string                `json:"node"`
	Key      string                `json:"key"`
	Locality string                `json:"locality"`
	Clusters []*plan.ClusterReport `json:"clusters"`
}

func (s *Server) serveEndpoints(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, svc := q.Get("node"), q.Get("service")
	if id == "" || svc == "" {
		http.Error(w, "query parameters node (the node.id) and service (NS/NAME or NAME.NS) are required", http.StatusBadRequest)
		return
	}
	if ns, name, ok := strings.Cut(svc, "/"); ok {
		svc = ns + "/" + name
	} else if name, ns, ok := strings.Cut(svc, "."); ok {
		svc = ns + "/" + name
	}
	nodes := s.nodesByID(id)
	if len(nodes) == 0 {
		http.Error(w, "no connected node with id "+id, http.StatusNotFound)
		return
	}
	var out []EndpointsDump
	for _, n := range nodes {
		d := EndpointsDump{Node: n.node.ID, Key: n.node.Key(), Locality: n.node.Locality.String(), Clusters: []*plan.ClusterReport{}}
		if n.built != nil {
			for _, c := range n.built.Clusters {
				if c.Service == svc {
					d.Clusters = append(d.Clusters, c)
				}
			}
		}
		sort.Slice(d.Clusters, func(i, j int) bool { return d.Clusters[i].Port < d.Clusters[j].Port })
		out = append(out, d)
	}
	httpjson.Write(w, http.StatusOK, out)
}
