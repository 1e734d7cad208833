package config

import (
	"fmt"
	"slices"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// routeConfig is a route configuration as the Builder keeps it between
// builds (state.routes): translated when it arrives, so that the decoded
// route configuration of a thousand services' virtual hosts is not kept.
type routeConfig struct {
	name   string
	vhosts []*vhostState
}

// vhostState is one virtual host of a routeConfig. A host of the
// default shape (simpleRoute: one "/" route with a cluster, a timeout
// and a retry policy and nothing else; every service's own host is one)
// keeps only what applyRoutes reads of it, and its wire form, decoded
// again only in a build where its cluster is not the service's own. Any
// other host keeps the proto, compiled against the clusters at every
// build (compileVirtualHost).
type vhostState struct {
	name    string
	domains []string
	// fallback is the cluster of the first "/" route, whose service the
	// host belongs to when none of its domains names one (vhostService).
	fallback string

	// proto is the host as received when it is not of the default shape.
	proto *routev3.VirtualHost

	// The default shape: the route's cluster, timeout and retry policy
	// (retryErr when compileRetry refused it), and the host's wire form.
	cluster    string
	timeout    time.Duration
	hasTimeout bool
	retry      *RetryPolicy
	retryErr   error
	wire       []byte
}

// translateRoutes turns a received route configuration into the form
// the Builder keeps.
func translateRoutes(rc *routev3.RouteConfiguration) (*routeConfig, error) {
	out := &routeConfig{name: rc.GetName(), vhosts: make([]*vhostState, 0, len(rc.GetVirtualHosts()))}
	for _, vh := range rc.GetVirtualHosts() {
		v := &vhostState{name: vh.GetName(), domains: slices.Clone(vh.GetDomains()), fallback: fallbackCluster(vh)}
		cluster := ""
		if rs := vh.GetRoutes(); len(rs) == 1 {
			cluster = rs[0].GetRoute().GetCluster()
		}
		ra, ok := simpleRoute(vh, cluster)
		if !ok || cluster == "" {
			v.proto = vh
			out.vhosts = append(out.vhosts, v)
			continue
		}
		wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(vh)
		if err != nil {
			return nil, fmt.Errorf("virtual host %q: %w", vh.GetName(), err)
		}
		v.cluster, v.wire = cluster, wire
		if d := ra.GetTimeout(); d != nil {
			v.timeout, v.hasTimeout = d.AsDuration(), true
		}
		if rp := ra.GetRetryPolicy(); rp != nil {
			if _, err := compileRetry(rp); err != nil {
				v.retryErr = err
			} else {
				r := retryPolicy(rp)
				v.retry = &r
			}
		}
		out.vhosts = append(out.vhosts, v)
	}
	return out, nil
}

// fallbackCluster is the cluster of vh's first route that matches every
// path ("/" or no prefix) and names a cluster, or "".
func fallbackCluster(vh *routev3.VirtualHost) string {
	for _, r := range vh.GetRoutes() {
		if r.GetMatch().GetPrefix() != "/" && r.GetMatch().GetPrefix() != "" {
			continue
		}
		if c := r.GetRoute().GetCluster(); c != "" {
			return c
		}
	}
	return ""
}

// virtualHost returns the host as received: the kept proto, or the
// wire form decoded.
func (v *vhostState) virtualHost() (*routev3.VirtualHost, error) {
	if v.proto != nil {
		return v.proto, nil
	}
	vh := &routev3.VirtualHost{}
	if err := proto.Unmarshal(v.wire, vh); err != nil {
		return nil, fmt.Errorf("decode kept virtual host: %w", err)
	}
	return vh, nil
}
