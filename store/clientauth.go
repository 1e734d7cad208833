package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"

	"github.com/fedmesh/fedmesh/internal/identity"
)

// ErrWrongUser is wrapped by the refusal of a client certificate whose
// Common Name, the etcd user it would act as, is not the one its verified
// SPIFFE ID allows (see EtcdUser).
var ErrWrongUser = errors.New("client certificate common name is not the etcd user of its identity")

// ReasonWrongUser is the fedmesh_store_client_refusals_total label of
// ErrWrongUser; every other refusal is labelled identity.Reason(err).
const ReasonWrongUser = "wrong_user"

// maxCABundleBytes bounds the client CA file.
const maxCABundleBytes = 1 << 20

// PeerUser is the etcd user of cluster's control plane in a peer's etcd:
// the Common Name of its SVID, identity.ControlPlaneCN(cluster).
func PeerUser(cluster string) string { return identity.ControlPlaneCN(cluster) }

// EtcdUser is the one etcd user a client whose certificate verified as
// the control plane of cluster may act as in the etcd of local: RootUser
// for local's own control plane, PeerUser(cluster) for a peer's.
func EtcdUser(local, cluster string) string {
	if cluster == local {
		return RootUser
	}
	return PeerUser(cluster)
}

// clientAuth checks every client of the embedded etcd when client
// certificates are required (Config.ClientCAFile): the certificate must
// be a control plane SVID signed by its own cluster's CA
// (identity.VerifyControlPlane) whose Common Name is EtcdUser of that
// cluster. It runs inside the TLS handshake, so a refused certificate
// never reaches etcd, whose authentication only reads the Common Name.
type clientAuth struct {
	cluster string
	caFile  string
	cert    *identity.FileCert
	now     func() time.Time
	log     *slog.Logger
	refused *prometheus.CounterVec

	mu       sync.Mutex // guards the following
	bundle   *x509bundle.Bundle
	bundleAt time.Time // modification time of caFile when bundle was read
}

func newClientAuth(cfg Config, log *slog.Logger, m *Metrics) (*clientAuth, error) {
	data, err := readLimited(cfg.ClientCAFile, maxCABundleBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: client CA file: %w", ErrConfig, err)
	}
	bundle, err := parseClientCABundle(data)
	if err != nil {
		return nil, fmt.Errorf("%w: client CA file %s: %w", ErrConfig, cfg.ClientCAFile, err)
	}
	st, err := os.Stat(cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: client CA file: %w", ErrConfig, err)
	}
	cert, err := identity.NewFileCert(cfg.ServerCertFile, cfg.ServerKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: server certificate: %w", ErrConfig, err)
	}
	return &clientAuth{cluster: cfg.Cluster, caFile: cfg.ClientCAFile, bundle: bundle, bundleAt: st.ModTime(),
		cert: cert, now: time.Now, log: log, refused: m.ClientRefusals}, nil
}

// currentBundle is the trust bundle in the client CA file, read again
// when the file's modification time changes (a CA rotation rewrites it
// in place: the old and the new root during the rotation's window, then
// the new one alone). A file that no longer parses, as one caught half
// written, leaves the last good bundle in place.
func (a *clientAuth) currentBundle() *x509bundle.Bundle {
	st, err := os.Stat(a.caFile)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil || st.ModTime().Equal(a.bundleAt) {
		return a.bundle
	}
	data, err := readLimited(a.caFile, maxCABundleBytes)
	if err == nil {
		var b *x509bundle.Bundle
		if b, err = parseClientCABundle(data); err == nil && b.TrustDomain() != a.bundle.TrustDomain() {
			err = fmt.Errorf("trust domain %q, was %q", b.TrustDomain().Name(), a.bundle.TrustDomain().Name())
		} else if err == nil {
			a.bundle, a.bundleAt = b, st.ModTime()
			a.log.Info("etcd client CA bundle reloaded", "file", a.caFile, "roots", len(b.X509Authorities()))
			return a.bundle
		}
	}
	a.log.Warn("etcd client CA bundle not reloaded; the last good one stays", "file", a.caFile, "err", err)
	a.bundleAt = st.ModTime() // warn once per change
	return a.bundle
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s holds more than %d bytes", path, limit)
	}
	return data, nil
}

// parseClientCABundle reads the federation's trust bundle from PEM: one or
// more CA certificates (and nothing else), each carrying the trust domain
// as its one URI SAN (spiffe://TD), all the same trust domain.
func parseClientCABundle(data []byte) (*x509bundle.Bundle, error) {
	var (
		td    spiffeid.TrustDomain
		roots []*x509.Certificate
	)
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(strings.TrimSpace(string(rest))) != 0 {
				return nil, errors.New("trailing data that is not PEM")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(roots)+1, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(roots)+1, err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("certificate %d (%q) is not a CA", len(roots)+1, c.Subject.String())
		}
		if len(c.URIs) != 1 {
			return nil, fmt.Errorf("certificate %d (%q) has %d URI SANs, want 1 (spiffe://TRUST-DOMAIN)", len(roots)+1, c.Subject.String(), len(c.URIs))
		}
		ctd, err := spiffeid.TrustDomainFromURI(c.URIs[0])
		if err != nil {
			return nil, fmt.Errorf("certificate %d (%q): URI SAN %q: %w", len(roots)+1, c.Subject.String(), c.URIs[0].String(), err)
		}
		if !td.IsZero() && ctd != td {
			return nil, fmt.Errorf("certificate %d names trust domain %q, certificate 1 %q", len(roots)+1, ctd.Name(), td.Name())
		}
		td = ctd
		roots = append(roots, c)
	}
	if len(roots) == 0 {
		return nil, errors.New("no certificate")
	}
	return x509bundle.FromX509Authorities(td, roots), nil
}

// checkOwnClient refuses, before etcd starts, a store client certificate
// that the checks would refuse, so that a wrong one is a clear
// configuration error and not a dial timeout. A config that picks its
// certificate per handshake (GetClientCertificate) is not checked.
func (a *clientAuth) checkOwnClient(tc *tls.Config) error {
	if tc == nil || len(tc.Certificates) == 0 {
		return nil
	}
	var certs []*x509.Certificate
	for i, der := range tc.Certificates[0].Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("%w: client TLS certificate %d: %w", ErrConfig, i, err)
		}
		certs = append(certs, c)
	}
	if _, err := a.verify(certs); err != nil {
		return fmt.Errorf("%w: the store's own client certificate would be refused: %w", ErrConfig, err)
	}
	if cn := certs[0].Subject.CommonName; cn != RootUser {
		return fmt.Errorf("%w: the store's own client certificate has common name %q, want %q", ErrConfig, cn, RootUser)
	}
	return nil
}

// verify checks a client's certificates and returns the chains to hand to
// etcd as the connection's verified chains.
func (a *clientAuth) verify(certs []*x509.Certificate) ([][]*x509.Certificate, error) {
	cluster, chains, err := identity.VerifyControlPlane(certs, a.currentBundle(), a.now())
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	if want := EtcdUser(a.cluster, cluster); leaf.Subject.CommonName != want {
		return nil, fmt.Errorf("%w: the control plane of %s presents common name %q, may only be %q here", ErrWrongUser, cluster, leaf.Subject.CommonName, want)
	}
	return chains, nil
}

func refusalReason(err error) string {
	if errors.Is(err, ErrWrongUser) {
		return ReasonWrongUser
	}
	return identity.Reason(err)
}

// tlsConfig is the server config of one client connection from remote;
// the chains of an accepted client are stored in *verified.
func (a *clientAuth) tlsConfig(remote net.Addr, verified *[][]*x509.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Requested, not required, so that a missing certificate is
		// refused (and counted) by VerifyConnection like every other.
		ClientAuth:     tls.RequestClientCert,
		GetCertificate: a.cert.GetCertificate,
		NextProtos:     []string{"h2"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			chains, err := a.verify(cs.PeerCertificates)
			if err != nil {
				a.refuse(remote, cs.PeerCertificates, err)
				return err
			}
			*verified = chains
			return nil
		},
	}
}

func (a *clientAuth) refuse(remote net.Addr, certs []*x509.Certificate, err error) {
	reason := refusalReason(err)
	a.refused.WithLabelValues(reason).Inc()
	attrs := []any{"remote", remote.String(), "reason", reason, "err", err}
	if len(certs) > 0 {
		leaf := certs[0]
		uris := make([]string, len(leaf.URIs))
		for i, u := range leaf.URIs {
			uris[i] = u.String()
		}
		attrs = append(attrs, "common_name", leaf.Subject.CommonName, "uri_sans", uris, "issuer", leaf.Issuer.String())
	}
	a.log.Warn("refused an etcd client certificate", attrs...)
}

// clientCreds are the gRPC transport credentials of the embedded etcd's
// client listeners. They do the TLS handshake with clientAuth's checks and
// hand etcd a credentials.TLSInfo whose VerifiedChains are the chains
// VerifyControlPlane accepted: etcd's authentication takes the user from
// VerifiedChains[0][0].Subject.CommonName.
type clientCreds struct{ a *clientAuth }

var _ credentials.TransportCredentials = clientCreds{}

func (c clientCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	var verified [][]*x509.Certificate
	conn := tls.Server(raw, c.a.tlsConfig(raw.RemoteAddr(), &verified))
	// gRPC bounds the handshake with a deadline on raw
	// (grpc.ConnectionTimeout).
	if err := conn.HandshakeContext(context.Background()); err != nil {
		return nil, nil, err
	}
	cs := conn.ConnectionState()
	if len(verified) == 0 { // cannot happen: VerifyConnection ran and accepted
		conn.Close()
		return nil, nil, errors.New("etcd client handshake finished without a verified chain")
	}
	cs.VerifiedChains = verified
	return conn, credentials.TLSInfo{State: cs, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (clientCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("store: the etcd client listener's credentials only serve")
}

func (clientCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c clientCreds) Clone() credentials.TransportCredentials { return c }

func (clientCreds) OverrideServerName(string) error { return nil }
