package xdsresource

import (
	"time"

	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/durationpb"
)

// This file builds envoy.filters.http.fault: the empty filter every
// outbound HTTP connection manager and proxyless API listener carries
// (it does nothing by itself), and the per-route HTTPFault a route with
// a FaultInjection enables it with.

// Fault delays and aborts a share of a route's requests.
type Fault struct {
	Delay *FaultDelay
	Abort *FaultAbort
	// Headers limit the fault to requests matching all of them.
	Headers []HeaderMatch
}

// FaultDelay delays Percent percent of requests by Fixed.
type FaultDelay struct {
	Fixed   time.Duration
	Percent float64
}

// FaultAbort answers Percent percent of requests with HTTPStatus or,
// when GRPCStatus is set, that gRPC status.
type FaultAbort struct {
	HTTPStatus uint32
	GRPCStatus *uint32
	Percent    float64
}

// HTTPFault is the fault filter's config for f.
func HTTPFault(f *Fault) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	if d := f.Delay; d != nil {
		out.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d.Fixed)},
			Percentage:         FractionalPercent(d.Percent),
		}
	}
	if a := f.Abort; a != nil {
		fa := &faultv3.FaultAbort{Percentage: FractionalPercent(a.Percent)}
		if a.GRPCStatus != nil {
			fa.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: *a.GRPCStatus}
		} else {
			fa.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: a.HTTPStatus}
		}
		out.Abort = fa
	}
	for i := range f.Headers {
		out.Headers = append(out.Headers, headerMatcher(&f.Headers[i]))
	}
	return out
}

// faultFilter is the HTTP connection manager's fault filter: empty,
// enabled per route by typed_per_filter_config.
func faultFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       wellknown.Fault,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: Any(&faultv3.HTTPFault{})},
	}
}
