package xds

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/controlplane/clusterset"
	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/topology"
)

// Settings tunes the resources the builder generates. The zero value of a
// field means its default (DefaultSettings).
type Settings struct {
	// TrustDomain is the federation's SPIFFE trust domain; required.
	TrustDomain string
	// Policy orders remote localities (failover rules, label priority);
	// RTTs from the view are added per cluster.
	Policy topology.Policy
	// ConnectTimeout of every cluster; default 5s.
	ConnectTimeout time.Duration
	// RouteTimeout of every HTTP route; default 15s.
	RouteTimeout time.Duration
	// NumRetries of every HTTP route; default 2.
	NumRetries uint32
	// Consecutive5xx ejects an endpoint after this many 5xx or connect
	// failures in a row; default 5.
	Consecutive5xx uint32
	// OutlierInterval is the ejection sweep interval; default 10s.
	OutlierInterval time.Duration
	// BaseEjectionTime is the first ejection's length, growing with each
	// ejection; default 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionPercent of a cluster's hosts may be ejected; default 100,
	// so that a cluster whose local endpoints all fail spills to the next
	// priority.
	MaxEjectionPercent uint32
	// MaxConnections, MaxPendingRequests and MaxRequests are circuit
	// breaker limits per cluster; default 1024 each.
	MaxConnections     uint32
	MaxPendingRequests uint32
	MaxRequests        uint32
	// MaxRetries is the circuit breaker's limit on concurrent retries;
	// default 3.
	MaxRetries uint32
	// GatewayPort is the port of a gateway node's listener; default 15443.
	GatewayPort uint32
	// ClusterSetPrefix is the CIDR of the services' ClusterSetIPs
	// (package clusterset), added to the domains of their virtual hosts
	// so that sidecars match a request by destination address and answer
	// DNS with it; default clusterset.DefaultPrefix. It must be the same
	// in every cluster and the same as the Kubernetes sink's.
	ClusterSetPrefix netip.Prefix
	// QuotaShares gives each sidecar its share of each clusterset quota
	// (plan.RateLimitInput); nil: every sidecar gets
	// plan.DefaultQuotaShare. It is called while a node's snapshot is
	// built: a new split takes effect at the node's next build.
	QuotaShares plan.QuotaShares
}

// DefaultSettings returns the defaults documented on each field, with
// the given trust domain.
func DefaultSettings(trustDomain string) Settings {
	return Settings{
		TrustDomain:        trustDomain,
		ConnectTimeout:     5 * time.Second,
		RouteTimeout:       15 * time.Second,
		NumRetries:         2,
		Consecutive5xx:     5,
		OutlierInterval:    10 * time.Second,
		BaseEjectionTime:   30 * time.Second,
		MaxEjectionPercent: 100,
		MaxConnections:     1024,
		MaxPendingRequests: 1024,
		MaxRequests:        1024,
		MaxRetries:         3,
		GatewayPort:        15443,
		ClusterSetPrefix:   clusterset.DefaultPrefix,
	}
}

// withDefaults fills zero fields and checks the rest.
func (s Settings) withDefaults() (Settings, error) {
	d := DefaultSettings(s.TrustDomain)
	if s.TrustDomain == "" {
		return s, errors.New("settings: trust domain is empty")
	}
	if _, err := spiffeid.TrustDomainFromString(s.TrustDomain); err != nil {
		return s, fmt.Errorf("settings: trust domain %q: %w", s.TrustDomain, err)
	}
	if err := s.Policy.Validate(); err != nil {
		return s, fmt.Errorf("settings: %w", err)
	}
	fillDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fillU := func(v *uint32, def uint32) {
		if *v == 0 {
			*v = def
		}
	}
	fillDur(&s.ConnectTimeout, d.ConnectTimeout)
	fillDur(&s.RouteTimeout, d.RouteTimeout)
	fillDur(&s.OutlierInterval, d.OutlierInterval)
	fillDur(&s.BaseEjectionTime, d.BaseEjectionTime)
	fillU(&s.NumRetries, d.NumRetries)
	fillU(&s.Consecutive5xx, d.Consecutive5xx)
	fillU(&s.MaxEjectionPercent, d.MaxEjectionPercent)
	fillU(&s.MaxConnections, d.MaxConnections)
	fillU(&s.MaxPendingRequests, d.MaxPendingRequests)
	fillU(&s.MaxRequests, d.MaxRequests)
	fillU(&s.MaxRetries, d.MaxRetries)
	fillU(&s.GatewayPort, d.GatewayPort)
	if !s.ClusterSetPrefix.IsValid() {
		s.ClusterSetPrefix = d.ClusterSetPrefix
	}
	if err := clusterset.CheckPrefix(s.ClusterSetPrefix); err != nil {
		return s, fmt.Errorf("settings: %w", err)
	}
	switch {
	case s.ConnectTimeout < 0 || s.RouteTimeout < 0 || s.OutlierInterval < 0 || s.BaseEjectionTime < 0:
		return s, errors.New("settings: durations must not be negative")
	case s.MaxEjectionPercent > 100:
		return s, fmt.Errorf("settings: max ejection percent %d is above 100", s.MaxEjectionPercent)
	case s.GatewayPort > 65535:
		return s, fmt.Errorf("settings: gateway port %d is above 65535", s.GatewayPort)
	}
	return s, nil
}
