package identity

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// CertSource gives the certificate (with its chain and private key) to
// present in a new handshake. It is called once per handshake from any
// goroutine and must be safe for concurrent use. *Rotator implements it;
// StaticCert wraps a fixed certificate.
type CertSource interface {
	Certificate() (*tls.Certificate, error)
}

// BundleSource gives the federation's current trust bundle: the root
// authorities and, through the bundle, the one trust domain that is
// accepted. It is called once per handshake and must be safe for concurrent
// use. *Rotator implements it; StaticBundle wraps a fixed bundle.
type BundleSource interface {
	Bundle() *x509bundle.Bundle
}

// Authorizer decides whether a verified peer identity may talk to us (on a
// server) or is one we expect (on a client). It runs after VerifyPeer has
// accepted the chain, so the ID is in the federation's trust domain. A nil
// Authorizer accepts every such ID. A returned error is wrapped with
// ErrUnauthorized.
type Authorizer func(id spiffeid.ID) error

// AuthorizeIDs accepts exactly the given IDs.
func AuthorizeIDs(ids ...spiffeid.ID) Authorizer {
	ids = slices.Clone(ids)
	return func(id spiffeid.ID) error {
		if slices.Contains(ids, id) {
			return nil
		}
		return fmt.Errorf("%s is not one of the %d expected identities", id, len(ids))
	}
}

// AuthorizeControlPlanes accepts any control plane identity
// (spiffe://TD/fedmesh/cluster/NAME) and refuses workloads.
func AuthorizeControlPlanes() Authorizer {
	return func(id spiffeid.ID) error {
		if !IsControlPlane(id) {
			return fmt.Errorf("%s is not a control plane identity", id)
		}
		return nil
	}
}

// AuthorizeWorkloads accepts any workload identity (spiffe://TD/ns/NS/sa/SA).
func AuthorizeWorkloads() Authorizer {
	return func(id spiffeid.ID) error {
		if !IsWorkload(id) {
			return fmt.Errorf("%s is not a workload identity", id)
		}
		return nil
	}
}

type staticCert struct{ c *tls.Certificate }

func (s staticCert) Certificate() (*tls.Certificate, error) { return s.c, nil }

// StaticCert is a CertSource that always gives c.
func StaticCert(c *tls.Certificate) CertSource { return staticCert{c} }

type staticBundle struct{ b *x509bundle.Bundle }

func (s staticBundle) Bundle() *x509bundle.Bundle { return s.b }

// StaticBundle is a BundleSource that always gives b.
func StaticBundle(b *x509bundle.Bundle) BundleSource { return staticBundle{b} }

// ErrNoLocalCertificate is returned to crypto/tls when a CertSource has no
// certificate yet (for example before the first SDS answer).
var ErrNoLocalCertificate = errors.New("no local certificate yet")

func getCert(certs CertSource) (*tls.Certificate, error) {
	c, err := certs.Certificate()
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, ErrNoLocalCertificate
	}
	return c, nil
}

// clock reads cfg.Time at handshake time, so a test can set Time on the
// returned config.
func clock(cfg *tls.Config) time.Time {
	if cfg.Time != nil {
		return cfg.Time()
	}
	return time.Now()
}

func verifyState(cs tls.ConnectionState, bundles BundleSource, authorize Authorizer, now time.Time) error {
	id, err := VerifyPeerCertificates(cs.PeerCertificates, bundles.Bundle(), now)
	if err != nil {
		return err
	}
	if authorize != nil {
		if err := authorize(id); err != nil {
			return fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
	}
	return nil
}

// ServerConfig builds a TLS 1.3 server config for mutual TLS between SPIFFE
// identities: the server presents certs' current certificate, and every
// client must present an X.509 SVID that VerifyPeer accepts against
// bundle's current bundle and that authorize accepts.
//
// The client certificate is requested (tls.RequestClientCert) and its
// absence refused in VerifyConnection, so that a missing certificate is
// reported as ErrNoCertificate like every other refusal; wrap the config
// with OnRefuse to count refusals. Set NextProtos and Time on the returned
// config as needed; Time is read at every handshake.
func ServerConfig(certs CertSource, bundle BundleSource, authorize Authorizer) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return getCert(certs)
		},
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyState(cs, bundle, authorize, clock(cfg))
	}
	return cfg
}

// ServerConfigOptionalClient is ServerConfig for a server that also serves
// clients without a certificate yet: the xDS server, whose sidecars prove
// who they are with a bootstrap token before they have an SVID. A client
// that presents a certificate must pass the same checks as in ServerConfig;
// one that presents none is let through, and the server must authenticate
// it by other means (PeerID reports ErrNoCertificate for it).
func ServerConfigOptionalClient(certs CertSource, bundle BundleSource, authorize Authorizer) *tls.Config {
	cfg := ServerConfig(certs, bundle, authorize)
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		return verifyState(cs, bundle, authorize, clock(cfg))
	}
	return cfg
}

// ClientConfig builds a TLS 1.3 client config that presents certs' current
// certificate (certs may be nil: no client certificate, for a node that has
// no SVID yet) and accepts the server only if its chain passes VerifyPeer
// against bundle and expect accepts its SPIFFE ID (for a sidecar: one of
// the identities the control plane announced for the service).
//
// As in go-spiffe's tlsconfig, InsecureSkipVerify is set so crypto/tls does
// not check the host name; the full SPIFFE verification runs in
// VerifyConnection instead. ServerName is left to the caller: it is the SNI
// an east-west gateway routes on, not a name in the certificate.
func ClientConfig(certs CertSource, bundle BundleSource, expect Authorizer) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
	}
	if certs != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return getCert(certs)
		}
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyState(cs, bundle, expect, clock(cfg))
	}
	return cfg
}

// OnRefuse wraps cfg.VerifyConnection so that fn sees every refusal before
// it fails the handshake (fn typically increments a counter labelled with
// Reason(err)). It returns cfg.
func OnRefuse(cfg *tls.Config, fn func(err error)) *tls.Config {
	inner := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if inner == nil {
			return nil
		}
		err := inner(cs)
		if err != nil {
			fn(err)
		}
		return err
	}
	return cfg
}

// PeerID returns the SPIFFE ID of the peer of a finished handshake made with
// one of this package's configs, which has already verified it. It returns
// ErrNoCertificate when the peer sent none (possible only with
// ServerConfigOptionalClient).
func PeerID(cs tls.ConnectionState) (spiffeid.ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, ErrNoCertificate
	}
	leaf := cs.PeerCertificates[0]
	if len(leaf.URIs) != 1 {
		return spiffeid.ID{}, fmt.Errorf("%w: leaf has %d", ErrSANCount, len(leaf.URIs))
	}
	id, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: %w", ErrNotSPIFFE, err)
	}
	return id, nil
}
