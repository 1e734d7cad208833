package policy

import (
	"fmt"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
)

// ValidateObject checks a traffic object whose namespace is set: the
// Gateway API's own CRD validation (sizes, enums, patterns, CEL rules) for
// HTTPRoute and GRPCRoute, plus fedmesh's rules (parentRefs and
// backendRefs name a Service or ServiceImport; backendRefs have a port;
// the only ExtensionRef is a fedmesh.io FaultInjection; regular
// expressions are RE2), and the fields of ResiliencePolicy and
// FaultInjection. Unset optional fields mean the CRD's defaults. The
// error is a *catalog.ValidationError listing every wrong field with its
// path ("spec.rules[0].matches[1].path.value"), value and reason.
// References to other objects are checked by Traffic.Resolve.
func ValidateObject(obj any) error {
	var fe fieldErrors
	var name, ns, object string
	switch o := obj.(type) {
	case *gatewayv1.HTTPRoute:
		name, ns, object = o.Name, o.Namespace, KindHTTPRoute+" "+o.Namespace+"/"+o.Name
	case *gatewayv1.GRPCRoute:
		name, ns, object = o.Name, o.Namespace, KindGRPCRoute+" "+o.Namespace+"/"+o.Name
	case *ResiliencePolicy:
		name, ns, object = o.Name, o.Namespace, KindResiliencePolicy+" "+o.Key()
	case *FaultInjection:
		name, ns, object = o.Name, o.Namespace, KindFaultInjection+" "+o.Key()
	case *TelemetryPolicy:
		name, ns, object = o.Name, o.Namespace, KindTelemetryPolicy+" "+o.Key()
	case *RateLimitPolicy:
		name, ns, object = o.Name, o.Namespace, KindRateLimitPolicy+" "+o.Key()
	default:
		return fmt.Errorf("%T is not a traffic object", obj)
	}
	if why := catalog.IsDNS1123Subdomain(name); why != "" {
		fe.add("metadata.name", name, why)
	}
	if why := catalog.IsDNS1123Label(ns); why != "" {
		fe.add("metadata.namespace", ns, why)
	}
	switch o := obj.(type) {
	case *gatewayv1.HTTPRoute:
		validateHTTPRoute(&fe, o)
	case *gatewayv1.GRPCRoute:
		validateGRPCRoute(&fe, o)
	case *ResiliencePolicy:
		validateResilience(&fe, o)
	case *FaultInjection:
		validateFault(&fe, o)
	case *TelemetryPolicy:
		validateTelemetry(&fe, o)
	case *RateLimitPolicy:
		validateRateLimit(&fe, o)
	}
	return fe.err(object)
}
