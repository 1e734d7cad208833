package identity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ErrBadID is wrapped by every error about a malformed or unexpected SPIFFE ID.
var ErrBadID = errors.New("bad SPIFFE ID")

// controlPlanePrefix starts spiffe://TD/fedmesh/cluster/CLUSTER, the path
// of a control plane identity (a workload's starts /ns/).
const controlPlanePrefix = "/fedmesh/cluster/"

// WorkloadID returns spiffe://TD/ns/NS/sa/SA. The namespace must be a
// DNS-1123 label and the service account a DNS-1123 subdomain, as in
// Kubernetes.
func WorkloadID(td spiffeid.TrustDomain, ns, sa string) (spiffeid.ID, error) {
	if td.IsZero() {
		return spiffeid.ID{}, fmt.Errorf("%w: empty trust domain", ErrBadID)
	}
	if err := checkLabel("namespace", ns); err != nil {
		return spiffeid.ID{}, err
	}
	if err := checkSubdomain("service account", sa); err != nil {
		return spiffeid.ID{}, err
	}
	id, err := spiffeid.FromSegments(td, "ns", ns, "sa", sa)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: %w", ErrBadID, err)
	}
	return id, nil
}

// ParseWorkloadID reads the namespace and service account out of an ID
// built by WorkloadID. Any other path, including a control plane ID, is an
// error wrapping ErrBadID. The trust domain is not checked here: VerifyPeer
// does that against the bundle.
func ParseWorkloadID(id spiffeid.ID) (ns, sa string, err error) {
	if id.IsZero() {
		return "", "", fmt.Errorf("%w: empty ID", ErrBadID)
	}
	parts := strings.Split(id.Path(), "/")
	// "", "ns", NS, "sa", SA
	if len(parts) != 5 || parts[0] != "" || parts[1] != "ns" || parts[3] != "sa" {
		return "", "", fmt.Errorf("%w: %q is not spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT", ErrBadID, id.String())
	}
	if err := checkLabel("namespace", parts[2]); err != nil {
		return "", "", err
	}
	if err := checkSubdomain("service account", parts[4]); err != nil {
		return "", "", err
	}
	return parts[2], parts[4], nil
}

// ControlPlaneID returns spiffe://TD/fedmesh/cluster/CLUSTER, the identity
// of a cluster's control plane. It cannot collide with a workload ID, whose
// path starts with /ns/. The cluster name must be a DNS-1123 label.
func ControlPlaneID(td spiffeid.TrustDomain, cluster string) (spiffeid.ID, error) {
	if td.IsZero() {
		return spiffeid.ID{}, fmt.Errorf("%w: empty trust domain", ErrBadID)
	}
	if err := checkLabel("cluster", cluster); err != nil {
		return spiffeid.ID{}, err
	}
	id, err := spiffeid.FromSegments(td, "fedmesh", "cluster", cluster)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: %w", ErrBadID, err)
	}
	return id, nil
}

// ParseControlPlaneID returns the cluster name of an ID built by
// ControlPlaneID, or an error wrapping ErrBadID.
func ParseControlPlaneID(id spiffeid.ID) (cluster string, err error) {
	rest, ok := strings.CutPrefix(id.Path(), controlPlanePrefix)
	if !ok || id.IsZero() {
		return "", fmt.Errorf("%w: %q is not spiffe://TRUST-DOMAIN/fedmesh/cluster/CLUSTER", ErrBadID, id.String())
	}
	if err := checkLabel("cluster", rest); err != nil {
		return "", err
	}
	return rest, nil
}

// IsControlPlane reports whether id is a control plane identity.
func IsControlPlane(id spiffeid.ID) bool {
	_, err := ParseControlPlaneID(id)
	return err == nil
}

// IsWorkload reports whether id is a workload identity.
func IsWorkload(id spiffeid.ID) bool {
	_, _, err := ParseWorkloadID(id)
	return err == nil
}

// checkLabel accepts a DNS-1123 label (apimachinery's
// validation.IsDNS1123Label): 1-63 of [a-z0-9-], not starting or ending
// with '-'.
func checkLabel(what, s string) error {
	switch {
	case len(validation.IsDNS1123Label(s)) == 0:
		return nil
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrBadID, what)
	case len(s) > validation.DNS1123LabelMaxLength:
		return fmt.Errorf("%w: %s %q is longer than %d characters", ErrBadID, what, s, validation.DNS1123LabelMaxLength)
	}
	return fmt.Errorf("%w: %s %q is not a DNS-1123 label (lower case letters, digits, inner '-')", ErrBadID, what, s)
}

// checkSubdomain accepts a DNS-1123 subdomain (apimachinery's
// validation.IsDNS1123Subdomain): labels joined by '.', at most 253
// characters.
func checkSubdomain(what, s string) error {
	switch {
	case len(validation.IsDNS1123Subdomain(s)) == 0:
		return nil
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrBadID, what)
	case len(s) > validation.DNS1123SubdomainMaxLength:
		return fmt.Errorf("%w: %s is longer than %d characters", ErrBadID, what, validation.DNS1123SubdomainMaxLength)
	}
	return fmt.Errorf("%w: %s %q is not a DNS-1123 subdomain", ErrBadID, what, s)
}
