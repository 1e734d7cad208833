package proof

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
)

// DefaultDialTimeout bounds one proof: the TCP connection and the TLS
// handshake.
const DefaultDialTimeout = 5 * time.Second

// Reasons a member's proof fails; the values of the reason label of the
// federation's untrusted-member metrics. Certificate problems that are
// not about whose identity it is take identity.Reason's labels
// (no_certificate, untrusted, foreign_trust_domain, expired, ...).
const (
	// ReasonNotTLS: the catalog address is not an https URL, so there is
	// no certificate to check.
	ReasonNotTLS = "catalog_not_tls"
	// ReasonBadAddress: the catalog address is not a URL with a host
	// and a port.
	ReasonBadAddress = "bad_catalog_address"
	// ReasonUnreachable: the catalog address did not accept a connection.
	ReasonUnreachable = "unreachable"
	// ReasonHandshake: the TLS handshake failed before any certificate
	// was checked (the address does not speak TLS, for example).
	ReasonHandshake = "handshake_failed"
	// ReasonNotControlPlane: a valid SVID, but a workload's.
	ReasonNotControlPlane = "not_control_plane"
	// ReasonWrongCluster: a control plane SVID of another cluster than
	// the member's cluster tag.
	ReasonWrongCluster = "wrong_cluster"
	// ReasonWrongIssuer: the member's control plane SVID was minted by
	// another cluster's CA.
	ReasonWrongIssuer = "wrong_issuer"
)

// Error is a failed proof: which member, which address, why.
type Error struct {
	// Cluster is the member's cluster tag.
	Cluster string
	// Addr is the catalog address that was dialled.
	Addr string
	// Reason is one of the Reason constants or an identity.Reason label.
	Reason string
	// Err is what went wrong.
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("member %s does not prove a control plane identity at %s: %s: %v", e.Cluster, e.Addr, e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IdentityRefused reports whether the member answered and what it
// presented was refused (as opposed to a member that could not be
// reached, which may be a passing outage).
func (e *Error) IdentityRefused() bool {
	switch e.Reason {
	case ReasonUnreachable, ReasonHandshake:
		return false
	}
	return true
}

// ReasonOf is the reason label of err: the Reason of an *Error, "" for
// nil, identity.ReasonOther otherwise.
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return identity.ReasonOther
}

// certReason names a refusal of identity.VerifyControlPlane.
func certReason(err error) string {
	switch {
	case errors.Is(err, identity.ErrNotControlPlane):
		return ReasonNotControlPlane
	case errors.Is(err, identity.ErrWrongCluster):
		return ReasonWrongCluster
	case errors.Is(err, identity.ErrIssuerMismatch):
		return ReasonWrongIssuer
	}
	return identity.Reason(err)
}

// Identity is what a member proved.
type Identity struct {
	// ID is the member's control plane SPIFFE ID,
	// spiffe://TD/fedmesh/cluster/CLUSTER.
	ID spiffeid.ID
	// NotAfter is when the certificate it presented expires.
	NotAfter time.Time
}

// Config configures a Prover.
type Config struct {
	// Bundle gives the federation's trust bundle: its trust domain and
	// root authorities. Required.
	Bundle identity.BundleSource
	// Certs gives this control plane's certificate, presented as the
	// client certificate (a peer's etcd asks for one). Nil presents none.
	Certs identity.CertSource
	// DialTimeout bounds one proof. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// Now tells the time certificates are checked at; default time.Now.
	Now func() time.Time
}

// Prover checks the control plane identity a gossip member's catalog
// address presents. Its methods are safe for concurrent use.
type Prover struct {
	cfg Config

	mu sync.Mutex // guards slow
	// slow holds, by catalog, the timeout of the next proof of a catalog
	// whose last proof timed out.
	slow map[string]time.Duration
}

// maxSlowFactor bounds the timeout a slow catalog gets: DialTimeout
// times this.
const maxSlowFactor = 8

// maxSlowCatalogs bounds the catalogs remembered as slow; past it the
// memory starts over.
const maxSlowCatalogs = 4096

// timeout is how long the next proof of catalog may take: DialTimeout,
// doubled after each proof of it that timed out, up to maxSlowFactor
// times. A catalog on an overloaded machine (a federation of hundreds
// forming at once, a restart after an outage) answers a handshake slower
// than DialTimeout: cutting it short wastes the work done and sends
// another, so it gets more time instead, as TCP's retransmission timeout
// grows.
func (p *Prover) timeout(catalog string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.slow[catalog]; ok {
		return d
	}
	return p.cfg.DialTimeout
}

// timedOut and answered record how a proof of catalog ended.
func (p *Prover) timedOut(catalog string, took time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slow == nil || len(p.slow) >= maxSlowCatalogs {
		p.slow = make(map[string]time.Duration)
	}
	p.slow[catalog] = min(2*took, maxSlowFactor*p.cfg.DialTimeout)
}

func (p *Prover) answered(catalog string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.slow, catalog)
}

// New validates cfg and returns a Prover.
func New(cfg Config) (*Prover, error) {
	if cfg.Bundle == nil {
		return nil, errors.New("proof config: a trust bundle is required")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.DialTimeout < 0 {
		return nil, fmt.Errorf("proof config: negative dial timeout %s", cfg.DialTimeout)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Prover{cfg: cfg}, nil
}

// CatalogHostPort returns the host:port to dial for an https catalog
// URL as a member announces it in gossip. The error is an *Error with
// ReasonNotTLS or ReasonBadAddress.
func CatalogHostPort(cluster, catalog string) (string, error) {
	u, err := url.Parse(catalog)
	if err != nil {
		return "", &Error{Cluster: cluster, Addr: catalog, Reason: ReasonBadAddress, Err: errors.New("not a URL")}
	}
	if u.Scheme != "https" {
		return "", &Error{Cluster: cluster, Addr: catalog, Reason: ReasonNotTLS,
			Err: fmt.Errorf("scheme %q: only an https catalog can present a certificate", u.Scheme)}
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", &Error{Cluster: cluster, Addr: catalog, Reason: ReasonBadAddress, Err: errors.New("want https://HOST:PORT")}
	}
	return u.Host, nil
}

// Prove dials catalog (the member's catalog URL from its tags) and
// requires the TLS server to present the control plane SVID of cluster,
// chained to the federation's root through cluster's own CA
// (identity.VerifyControlPlane), and to prove it holds its key (the
// handshake does). It returns the proven identity, or an *Error.
func (p *Prover) Prove(ctx context.Context, cluster, catalog string) (Identity, error) {
	hostPort, err := CatalogHostPort(cluster, catalog)
	if err != nil {
		return Identity{}, err
	}
	limit := p.timeout(catalog)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	id, err := p.prove(ctx, cluster, catalog, hostPort)
	switch {
	case err == nil:
		p.answered(catalog)
	case ctx.Err() == context.DeadlineExceeded:
		p.timedOut(catalog, limit)
	}
	return id, err
}

func (p *Prover) prove(ctx context.Context, cluster, catalog, hostPort string) (Identity, error) {
	var (
		mu        sync.Mutex // guards the following; set in the handshake
		verifyErr error
		proved    Identity
	)
	host, _, _ := net.SplitHostPort(hostPort)
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: host,
		// The SPIFFE check below replaces the host name check: the
		// identity is what is proven, not the address.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := identity.VerifyControlPlaneOf(cs.PeerCertificates, p.cfg.Bundle.Bundle(), p.cfg.Now(), cluster)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				verifyErr = err
				return err
			}
			proved = Identity{ID: id, NotAfter: cs.PeerCertificates[0].NotAfter}
			return nil
		},
	}
	if p.cfg.Certs != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := p.cfg.Certs.Certificate()
			if err != nil || c == nil {
				return &tls.Certificate{}, nil // none: the server decides
			}
			return c, nil
		}
	}
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", hostPort)
	if err != nil {
		return Identity{}, &Error{Cluster: cluster, Addr: catalog, Reason: ReasonUnreachable, Err: err}
	}
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	err = conn.HandshakeContext(ctx)
	mu.Lock()
	defer mu.Unlock()
	if verifyErr != nil {
		return Identity{}, &Error{Cluster: cluster, Addr: catalog, Reason: certReason(verifyErr), Err: verifyErr}
	}
	if err != nil {
		return Identity{}, &Error{Cluster: cluster, Addr: catalog, Reason: ReasonHandshake, Err: err}
	}
	return proved, nil
}

// PeerTLS returns a copy of base that, on top of base's own checks,
// accepts only the control plane identity of cluster (checked as Prove
// does), for the replicator of a proven member: what it reads comes from
// the identity that was proven. onRefuse, if set, is told every refusal.
// A nil base stays nil (a plain http catalog, in tests).
func (p *Prover) PeerTLS(base *tls.Config, cluster string, onRefuse func(error)) *tls.Config {
	if base == nil {
		return nil
	}
	cfg := base.Clone()
	inner := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if inner != nil {
			if err := inner(cs); err != nil {
				return err
			}
		}
		if _, err := identity.VerifyControlPlaneOf(cs.PeerCertificates, p.cfg.Bundle.Bundle(), p.cfg.Now(), cluster); err != nil {
			err = &Error{Cluster: cluster, Addr: cs.ServerName, Reason: certReason(err), Err: err}
			if onRefuse != nil {
				onRefuse(err)
			}
			return err
		}
		return nil
	}
	return cfg
}
