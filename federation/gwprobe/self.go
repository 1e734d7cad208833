package gwprobe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// probeGateway probes the peer's gateway itself, for a peer that exports
// no service to probe it through: mutual TLS to the server name
// naming.GatewayProbeSNI, which the gateway answers with its own SVID.
// The probe accepts a workload SVID issued by the peer's own cluster CA
// and presents Config.Certificate, this control plane's SVID. In TLS 1.3
// the server checks the client's certificate after the client's side of
// the handshake is done, so the probe then reads: the gateway's
// close_notify (EOF) says it accepted, an alert that it refused.
func (p *Prober) probeGateway(ctx context.Context, peer, gateway string) (string, error) {
	raw, result, err := p.dial(ctx, gateway)
	if err != nil {
		return result, err
	}
	defer raw.Close()
	var verifyErr error
	cfg := &tls.Config{
		ServerName:         naming.GatewayProbeSNI,
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{naming.ProbeALPN},
		InsecureSkipVerify: true, // SPIFFE verification in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, verifyErr = identity.VerifyWorkloadOf(cs.PeerCertificates, p.cfg.Bundle.Bundle(), p.cfg.Now(), peer)
			return verifyErr
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return p.cfg.Certificate.Certificate()
		},
	}
	what := fmt.Sprintf("gateway %s itself", gateway)
	conn := tls.Client(raw, cfg)
	err = conn.HandshakeContext(ctx)
	if verifyErr != nil {
		return ResultBadIdentity, fmt.Errorf("%s: %w", what, verifyErr)
	}
	if err != nil {
		return p.failure(ctx, what, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(dl)
	} else {
		conn.SetReadDeadline(time.Now().Add(p.cfg.Timeout))
	}
	var b [1]byte
	_, err = conn.Read(b[:])
	if errors.Is(err, io.EOF) {
		return ResultOK, nil
	}
	if err == nil {
		err = errors.New("the gateway sent data after the handshake")
	}
	return p.failure(ctx, what, err)
}
