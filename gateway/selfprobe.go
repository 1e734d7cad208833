package gateway

// This file answers peer control planes' probes of the gateway itself
// (server name naming.GatewayProbeSNI): the evidence that a cluster's
// data plane is up when it exports nothing to probe it through.

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// Results of probes of the gateway itself, the result label of
// fedmesh_gateway_self_probes_total beside identity.Reason's refusal
// labels (untrusted, expired, no_certificate, unauthorized, ...).
const (
	SelfProbeOK = "ok"
	// SelfProbeNoIdentity: the gateway has no SVID yet (no SDS answer).
	SelfProbeNoIdentity = "no_identity"
	// SelfProbeHandshake: the handshake failed before any certificate
	// check (a timeout, a reset, a protocol error).
	SelfProbeHandshake = "handshake_failed"
)

// answerSelfProbe terminates the TLS of a probe of the gateway itself:
// it presents the gateway's SVID and accepts the prober only with a
// control plane SVID chained to the current trust bundle (so a peer's
// probe works across a root rotation, and a certificate of a removed
// root is refused). Nothing is read or written after the handshake; the
// gateway closes with close_notify, which tells the prober it was
// accepted.
func (g *Gateway) answerSelfProbe(c net.Conn, hello *ClientHello, source string) {
	g.metrics.probes.WithLabelValues(source).Inc()
	if g.ident.Load() == nil {
		g.metrics.selfProbes.WithLabelValues(SelfProbeNoIdentity).Inc()
		g.refuse(c, ReasonNoIdentity, "", source, ErrNoIdentity)
		return
	}
	src := identitySource{g}
	cfg := identity.ServerConfig(src, src, identity.AuthorizeControlPlanes())
	cfg.NextProtos = []string{naming.ProbeALPN}
	refused := false
	identity.OnRefuse(cfg, func(err error) {
		refused = true
		g.metrics.selfProbes.WithLabelValues(identity.Reason(err)).Inc()
		g.log.Debug("gateway probe refused", "source", c.RemoteAddr().String(), "err", err)
	})
	tc := tls.Server(&prefixConn{Conn: c, pending: hello.Raw}, cfg)
	defer tc.Close()
	c.SetDeadline(time.Now().Add(g.cfg.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		if !refused {
			g.metrics.selfProbes.WithLabelValues(SelfProbeHandshake).Inc()
		}
		return
	}
	g.metrics.selfProbes.WithLabelValues(SelfProbeOK).Inc()
}

// prefixConn reads pending (the ClientHello records the gateway read to
// learn the server name) before the connection's own bytes.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (r *prefixConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}
