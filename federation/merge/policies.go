package merge

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/policy"
)

// ErrBadPolicies is wrapped by every error of CheckPolicies.
var ErrBadPolicies = errors.New("producer policies refused")

// CheckPolicies checks the producer policies an export carries, as a
// peer sent them: every object decodes strictly and is valid
// (policy.DecodePolicies), each one is a producer object of the exported
// service (a route in the service's namespace whose parentRefs name it, a
// ResiliencePolicy there targeting it, a FaultInjection such a route
// uses: what policy.ProducerOf keeps, so a peer cannot route another
// service through this one's export), and Digest is the digest of Objects
// as policy.EncodePolicies computes it (a wrong digest would fake or hide
// a conflict). An export without policies passes. The error wraps
// ErrBadPolicies and names the service and what is wrong.
func CheckPolicies(e *catalog.Export) error {
	p := e.Policies
	if p == nil {
		return nil
	}
	key := e.Service.Key()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: service %s: %s", ErrBadPolicies, key, fmt.Sprintf(format, args...))
	}
	if len(p.Objects) == 0 {
		return bad("no objects (an export without policies carries none)")
	}
	if d := policiesDigest(p); d != p.Digest {
		return bad("digest %q, but the objects' digest is %q", p.Digest, d)
	}
	t, err := policy.DecodePolicies(p)
	if err != nil {
		return fmt.Errorf("%w: service %s: %w", ErrBadPolicies, key, err)
	}
	own := policy.ProducerOf(&t, key.Namespace, key.Name)
	for _, kind := range []struct {
		name      string
		have, own int
	}{
		{policy.KindHTTPRoute, len(t.HTTPRoutes), len(own.HTTPRoutes)},
		{policy.KindGRPCRoute, len(t.GRPCRoutes), len(own.GRPCRoutes)},
		{policy.KindResiliencePolicy, len(t.Resilience), len(own.Resilience)},
		{policy.KindFaultInjection, len(t.Faults), len(own.Faults)},
	} {
		if kind.have != kind.own {
			return bad("%d of %d %s objects are not producer policies of the service", kind.have-kind.own, kind.have, kind.name)
		}
	}
	return nil
}

// policiesDigest is the digest policy.EncodePolicies gives Objects: the
// first 16 bytes of SHA-256 over every object followed by a newline, in
// hex. It is computed over the bytes as sent, so that it does not depend
// on this version's JSON encoding of the objects.
func policiesDigest(p *catalog.Policies) string {
	h := sha256.New()
	for _, o := range p.Objects {
		h.Write(o)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
