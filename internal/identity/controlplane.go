package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Refusals of VerifyControlPlane and VerifyControlPlaneOf beside those of
// VerifyPeerCertificates and ErrIssuerMismatch.
var (
	// ErrNotControlPlane: the SVID is valid but not a control plane
	// identity (a workload's, for example). It comes wrapped with
	// ErrUnauthorized.
	ErrNotControlPlane = errors.New("not a control plane identity")
	// ErrWrongCluster: the SVID is a control plane identity of another
	// cluster than the one expected.
	ErrWrongCluster = errors.New("control plane identity of another cluster")
)

// ControlPlaneCN returns the Common Name of a control plane's SVID,
// "fedmesh-cp-CLUSTER". A peer's etcd maps it to the etcd user it grants
// read access to its exports; the CN is trusted only after
// VerifyControlPlane has tied the certificate to CLUSTER's own CA.
func ControlPlaneCN(cluster string) string { return "fedmesh-cp-" + cluster }

// IssuingCluster returns the cluster a cluster CA certificate serves: its
// one Subject OrganizationalUnit, as controlplane/ca writes it when the
// root signs the cluster's intermediate. It fails for a certificate that
// is not a CA or does not name exactly one valid cluster.
func IssuingCluster(ca *x509.Certificate) (string, error) {
	if !ca.IsCA {
		return "", fmt.Errorf("%q is not a CA certificate", ca.Subject.String())
	}
	if n := len(ca.Subject.OrganizationalUnit); n != 1 {
		return "", fmt.Errorf("cluster CA %q names %d clusters (OU), want 1", ca.Subject.String(), n)
	}
	cluster := ca.Subject.OrganizationalUnit[0]
	if err := checkLabel("cluster", cluster); err != nil {
		return "", err
	}
	return cluster, nil
}

// VerifyControlPlane checks what a TLS peer presented (leaf first, then
// intermediates, as in tls.ConnectionState.PeerCertificates) as the SVID
// of one of the federation's control planes, and ties it to its cluster:
//
//   - everything VerifyPeerCertificates checks, against bundle at now;
//   - the SPIFFE ID is a control plane ID, spiffe://TD/fedmesh/cluster/NAME
//     (else ErrUnauthorized);
//   - the leaf was signed by NAME's own cluster CA, an intermediate whose
//     one OrganizationalUnit is NAME and which a bundle authority signed
//     directly: the chain is exactly leaf, cluster CA, root (else
//     ErrIssuerMismatch).
//
// So no cluster CA can vouch for another cluster's control plane: every
// cluster CA chains to the same root, and a chain check alone would let
// east-2's CA sign spiffe://TD/fedmesh/cluster/east-1. It returns the
// cluster name and the chains that pass (for the caller to hand on as the
// connection's verified chains), or an error wrapping one of the refusal
// sentinels (Reason gives its label).
func VerifyControlPlane(certs []*x509.Certificate, bundle *x509bundle.Bundle, now time.Time) (cluster string, chains [][]*x509.Certificate, err error) {
	id, all, err := verifyChains(certs, bundle, now)
	if err != nil {
		return "", nil, err
	}
	cluster, err = ParseControlPlaneID(id)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w: %s", ErrUnauthorized, ErrNotControlPlane, id)
	}
	var issuers []string
	for _, chain := range all {
		if len(chain) != 3 {
			issuers = append(issuers, fmt.Sprintf("a chain of %d certificates", len(chain)))
			continue
		}
		issuer, err := IssuingCluster(chain[1])
		switch {
		case err != nil:
			issuers = append(issuers, err.Error())
		case issuer != cluster:
			issuers = append(issuers, fmt.Sprintf("the CA of cluster %q", issuer))
		default:
			chains = append(chains, chain)
		}
	}
	if len(chains) == 0 {
		return "", nil, fmt.Errorf("%w: %s is signed by %v, not by the CA of cluster %q", ErrIssuerMismatch, id, issuers, cluster)
	}
	return cluster, chains, nil
}

// VerifyControlPlaneOf is VerifyControlPlane for a peer expected to be
// the control plane of cluster: it also refuses, with ErrWrongCluster, a
// valid control plane identity of any other cluster. It returns the
// peer's SPIFFE ID.
func VerifyControlPlaneOf(certs []*x509.Certificate, bundle *x509bundle.Bundle, now time.Time, cluster string) (spiffeid.ID, error) {
	got, _, err := VerifyControlPlane(certs, bundle, now)
	if err != nil {
		return spiffeid.ID{}, err
	}
	id, err := ControlPlaneID(bundle.TrustDomain(), got)
	if err != nil {
		return spiffeid.ID{}, err
	}
	if got != cluster {
		return id, fmt.Errorf("%w: %s names cluster %q, want %q", ErrWrongCluster, id, got, cluster)
	}
	return id, nil
}
