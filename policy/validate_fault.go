package policy

import (
	"fmt"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func validateFault(fe *fieldErrors, f *FaultInjection) {
	if f.APIVersion != "" && f.APIVersion != APIVersion {
		fe.add("apiVersion", f.APIVersion, "must be "+APIVersion)
	}
	if f.Kind != "" && f.Kind != KindFaultInjection {
		fe.add("kind", f.Kind, "must be "+KindFaultInjection)
	}
	s := &f.Spec
	if s.Delay == nil && s.Abort == nil {
		fe.add("spec", "", "delay or abort (or both) must be set")
	}
	if d := s.Delay; d != nil {
		switch {
		case d.Fixed.Duration <= 0:
			fe.add("spec.delay.fixed", d.Fixed.Duration.String(), "must be positive")
		case d.Fixed.Duration > maxFixedDelay:
			fe.add("spec.delay.fixed", d.Fixed.Duration.String(), "at most "+maxFixedDelay.String())
		}
		percent(fe, "spec.delay.percentage", d.Percentage)
	}
	if a := s.Abort; a != nil {
		switch {
		case a.HTTPStatus == nil && a.GRPCStatus == nil:
			fe.add("spec.abort", "", "exactly one of httpStatus and grpcStatus must be set")
		case a.HTTPStatus != nil && a.GRPCStatus != nil:
			fe.add("spec.abort", "", "exactly one of httpStatus and grpcStatus must be set, not both")
		}
		if a.HTTPStatus != nil && (*a.HTTPStatus < 200 || *a.HTTPStatus > 599) {
			fe.add("spec.abort.httpStatus", fmt.Sprint(*a.HTTPStatus), "out of range 200-599")
		}
		if a.GRPCStatus != nil && (*a.GRPCStatus < 0 || *a.GRPCStatus > 16) {
			fe.add("spec.abort.grpcStatus", fmt.Sprint(*a.GRPCStatus), "out of range 0-16 (gRPC status codes)")
		}
		percent(fe, "spec.abort.percentage", a.Percentage)
	}
	if len(s.Headers) > MaxMatchConditions {
		fe.add("spec.headers", "", fmt.Sprintf("%d headers, at most %d", len(s.Headers), MaxMatchConditions))
		return
	}
	hs := make([]condition, len(s.Headers))
	for i, h := range s.Headers {
		typ := ptrOr(h.Type, gatewayv1.HeaderMatchExact)
		hs[i] = condition{name: string(h.Name), value: h.Value, typ: string(typ)}
	}
	c := routeChecker{fe: fe, ns: f.Namespace}
	c.conditions("spec.headers", hs, 4096, true)
}
