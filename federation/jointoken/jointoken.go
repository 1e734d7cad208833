package jointoken

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
)

// Prefix starts every token of this version; it makes a token easy to
// recognise and lets later versions change the format.
const Prefix = "fmjt1."

// Version is the payload version this package writes and reads.
const Version = 1

// Limits of what Decode accepts.
const (
	MaxTokenLength = 32 << 10
	maxChain       = 4
	maxKeys        = 8
	maxSeeds       = 16
)

// Sentinel errors; every Verify and Decode error wraps exactly one.
var (
	ErrTokenMalformed = errors.New("join token is malformed (was it copied whole?)")
	ErrTokenSignature = errors.New("join token signature does not match: the token was altered")
	ErrTokenForeign   = errors.New("join token was issued by another federation: its certificates do not chain to this cluster's root CA")
	ErrTokenExpired   = errors.New("join token has expired: create a new one with 'fedmesh token create'")
	ErrTokenSigner    = errors.New("join token was not signed by the issuing cluster's control plane")
)

// Reason names the sentinel an error wraps, for a metric label:
// malformed, signature, foreign, expired, signer, or other.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, ErrTokenSignature):
		return "signature"
	case errors.Is(err, ErrTokenForeign):
		return "foreign"
	case errors.Is(err, ErrTokenExpired):
		return "expired"
	case errors.Is(err, ErrTokenSigner):
		return "signer"
	}
	return "other"
}

// Payload is what a joining control plane learns from a token.
type Payload struct {
	// Version is the payload version, Version.
	Version int `json:"v"`
	// TrustDomain is the federation's SPIFFE trust domain.
	TrustDomain string `json:"td"`
	// Issuer is the name of the cluster that created the token.
	Issuer string `json:"iss"`
	// GossipKeys is the federation's gossip keyring, primary first.
	GossipKeys [][]byte `json:"keys"`
	// RootBundle is the federation's root CA certificates, PEM.
	RootBundle []byte `json:"roots"`
	// Seeds are gossip addresses (host:port) of current members.
	Seeds []string `json:"seeds"`
	// IssuedAt is when the token was created.
	IssuedAt time.Time `json:"iat"`
	// Expiry is when the token stops being accepted.
	Expiry time.Time `json:"exp"`
}

// envelope is the wire form: the exact payload bytes that were signed,
// the signer's certificate chain (DER, leaf first) and the signature.
type envelope struct {
	Payload []byte   `json:"p"`
	Chain   [][]byte `json:"c"`
	Sig     []byte   `json:"s"`
}

// Token is a decoded, not yet verified token.
type Token struct {
	Payload Payload
	// Chain is the issuer's certificate chain, leaf first.
	Chain []*x509.Certificate

	signed []byte
	sig    []byte
}

// signedMessage is what the signature covers: a context string and the
// payload bytes, so that a signature made for anything else never passes.
func signedMessage(payload []byte) []byte {
	return append([]byte("fedmesh join token v1\n"), payload...)
}

// Create signs p with signer, whose certificate is chain[0] (chain may
// hold intermediates after it, not the root), and returns the token.
// p.Version is set; IssuedAt defaults to now.
func Create(p Payload, signer crypto.Signer, chain []*x509.Certificate) (string, error) {
	if len(chain) == 0 || len(chain) > maxChain {
		return "", fmt.Errorf("create join token: want 1 to %d certificates in the chain, got %d", maxChain, len(chain))
	}
	if !publicKeyEqual(signer.Public(), chain[0].PublicKey) {
		return "", errors.New("create join token: the signer's key does not match the first certificate of the chain")
	}
	p.Version = Version
	if p.IssuedAt.IsZero() {
		p.IssuedAt = time.Now()
	}
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("create join token: %w", err)
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("create join token: %w", err)
	}
	sig, err := sign(signer, signedMessage(payload))
	if err != nil {
		return "", fmt.Errorf("create join token: sign: %w", err)
	}
	env := envelope{Payload: payload, Sig: sig}
	for _, c := range chain {
		env.Chain = append(env.Chain, c.Raw)
	}
	b, err := json.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("create join token: %w", err)
	}
	tok := Prefix + base64.RawURLEncoding.EncodeToString(b)
	if len(tok) > MaxTokenLength {
		return "", fmt.Errorf("create join token: %d bytes is longer than %d", len(tok), MaxTokenLength)
	}
	return tok, nil
}

// Decode parses a token without verifying it. Use Verify to trust it.
// Surrounding white space is ignored.
func Decode(token string) (*Token, error) {
	token = strings.TrimSpace(token)
	if len(token) > MaxTokenLength {
		return nil, fmt.Errorf("%w: %d bytes is longer than %d", ErrTokenMalformed, len(token), MaxTokenLength)
	}
	body, ok := strings.CutPrefix(token, Prefix)
	if !ok {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrTokenMalformed, Prefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url: %v", ErrTokenMalformed, err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
	}
	if len(env.Sig) == 0 {
		return nil, fmt.Errorf("%w: no signature", ErrTokenMalformed)
	}
	if len(env.Chain) == 0 || len(env.Chain) > maxChain {
		return nil, fmt.Errorf("%w: want 1 to %d certificates, got %d", ErrTokenMalformed, maxChain, len(env.Chain))
	}
	t := &Token{signed: signedMessage(env.Payload), sig: env.Sig}
	for i, der := range env.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrTokenMalformed, i, err)
		}
		t.Chain = append(t.Chain, c)
	}
	dec := json.NewDecoder(bytes.NewReader(env.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t.Payload); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrTokenMalformed, err)
	}
	if err := t.Payload.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
	}
	return t, nil
}

// Verify decodes token and accepts it only if its certificate chain leads
// to one of roots (the federation root this cluster already trusts), its
// signature covers the exact payload, its root bundle holds only trusted
// roots, and it has not expired at now. Errors wrap ErrTokenMalformed,
// ErrTokenForeign, ErrTokenSignature or ErrTokenExpired.
func Verify(token string, roots []*x509.Certificate, now time.Time) (*Payload, error) {
	if len(roots) == 0 {
		return nil, errors.New("verify join token: no trusted root certificates")
	}
	t, err := Decode(token)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range t.Chain[1:] {
		inter.AddCert(c)
	}
	leaf := t.Chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, fmt.Errorf("%w: the issuer's certificate is outside its validity at %s", ErrTokenExpired, now.UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("%w (%v)", ErrTokenForeign, err)
	}
	alg, err := signatureAlgorithm(leaf.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
	}
	if err := leaf.CheckSignature(alg, t.signed, t.sig); err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrTokenSignature, err)
	}
	if err := checkSigner(leaf, &t.Payload); err != nil {
		return nil, err
	}
	bundle, _ := parseBundle(t.Payload.RootBundle) // validated by Decode
	for _, b := range bundle {
		trusted := false
		for _, r := range roots {
			if b.Equal(r) {
				trusted = true
				break
			}
		}
		if !trusted {
			return nil, fmt.Errorf("%w: its root bundle holds %q, which this cluster does not trust", ErrTokenForeign, b.Subject.String())
		}
	}
	if !now.Before(t.Payload.Expiry) {
		return nil, fmt.Errorf("%w (expired at %s, now %s)", ErrTokenExpired,
			t.Payload.Expiry.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	p := t.Payload
	return &p, nil
}

// checkSigner accepts a leaf whose one URI SAN is the control plane ID of
// the payload's issuer cluster in the payload's trust domain. A workload
// SVID chains to the same root, so the chain alone does not tell that a
// control plane signed.
func checkSigner(leaf *x509.Certificate, p *Payload) error {
	if len(leaf.URIs) != 1 {
		return fmt.Errorf("%w: the signing certificate has %d URI SANs, want one SPIFFE ID", ErrTokenSigner, len(leaf.URIs))
	}
	id, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return fmt.Errorf("%w: the signing certificate's URI SAN: %v", ErrTokenSigner, err)
	}
	cluster, err := identity.ParseControlPlaneID(id)
	if err != nil {
		return fmt.Errorf("%w: signed by %s, not a control plane", ErrTokenSigner, id)
	}
	if cluster != p.Issuer || id.TrustDomain().Name() != p.TrustDomain {
		return fmt.Errorf("%w: signed by %s, but the token names cluster %q of trust domain %q", ErrTokenSigner, id, p.Issuer, p.TrustDomain)
	}
	return nil
}

// RootCertificates parses the payload's root bundle.
func (p *Payload) RootCertificates() ([]*x509.Certificate, error) {
	return parseBundle(p.RootBundle)
}

func (p *Payload) validate() error {
	if p.Version != Version {
		return fmt.Errorf("payload version %d, this build reads %d", p.Version, Version)
	}
	if p.TrustDomain == "" || len(p.TrustDomain) > 255 {
		return errors.New("no trust domain")
	}
	if p.Issuer == "" || len(p.Issuer) > 63 {
		return errors.New("no issuer cluster")
	}
	if len(p.GossipKeys) == 0 || len(p.GossipKeys) > maxKeys {
		return fmt.Errorf("want 1 to %d gossip keys, got %d", maxKeys, len(p.GossipKeys))
	}
	for i, k := range p.GossipKeys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("gossip key %d is %d bytes, want 16, 24 or 32", i, n)
		}
	}
	if len(p.Seeds) == 0 || len(p.Seeds) > maxSeeds {
		return fmt.Errorf("want 1 to %d seed addresses, got %d", maxSeeds, len(p.Seeds))
	}
	for _, s := range p.Seeds {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			return fmt.Errorf("seed %q is not host:port", s)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("seed %q: port is not a number from 1 to 65535", s)
		}
	}
	if _, err := parseBundle(p.RootBundle); err != nil {
		return err
	}
	if p.Expiry.IsZero() || !p.Expiry.After(p.IssuedAt) {
		return errors.New("expiry is not after issue time")
	}
	return nil
}

func parseBundle(pemBytes []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := pemBytes
	for len(out) < maxChain*2 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("root bundle holds a %q block, want CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("root bundle: %v", err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("root bundle: %q is not a CA certificate", c.Subject.String())
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("root bundle holds no certificate")
	}
	return out, nil
}

func signatureAlgorithm(pub any) (x509.SignatureAlgorithm, error) {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return x509.ECDSAWithSHA256, nil
	case *rsa.PublicKey:
		return x509.SHA256WithRSA, nil
	case ed25519.PublicKey:
		return x509.PureEd25519, nil
	}
	return x509.UnknownSignatureAlgorithm, fmt.Errorf("unsupported key type %T", pub)
}

func sign(signer crypto.Signer, msg []byte) ([]byte, error) {
	switch signer.Public().(type) {
	case ed25519.PublicKey:
		return signer.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey, *rsa.PublicKey:
		d := sha256.Sum256(msg)
		return signer.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	return nil, fmt.Errorf("unsupported key type %T", signer.Public())
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}
