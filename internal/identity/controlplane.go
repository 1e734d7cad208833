package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Refusals of VerifyControlPlane beyond those of VerifyPeerCertificates.
var (
	// ErrNotControlPlane: the SVID is valid but not a control plane
	// identity (a workload's, for example).
	ErrNotControlPlane = errors.New("not a control plane identity")
	// ErrWrongCluster: the SVID is a control plane identity of another
	// cluster than the one expected.
	ErrWrongCluster = errors.New("control plane identity of another cluster")
	// ErrWrongIssuer: the control plane SVID was not signed by the CA of
	// the cluster it names, so another cluster's CA minted it.
	ErrWrongIssuer = errors.New("control plane certificate not issued by its own cluster's CA")
)

// CAClusterName returns the cluster a cluster CA certificate belongs to:
// its one Subject OrganizationalUnit, as `fedmesh ca issue-cluster`
// writes it.
func CAClusterName(ca *x509.Certificate) (string, error) {
	if ca == nil || !ca.IsCA {
		return "", errors.New("not a CA certificate")
	}
	if n := len(ca.Subject.OrganizationalUnit); n != 1 {
		return "", fmt.Errorf("CA %q names %d clusters in its organizational units, want 1", ca.Subject.CommonName, n)
	}
	return ca.Subject.OrganizationalUnit[0], nil
}

// VerifyControlPlane checks certs (leaf first, then intermediates, as a
// TLS peer presents them) as VerifyPeerCertificates does, and then that
// the leaf is the control plane SVID of cluster,
// spiffe://TD/fedmesh/cluster/CLUSTER, signed by that cluster's own CA:
// the presented intermediate that signed the leaf names cluster
// (CAClusterName). A CA of another cluster chains to the same root and
// could sign any ID; this last check keeps it from minting cluster's
// identity. Errors wrap ErrNotControlPlane, ErrWrongCluster,
// ErrWrongIssuer or a sentinel of VerifyPeerCertificates.
func VerifyControlPlane(certs []*x509.Certificate, bundle *x509bundle.Bundle, now time.Time, cluster string) (spiffeid.ID, error) {
	id, err := VerifyPeerCertificates(certs, bundle, now)
	if err != nil {
		return id, err
	}
	got, err := ParseControlPlaneID(id)
	if err != nil {
		return id, fmt.Errorf("%w: %s", ErrNotControlPlane, id)
	}
	if got != cluster {
		return id, fmt.Errorf("%w: %s names cluster %q, want %q", ErrWrongCluster, id, got, cluster)
	}
	leaf := certs[0]
	for _, c := range certs[1:] {
		if leaf.CheckSignatureFrom(c) != nil {
			continue
		}
		name, err := CAClusterName(c)
		if err != nil {
			return id, fmt.Errorf("%w: %s: issuer %q: %w", ErrWrongIssuer, id, c.Subject.CommonName, err)
		}
		if name != cluster {
			return id, fmt.Errorf("%w: %s was issued by the CA of cluster %q", ErrWrongIssuer, id, name)
		}
		return id, nil
	}
	return id, fmt.Errorf("%w: %s: no presented intermediate signed it (a root signs only cluster CAs)", ErrWrongIssuer, id)
}
