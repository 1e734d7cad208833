package ca

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/fedmesh/fedmesh/internal/identity"
)

// Bootstrap token refusals. Every error of VerifyBootstrapToken wraps one.
var (
	// ErrTokenMalformed: not a token of this format, or a field is invalid.
	ErrTokenMalformed = errors.New("malformed bootstrap token")
	// ErrTokenSignature: the token was not signed with this cluster's
	// secret, or was altered.
	ErrTokenSignature = errors.New("bootstrap token signature does not match")
	// ErrTokenExpired: the token's expiry has passed.
	ErrTokenExpired = errors.New("bootstrap token expired")
	// ErrTokenCluster: a validly signed token names another cluster.
	ErrTokenCluster = errors.New("bootstrap token is for another cluster")
)

const (
	// tokenPrefix versions the format: fmb1.PAYLOAD.MAC
	tokenPrefix = "fmb1"
	// MaxTokenLength bounds what VerifyBootstrapToken reads.
	MaxTokenLength = 2048
	// DefaultBootstrapTokenTTL is how long a bootstrap token proves a
	// workload's identity. The sidecar presents it each time it starts
	// without a valid certificate, so it outlives many SVIDs.
	DefaultBootstrapTokenTTL = 7 * 24 * time.Hour
)

var b64 = base64.RawURLEncoding

// tokenTD stands in for the trust domain when validating the names in a
// token; the authority's own trust domain is applied when signing.
var tokenTD = spiffeid.RequireTrustDomainFromString("token.invalid")

// tokenClaims is the signed payload, marshalled once at issue time; the
// signature covers the exact bytes received, never a re-encoding.
type tokenClaims struct {
	Cluster        string `json:"c"`
	Namespace      string `json:"ns"`
	ServiceAccount string `json:"sa"`
	Workload       string `json:"wl"`
	IssuedAt       int64  `json:"iat"`
	Expiry         int64  `json:"exp"`
}

// IssueBootstrapToken returns a token that proves, to this cluster's
// control plane and until ttl has passed (DefaultBootstrapTokenTTL when
// 0), that its holder is workload of namespace ns running as service
// account sa. The token is fmb1.PAYLOAD.MAC: base64url JSON claims and an
// HMAC-SHA256 with the cluster's secret. It is a bearer secret: write it
// only into the workload's own directory (WriteBootstrapToken).
func (a *Authority) IssueBootstrapToken(ns, sa, workload string, ttl time.Duration) (string, error) {
	if _, err := identity.WorkloadID(a.td, ns, sa); err != nil {
		return "", err
	}
	if err := checkWorkloadName(workload); err != nil {
		return "", err
	}
	if ttl == 0 {
		ttl = DefaultBootstrapTokenTTL
	}
	if ttl < 0 {
		return "", fmt.Errorf("token ttl %s is negative", ttl)
	}
	now := a.now()
	payload, err := json.Marshal(tokenClaims{
		Cluster: a.cluster, Namespace: ns, ServiceAccount: sa, Workload: workload,
		IssuedAt: now.Unix(), Expiry: now.Add(ttl).Unix(),
	})
	if err != nil {
		return "", err
	}
	signed := tokenPrefix + "." + b64.EncodeToString(payload)
	return signed + "." + b64.EncodeToString(a.mac(signed)), nil
}

func (a *Authority) mac(signed string) []byte {
	m := hmac.New(sha256.New, a.cur().tokenKey)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// VerifyBootstrapToken checks a token issued by IssueBootstrapToken of
// this cluster and returns who it proves. Errors wrap ErrTokenMalformed,
// ErrTokenSignature, ErrTokenExpired or ErrTokenCluster, and are counted by
// reason. The signature is compared in constant time before anything in
// the payload is believed.
func (a *Authority) VerifyBootstrapToken(tok string) (ns, sa, workload string, err error) {
	c, err := a.verifyToken(tok)
	if err != nil {
		a.tokenRefusals.WithLabelValues(tokenReason(err)).Inc()
		return "", "", "", err
	}
	return c.Namespace, c.ServiceAccount, c.Workload, nil
}

func tokenReason(err error) string {
	switch {
	case errors.Is(err, ErrTokenSignature):
		return "signature"
	case errors.Is(err, ErrTokenExpired):
		return "expired"
	case errors.Is(err, ErrTokenCluster):
		return "cluster"
	default:
		return "malformed"
	}
}

func (a *Authority) verifyToken(tok string) (*tokenClaims, error) {
	tok = strings.TrimSpace(tok)
	signed, sig, err := splitToken(tok)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(sig, a.mac(signed)) {
		return nil, ErrTokenSignature
	}
	c, err := parseClaims(signed)
	if err != nil {
		return nil, err
	}
	if c.Cluster != a.cluster {
		return nil, fmt.Errorf("%w: token names cluster %q, this is %q", ErrTokenCluster, c.Cluster, a.cluster)
	}
	if exp := time.Unix(c.Expiry, 0); !a.now().Before(exp) {
		return nil, fmt.Errorf("%w at %s", ErrTokenExpired, exp.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// splitToken checks the token's shape and returns the signed part
// (fmb1.PAYLOAD) and the decoded MAC.
func splitToken(tok string) (signed string, sig []byte, err error) {
	if tok == "" {
		return "", nil, fmt.Errorf("%w: empty", ErrTokenMalformed)
	}
	if len(tok) > MaxTokenLength {
		return "", nil, fmt.Errorf("%w: %d bytes, longer than %d", ErrTokenMalformed, len(tok), MaxTokenLength)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", nil, fmt.Errorf("%w: %d dot-separated parts, want 3 (%s.PAYLOAD.MAC)", ErrTokenMalformed, len(parts), tokenPrefix)
	}
	if parts[0] != tokenPrefix {
		return "", nil, fmt.Errorf("%w: prefix %q, want %q", ErrTokenMalformed, parts[0], tokenPrefix)
	}
	sig, err = b64.DecodeString(parts[2])
	if err != nil || len(sig) != sha256.Size {
		return "", nil, fmt.Errorf("%w: MAC is not %d bytes of base64url", ErrTokenMalformed, sha256.Size)
	}
	return parts[0] + "." + parts[1], sig, nil
}

// parseClaims decodes and validates the payload of a signed part.
func parseClaims(signed string) (*tokenClaims, error) {
	_, enc, _ := strings.Cut(signed, ".")
	payload, err := b64.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url: %w", ErrTokenMalformed, err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var c tokenClaims
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrTokenMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the payload", ErrTokenMalformed)
	}
	if c.Cluster == "" || c.Expiry == 0 {
		return nil, fmt.Errorf("%w: payload lacks cluster or expiry", ErrTokenMalformed)
	}
	if _, err := identity.WorkloadID(tokenTD, c.Namespace, c.ServiceAccount); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokenMalformed, err)
	}
	if err := checkWorkloadName(c.Workload); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokenMalformed, err)
	}
	return &c, nil
}

// checkWorkloadName accepts a DNS-1123 subdomain (apimachinery's
// validation.IsDNS1123Subdomain).
func checkWorkloadName(s string) error {
	if s == "" || len(s) > validation.DNS1123SubdomainMaxLength {
		return fmt.Errorf("workload name %q must be 1 to %d characters", s, validation.DNS1123SubdomainMaxLength)
	}
	if len(validation.IsDNS1123Subdomain(s)) != 0 {
		return fmt.Errorf("workload name %q is not a DNS-1123 subdomain", s)
	}
	return nil
}

// WriteBootstrapToken writes tok to DIR/token with mode 0600 (DIR is
// created 0700 if missing), replacing an older token atomically.
func WriteBootstrapToken(dir, tok string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".token-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, TokenFile))
}

// ReadBootstrapToken reads DIR/token as written by WriteBootstrapToken.
func ReadBootstrapToken(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("%s: %w: empty", filepath.Join(dir, TokenFile), ErrTokenMalformed)
	}
	return tok, nil
}
