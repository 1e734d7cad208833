package xdsresource

import (
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// TestProxylessRetryOn: proxyless routes retry what grpc-go reads (gRPC
// status names): conditions a grpc-go client sees as UNAVAILABLE add
// "unavailable"; a policy with nothing grpc-go reads is left out;
// sidecars get the conditions unchanged.
func TestProxylessRetryOn(t *testing.T) {
	sp := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 50051}
	for _, tc := range []struct {
		on       []string
		codes    []uint32
		want     string // proxyless retry_on; "" no retry policy
		sidecars string
	}{
		{on: []string{"connect-failure", "refused-stream", "reset", "5xx"}, want: "connect-failure,refused-stream,reset,5xx,unavailable"},
		{on: []string{"connect-failure", "retriable-status-codes"}, codes: []uint32{503}, want: "connect-failure,retriable-status-codes,unavailable"},
		{on: []string{"retriable-status-codes"}, codes: []uint32{500, 409}, want: ""},
		{on: []string{"retriable-status-codes"}, codes: []uint32{429}, want: "retriable-status-codes,unavailable"},
		{on: []string{"gateway-error", "unavailable"}, want: "gateway-error,unavailable"},
		{on: []string{"internal", "cancelled"}, want: "internal,cancelled"},
		{on: []string{RetryOn}, want: RetryOn},
	} {
		r := &RouteRule{Name: "demo/r/rule-0", PathKind: PathPrefix, Path: "/", Clusters: []WeightedCluster{{Name: sp.OutboundCluster(), Weight: 1}},
			Retry: &Retry{On: tc.on, StatusCodes: tc.codes, NumRetries: 2}}
		got := RouteOf(r, true).GetRoute().GetRetryPolicy()
		switch {
		case tc.want == "" && got != nil:
			t.Errorf("%v %v: proxyless retry_on %q, want no retry policy", tc.on, tc.codes, got.GetRetryOn())
		case tc.want != "" && got.GetRetryOn() != tc.want:
			t.Errorf("%v %v: proxyless retry_on %q, want %q", tc.on, tc.codes, got.GetRetryOn(), tc.want)
		case tc.want != "" && got.GetNumRetries().GetValue() != 2:
			t.Errorf("%v: num_retries %v, want 2", tc.on, got.GetNumRetries())
		}
		if sc := RouteOf(r, false).GetRoute().GetRetryPolicy().GetRetryOn(); sc != strings.Join(tc.on, ",") {
			t.Errorf("%v: sidecar retry_on %q, want the conditions unchanged", tc.on, sc)
		}
	}
}

// TestProxylessFaultHeaders: grpc-go ignores HTTPFault.headers, so a
// proxyless fault with headers is a route matching them too, with the
// fault (no headers of its own), ahead of the route without the fault.
// Sidecars keep one route with the fault's headers.
func TestProxylessFaultHeaders(t *testing.T) {
	sp := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 50051}
	grpcAborted := uint32(10)
	r := &RouteRule{Name: "demo/r/rule-0", PathKind: PathPrefix, Path: "/",
		Headers:  []HeaderMatch{{Name: "x-user", Match: StringMatch{Kind: MatchExact, Value: "a"}}},
		Clusters: []WeightedCluster{{Name: sp.OutboundCluster(), Weight: 1}},
		Fault: &Fault{Abort: &FaultAbort{GRPCStatus: &grpcAborted, Percent: 100},
			Headers: []HeaderMatch{{Name: "x-chaos", Match: StringMatch{Kind: MatchExact, Value: "on"}}}},
	}
	if got := RoutesOf(r, false); len(got) != 1 || got[0].GetTypedPerFilterConfig()[wellknown.Fault] == nil {
		t.Fatalf("sidecar routes = %v, want one with the fault", got)
	}
	got := RoutesOf(r, true)
	if len(got) != 2 {
		t.Fatalf("proxyless routes = %d, want 2", len(got))
	}
	if err := ValidateDeep(RouteConfiguration("50051", []*routev3.VirtualHost{VirtualHostRoutes(sp, got)})); err != nil {
		t.Fatal(err)
	}
	faulted, plain := got[0], got[1]
	if h := faulted.GetMatch().GetHeaders(); len(h) != 2 || h[0].GetName() != "x-user" || h[1].GetName() != "x-chaos" {
		t.Errorf("faulted route headers = %v, want x-user and x-chaos", h)
	}
	var hf faultv3.HTTPFault
	if err := faulted.GetTypedPerFilterConfig()[wellknown.Fault].UnmarshalTo(&hf); err != nil {
		t.Fatal(err)
	}
	if len(hf.GetHeaders()) != 0 || hf.GetAbort().GetGrpcStatus() != 10 {
		t.Errorf("faulted route's fault = %v, want the abort without headers", &hf)
	}
	if h := plain.GetMatch().GetHeaders(); len(h) != 1 || h[0].GetName() != "x-user" {
		t.Errorf("plain route headers = %v, want x-user", h)
	}
	if plain.GetTypedPerFilterConfig() != nil {
		t.Errorf("plain route has a fault: %v", plain.GetTypedPerFilterConfig())
	}
	// r itself is unchanged.
	if len(r.Headers) != 1 || len(r.Fault.Headers) != 1 {
		t.Errorf("RoutesOf changed its rule: %+v", r)
	}
}
