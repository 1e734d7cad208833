package identity

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// VerifyWorkloadOf checks what a TLS peer presented as a workload SVID
// issued by cluster's own CA: everything VerifyPeerCertificates checks,
// a workload ID (else ErrUnauthorized), and a chain of exactly leaf,
// cluster CA (one OrganizationalUnit, cluster), root (else
// ErrIssuerMismatch). A gateway probe uses it to know that the gateway
// it reached serves the cluster it meant, not any workload of the
// federation. It returns the SPIFFE ID.
func VerifyWorkloadOf(certs []*x509.Certificate, bundle *x509bundle.Bundle, now time.Time, cluster string) (spiffeid.ID, error) {
	id, chains, err := verifyChains(certs, bundle, now)
	if err != nil {
		return id, err
	}
	if !IsWorkload(id) {
		return id, fmt.Errorf("%w: %s is not a workload identity", ErrUnauthorized, id)
	}
	var issuers []string
	for _, chain := range chains {
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
			return id, nil
		}
	}
	return id, fmt.Errorf("%w: %s is signed by %v, not by the CA of cluster %q", ErrIssuerMismatch, id, issuers, cluster)
}
