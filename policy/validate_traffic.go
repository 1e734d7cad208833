package policy

import (
	"fmt"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
)

// ValidateObject checks a traffic object whose namespace is set. The
// error is a *catalog.ValidationError listing every wrong field.
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
	default:
		return fmt.Errorf("%T is not a traffic object", obj)
	}
	if why := catalog.IsDNS1123Subdomain(name); why != "" {
		fe.add("metadata.name", name, why)
	}
	if why := catalog.IsDNS1123Label(ns); why != "" {
		fe.add("metadata.namespace", ns, why)
	}
	return fe.err(object)
}
