package xdsresource

import (
	"strconv"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// Route is what one HTTP service port's virtual host does.
type Route struct {
	// Timeout of a whole request, retries included.
	Timeout time.Duration
	// Retries, when above zero, retries a failed request on another host
	// that many times.
	Retries uint32
	// ExtraDomains are matched beside the service's own names.
	ExtraDomains []string
}

// RetryOn are the conditions retried.
const RetryOn = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,5xx"

// VirtualHost is the virtual host of service port sp: its domains are the
// clusterset host and NAME.NS, each with and without the port, and one
// route sends every path to sp's outbound cluster.
func VirtualHost(sp naming.ServicePort, r Route) *routev3.VirtualHost {
	host, short := sp.Host(), sp.Name+"."+sp.Namespace
	port := strconv.Itoa(int(sp.Port))
	action := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: sp.OutboundCluster()},
		Timeout:          durationpb.New(r.Timeout),
	}
	if r.Retries > 0 {
		action.RetryPolicy = &routev3.RetryPolicy{
			RetryOn:    RetryOn,
			NumRetries: wrapperspb.UInt32(r.Retries),
			RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
				Name: "envoy.retry_host_predicates.previous_hosts",
				ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{
					TypedConfig: Any(&previoushostsv3.PreviousHostsPredicate{}),
				},
			}},
			HostSelectionRetryMaxAttempts: 3,
		}
	}
	domains := append([]string{host, host + ":" + port, short, short + ":" + port}, r.ExtraDomains...)
	return &routev3.VirtualHost{
		Name:    host + ":" + port,
		Domains: domains,
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: action},
		}},
	}
}

// RouteConfiguration is RDS resource name (a port number) holding vhosts.
func RouteConfiguration(name string, vhosts []*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts}
}
