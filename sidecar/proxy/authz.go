package proxy

import (
	"crypto/tls"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/fedmesh/fedmesh/sidecar/audit"
	"github.com/fedmesh/fedmesh/sidecar/authz"
	"github.com/fedmesh/fedmesh/sidecar/config"
)

// DeniedBody is the body of a request the authorization policy denied,
// Envoy's text; gRPC callers get it as grpc-message.
const DeniedBody = "RBAC: access denied"

// Authorization decisions, the decision label of
// fedmesh_authz_decisions_total.
const (
	decisionAllow = "allow"
	decisionDeny  = "deny"
	decisionAudit = "audit"
)

// peerClusterOf returns the cluster of the client of a verified handshake:
// the organizational unit of the CA that signed its leaf in the chain that
// verifies against bundle (the cluster intermediate, see
// controlplane/ca IssueCluster). It is "" when the leaf is signed by a
// root directly, the chain does not verify (any more), the issuer names
// no cluster, or two verified chains disagree. The certificates the client
// sent after its leaf are never read on their own: only the chain that
// verification builds counts, so a client cannot name a cluster by
// sending an extra certificate.
func peerClusterOf(cs *tls.ConnectionState, bundle *x509bundle.Bundle) string {
	if len(cs.PeerCertificates) == 0 || bundle == nil {
		return ""
	}
	_, chains, err := x509svid.Verify(cs.PeerCertificates, bundle)
	if err != nil || len(chains) == 0 {
		return ""
	}
	cluster := ""
	for i, ch := range chains {
		c := ""
		// leaf, its issuer, ..., an authority of the bundle: a chain of
		// two is a leaf signed by the root.
		if len(ch) >= 3 && len(ch[1].Subject.OrganizationalUnit) > 0 {
			c = ch[1].Subject.OrganizationalUnit[0]
		}
		if i > 0 && c != cluster {
			return ""
		}
		cluster = c
	}
	return cluster
}

// peerInfo is the verified client of one connection; its cluster is
// computed when a decision first needs it.
type peerInfo struct {
	p  *Proxy
	cs tls.ConnectionState

	once    sync.Once
	cluster string
}

func (pi *peerInfo) peerCluster() string {
	pi.once.Do(func() { pi.cluster = peerClusterOf(&pi.cs, pi.p.Bundle()) })
	return pi.cluster
}

// authorizeConn runs the port's connection-level RBAC (network filters)
// for a new connection and reports whether it may go on. Denials and
// audits are counted and recorded.
func (p *Proxy) authorizeConn(port config.InboundPort, principal string, pi *peerInfo) bool {
	eng := port.Authz.Connection
	req := authz.Request{Principal: principal, PeerCluster: pi.peerCluster(), SNI: port.SNI}
	d := eng.Authorize(&req)
	p.decided(port, &req, d, "tcp")
	return d.Allowed
}

// authorizeHTTP runs the port's request-level RBAC (HTTP filters) on r.
// A denied request is answered here, 403 or for gRPC a trailers-only
// PERMISSION_DENIED, and authorizeHTTP returns false.
func (p *Proxy) authorizeHTTP(w http.ResponseWriter, r *http.Request, port config.InboundPort, principal string, pi *peerInfo) bool {
	req := authz.Request{
		HTTP:        true,
		Principal:   principal,
		PeerCluster: pi.peerCluster(),
		SNI:         port.SNI,
		Method:      r.Method,
		Path:        cleanPath(r.URL.Path),
		Authority:   r.Host,
		Scheme:      "https",
		Headers:     r.Header,
	}
	d := port.Authz.Request.Authorize(&req)
	isGRPC := port.Protocol == config.GRPC || isGRPCContentType(r.Header.Get("Content-Type"))
	proto := "http"
	if isGRPC {
		proto = "grpc"
	}
	p.decided(port, &req, d, proto)
	if d.Allowed {
		return true
	}
	if isGRPC {
		h := w.Header()
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", "7") // PERMISSION_DENIED
		h.Set("Grpc-Message", DeniedBody)
		w.WriteHeader(http.StatusOK)
		return false
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte(DeniedBody))
	return false
}

// decided counts a decision and writes the audit records it calls for:
// one per AUDIT match and one for a denial.
func (p *Proxy) decided(port config.InboundPort, req *authz.Request, d authz.Decision, proto string) {
	s := p.inboundSeries(port.Port)
	for _, ref := range d.Audited {
		s.authzDecision(decisionAudit)
		p.audit(port, req, proto, audit.DecisionAudit, authz.ReasonAudited, ref)
	}
	if d.Allowed {
		s.authzDecision(decisionAllow)
		return
	}
	s.authzDecision(decisionDeny)
	p.audit(port, req, proto, audit.DecisionDeny, d.Reason, d.Policy)
	p.log.Debug("request denied by authorization policy", "service", port.Port.String(), "caller", req.Principal, "reason", string(d.Reason))
}

func (p *Proxy) audit(port config.InboundPort, req *authz.Request, proto, decision string, reason authz.Reason, ref *authz.PolicyRef) {
	if p.cfg.Audit == nil {
		return
	}
	rec := audit.Record{
		Time:               p.cfg.Now(),
		Decision:           decision,
		Reason:             string(reason),
		SourcePrincipal:    req.Principal,
		SourceCluster:      req.PeerCluster,
		DestinationService: port.Port.Namespace + "/" + port.Port.Name,
		DestinationPort:    port.Port.Port,
		Method:             req.Method,
		Path:               req.Path,
		Protocol:           proto,
	}
	if ref != nil {
		rec.Policy = ref.Policy
		if ref.HasRule {
			rec.Rule = &ref.Rule
		}
	}
	p.cfg.Audit.Record(rec)
}

// cleanPath is the path policies match: the decoded path (as the app's
// HTTP server sees it, so that percent-encoding cannot hide a path from a
// policy) with dot segments resolved and repeated slashes merged, as
// Envoy's normalize_path and merge_slashes do. Paths that need no
// cleaning are returned as they are, without allocating.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		return p
	}
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// isGRPCContentType reports whether a content type is gRPC's
// (application/grpc, application/grpc+proto, ...), not gRPC-Web's.
func isGRPCContentType(ct string) bool {
	rest, ok := cutPrefixFold(ct, "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}
