package plan

import (
	"strings"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/policy"
)

// This file plans fault injection: a FaultInjection named by a route
// rule's ExtensionRef filter becomes the rule's Fault, which the
// renderer turns into envoy.filters.http.fault's per-route config.

// Fault delays and aborts a share of a route's requests.
type Fault struct {
	// Policy is the FaultInjection's namespace/name.
	Policy string      `json:"policy"`
	Delay  *FaultDelay `json:"delay,omitempty"`
	Abort  *FaultAbort `json:"abort,omitempty"`
	// Headers limit the fault to requests matching all of them.
	Headers []HeaderMatch `json:"headers,omitempty"`
}

// FaultDelay delays Percent percent of requests by Fixed.
type FaultDelay struct {
	Fixed   time.Duration `json:"fixed"`
	Percent float64       `json:"percent"`
}

// FaultAbort answers Percent percent of requests with HTTPStatus or
// GRPCStatus (one is set).
type FaultAbort struct {
	HTTPStatus uint32  `json:"httpStatus,omitempty"`
	GRPCStatus *uint32 `json:"grpcStatus,omitempty"`
	Percent    float64 `json:"percent"`
}

func faultOf(f *policy.FaultInjection) *Fault {
	out := &Fault{Policy: f.Key()}
	if d := f.Spec.Delay; d != nil {
		out.Delay = &FaultDelay{Fixed: d.Fixed.Duration, Percent: clampPercent(float64(d.Percentage))}
	}
	if a := f.Spec.Abort; a != nil {
		fa := &FaultAbort{Percent: clampPercent(float64(a.Percentage))}
		if a.HTTPStatus != nil {
			fa.HTTPStatus = uint32(*a.HTTPStatus)
		}
		if a.GRPCStatus != nil {
			v := uint32(*a.GRPCStatus)
			fa.GRPCStatus = &v
		}
		out.Abort = fa
	}
	for _, h := range f.Spec.Headers {
		exact := h.Type == nil || *h.Type == gatewayv1.HeaderMatchExact
		m, err := stringMatch(exact, string(ptrOr(h.Type, gatewayv1.HeaderMatchExact)), h.Value)
		if err != nil {
			// Validated objects carry good regexes; one that is not
			// matches nothing rather than everything.
			m = StringMatch{Kind: MatchExact, Value: "\x00invalid"}
		}
		out.Headers = append(out.Headers, HeaderMatch{Name: strings.ToLower(string(h.Name)), Match: m})
	}
	return out
}

func clampPercent(v float64) float64 { return min(100, max(0, v)) }
