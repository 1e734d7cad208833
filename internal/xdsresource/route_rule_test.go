package xdsresource

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"

	"github.com/fedmesh/fedmesh/internal/naming"
)

func TestRouteRules(t *testing.T) {
	sp := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	str := func(s string) *string { return &s }
	grpcUnavailable := uint32(14)
	full := &RouteRule{
		Name: "demo/r/rule-0", PathKind: PathPrefix, Path: "/api",
		Headers: []HeaderMatch{{Name: "x-user", Match: StringMatch{Kind: MatchExact, Value: "a"}}},
		Query:   []HeaderMatch{{Name: "q", Match: StringMatch{Kind: MatchRegex, Value: "a.*"}}},
		Method:  "GET",
		Clusters: []WeightedCluster{
			{Name: sp.OutboundCluster(), Weight: 90},
			{Name: sp.LocalCluster(), Weight: 10, RequestHeaders: HeaderModifier{Set: []Header{{"x-canary", "1"}}}},
		},
		Timeout: 3 * time.Second, MaxStreamDuration: true,
		Retry: &Retry{On: []string{"5xx", "retriable-status-codes"}, StatusCodes: []uint32{429}, NumRetries: 3,
			PerTryTimeout: time.Second, BaseInterval: 10 * time.Millisecond, MaxInterval: 100 * time.Millisecond},
		Fault: &Fault{
			Delay:   &FaultDelay{Fixed: time.Second, Percent: 12.5},
			Abort:   &FaultAbort{GRPCStatus: &grpcUnavailable, Percent: 50},
			Headers: []HeaderMatch{{Name: "x-chaos", Match: StringMatch{Kind: MatchExact, Value: "on"}}},
		},
		Mirrors:         []Mirror{{Cluster: sp.LocalCluster(), Percent: 25}},
		RequestHeaders:  HeaderModifier{Set: []Header{{"x-a", "1"}}, Add: []Header{{"x-b", "2"}}, Remove: []string{"x-c"}},
		ResponseHeaders: HeaderModifier{Add: []Header{{"x-d", "3"}}},
		Rewrite:         &Rewrite{Hostname: "inner", PrefixPath: str("/")},
		Hash:            []HashPolicy{{Header: "x-user"}, {Cookie: "c"}, {QueryParameter: "u"}, {SourceIP: true}},
	}
	redirect := &RouteRule{Name: "demo/r/rule-1", PathKind: PathExact, Path: "/old",
		Redirect: &Redirect{Scheme: "https", Hostname: "new", Port: 8443, FullPath: str("/new"), StatusCode: 301}}
	direct := &RouteRule{Name: "demo/r/rule-2", PathKind: PathRegex, Path: "/x/[0-9]+", DirectStatus: 500}
	single := &RouteRule{Name: "default", PathKind: PathPrefix, Path: "/", Clusters: []WeightedCluster{{Name: sp.OutboundCluster(), Weight: 1}},
		Timeout: 15 * time.Second, Retry: &Retry{On: []string{RetryOn}, NumRetries: 2}}

	for _, proxyless := range []bool{false, true} {
		vh := VirtualHostRoutes(sp, []*routev3.Route{RouteOf(full, proxyless), RouteOf(redirect, proxyless), RouteOf(direct, proxyless), RouteOf(single, proxyless)})
		if err := ValidateDeep(RouteConfiguration("8080", []*routev3.VirtualHost{vh})); err != nil {
			t.Fatalf("proxyless=%v: %v", proxyless, err)
		}
		r := vh.Routes[0]
		if proxyless {
			if got := r.GetMatch().GetSafeRegex().GetRegex(); got != "/api(/.*)?" {
				t.Errorf("proxyless prefix = %q, want a segment-wise regex", got)
			}
		} else if got := r.GetMatch().GetPathSeparatedPrefix(); got != "/api" {
			t.Errorf("path_separated_prefix = %q", got)
		}
	}
	r := RouteOf(full, false)
	a := r.GetRoute()
	if got := a.GetWeightedClusters().GetClusters(); len(got) != 2 || got[1].GetWeight().GetValue() != 10 || len(got[1].GetRequestHeadersToAdd()) != 1 {
		t.Errorf("weighted clusters = %v", got)
	}
	if a.GetMaxStreamDuration().GetMaxStreamDuration().AsDuration() != 3*time.Second || a.GetTimeout().AsDuration() != 3*time.Second {
		t.Errorf("timeouts = %v %v", a.GetTimeout(), a.GetMaxStreamDuration())
	}
	if got := a.GetRegexRewrite().GetPattern().GetRegex(); got != `^/api/*` {
		t.Errorf("prefix rewrite to / = %q", got)
	}
	if got := a.GetRequestMirrorPolicies()[0].GetRuntimeFraction().GetDefaultValue().GetNumerator(); got != 250000 {
		t.Errorf("mirror numerator = %d, want 250000 (of a million)", got)
	}
	var hf faultv3.HTTPFault
	if err := r.GetTypedPerFilterConfig()[wellknown.Fault].UnmarshalTo(&hf); err != nil {
		t.Fatal(err)
	}
	if hf.GetAbort().GetGrpcStatus() != 14 || hf.GetAbort().GetPercentage().GetNumerator() != 500000 || hf.GetDelay().GetPercentage().GetNumerator() != 125000 || len(hf.GetHeaders()) != 1 {
		t.Errorf("fault = %v", &hf)
	}
	if got := RouteOf(single, false).GetRoute().GetCluster(); got != sp.OutboundCluster() {
		t.Errorf("one backend renders as cluster, got %q", got)
	}
	if got := RouteOf(direct, false).GetDirectResponse().GetStatus(); got != 500 {
		t.Errorf("direct response = %d", got)
	}
	if got := RouteOf(redirect, false).GetRedirect(); got.GetResponseCode() != routev3.RedirectAction_MOVED_PERMANENTLY || got.GetPathRedirect() != "/new" || got.GetPortRedirect() != 8443 {
		t.Errorf("redirect = %v", got)
	}
}

func TestClusterPolicies(t *testing.T) {
	base := Cluster{Name: "c", ConnectTimeout: time.Second, PanicThreshold: 50,
		Outlier: &Outlier{Consecutive5xx: 5, ConsecutiveGatewayFailure: 2, Interval: time.Second, BaseEjectionTime: time.Second, MaxEjectionPercent: 100}}
	rh := base
	rh.LB, rh.RingHash, rh.IdleTimeout = clusterv3.Cluster_RING_HASH, &RingHash{MinimumRingSize: 64, MaximumRingSize: 4096}, time.Minute
	rr := base
	rr.LB = clusterv3.Cluster_ROUND_ROBIN
	for _, c := range []Cluster{rh, rr} {
		out := EDSCluster(c)
		if err := ValidateDeep(out); err != nil {
			t.Fatalf("%v: %v", c.LB, err)
		}
		if out.GetOutlierDetection().GetConsecutiveGatewayFailure().GetValue() != 2 {
			t.Errorf("gateway failure threshold = %v", out.GetOutlierDetection())
		}
	}
	out := EDSCluster(rh)
	if cfg := out.GetRingHashLbConfig(); cfg.GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH || cfg.GetMaximumRingSize().GetValue() != 4096 {
		t.Errorf("ring hash config = %v", cfg)
	}
	if _, ok := out.GetTypedExtensionProtocolOptions()[HTTPProtocolOptionsKey]; !ok {
		t.Error("idle timeout not in typed_extension_protocol_options")
	}
	if EDSCluster(rr).GetLbConfig() != nil || EDSCluster(rr).GetTypedExtensionProtocolOptions() != nil {
		t.Error("round robin cluster has an lb config or protocol options")
	}
}
