package authz

import "net/http"

// PeerClusterKey is the filter_state key whose value is the client's
// cluster, taken from its verified certificate chain.
const PeerClusterKey = "io.fedmesh.peer_cluster"

// Request is what a decision looks at. For an opaque TCP connection only
// Principal, PeerCluster and SNI are set, and HTTP is false: HTTP-only
// matchers (url_path, headers) then never match, as in Envoy's network
// RBAC filter.
type Request struct {
	// Principal is the client's verified SPIFFE ID (its certificate's URI
	// SAN); empty when the connection is not authenticated.
	Principal string
	// PeerCluster is the cluster named by the verified chain (filter state
	// io.fedmesh.peer_cluster); empty when unknown.
	PeerCluster string
	// SNI is the server name the client asked for
	// (requested_server_name).
	SNI string
	// HTTP is true for a request, false for a connection.
	HTTP bool
	// Method is the request method (the :method header).
	Method string
	// Path is the request path (the :path header); url_path matchers
	// match it without the query and fragment.
	Path string
	// Authority is the :authority (Host) header.
	Authority string
	// Scheme is the :scheme header.
	Scheme string
	// Headers are the request headers, keyed canonically as net/http
	// keys them. They are only read.
	Headers http.Header
}

// header returns the value of a header (several values joined with ",",
// as Envoy does) and whether it is present.
func (r *Request) header(m *headerMatch) (string, bool) {
	if !r.HTTP {
		return "", false
	}
	switch m.pseudo {
	case pseudoMethod:
		return r.Method, r.Method != ""
	case pseudoPath:
		return r.Path, r.Path != ""
	case pseudoAuthority:
		return r.Authority, r.Authority != ""
	case pseudoScheme:
		return r.Scheme, r.Scheme != ""
	}
	vs := r.Headers[m.key]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	n := len(vs) - 1
	for _, v := range vs {
		n += len(v)
	}
	b := make([]byte, 0, n)
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, v...)
	}
	return string(b), true
}

// urlPath is the path without query and fragment.
func urlPath(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '?' || p[i] == '#' {
			return p[:i]
		}
	}
	return p
}
