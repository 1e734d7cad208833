package proxy

import "github.com/spiffe/go-spiffe/v2/spiffeid"

// mustTD parses a constant trust domain name.
func mustTD(s string) spiffeid.TrustDomain { return spiffeid.RequireTrustDomainFromString(s) }
