package policy

import (
	"bytes"
	"errors"
	"fmt"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// ParseObject decodes one YAML or JSON document holding a traffic object
// (HTTPRoute, GRPCRoute, ResiliencePolicy, FaultInjection,
// TelemetryPolicy or RateLimitPolicy), strictly:
// an unknown, repeated or mistyped field is an error naming it. A
// missing namespace is DefaultNamespace. The object is validated
// (ValidateObject); a validation error is a *catalog.ValidationError.
// It returns *gatewayv1.HTTPRoute, *gatewayv1.GRPCRoute,
// *ResiliencePolicy, *FaultInjection, *TelemetryPolicy or
// *RateLimitPolicy.
func ParseObject(doc []byte) (any, error) {
	if len(doc) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrParseTraffic, len(doc), MaxDocumentSize)
	}
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrParseTraffic, err)
	}
	j = bytes.TrimSpace(j)
	if len(j) == 0 || j[0] != '{' {
		return nil, fmt.Errorf("%w: the document is not an object", ErrParseTraffic)
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrParseTraffic, err)
	}
	var obj any
	switch {
	case tm.APIVersion == GatewayAPIVersion && tm.Kind == KindHTTPRoute:
		obj = new(gatewayv1.HTTPRoute)
	case tm.APIVersion == GatewayAPIVersion && tm.Kind == KindGRPCRoute:
		obj = new(gatewayv1.GRPCRoute)
	case tm.APIVersion == APIVersion && tm.Kind == KindResiliencePolicy:
		obj = new(ResiliencePolicy)
	case tm.APIVersion == APIVersion && tm.Kind == KindFaultInjection:
		obj = new(FaultInjection)
	case tm.APIVersion == APIVersion && tm.Kind == KindTelemetryPolicy:
		obj = new(TelemetryPolicy)
	case tm.APIVersion == APIVersion && tm.Kind == KindRateLimitPolicy:
		obj = new(RateLimitPolicy)
	default:
		return nil, fmt.Errorf("%w: apiVersion %q and kind %q: %w", ErrParseTraffic, tm.APIVersion, tm.Kind, ErrUnknownKind)
	}
	strict, err := sigsjson.UnmarshalStrict(j, obj)
	if err == nil && len(strict) > 0 {
		err = errors.Join(strict...)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrParseTraffic, tm.Kind, err)
	}
	defaultNamespace(obj)
	if err := ValidateObject(obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// ErrParseTraffic is wrapped by every error of ParseObject that is not a
// validation error.
var ErrParseTraffic = errors.New("cannot parse traffic object")

// ErrUnknownKind is wrapped when a document is of a kind ParseObject does
// not read.
var ErrUnknownKind = errors.New("not a traffic kind (HTTPRoute, GRPCRoute, ResiliencePolicy, FaultInjection, TelemetryPolicy, RateLimitPolicy)")

func defaultNamespace(obj any) {
	switch o := obj.(type) {
	case *gatewayv1.HTTPRoute:
		if o.Namespace == "" {
			o.Namespace = DefaultNamespace
		}
	case *gatewayv1.GRPCRoute:
		if o.Namespace == "" {
			o.Namespace = DefaultNamespace
		}
	case *ResiliencePolicy:
		if o.Namespace == "" {
			o.Namespace = DefaultNamespace
		}
	case *FaultInjection:
		if o.Namespace == "" {
			o.Namespace = DefaultNamespace
		}
	case *TelemetryPolicy:
		if o.Namespace == "" {
			o.Namespace = DefaultNamespace
		}
	case *RateLimitPolicy:
		if o.Namespace == "" {
			o.Namespace = DefaultNamespace
		}
	}
}
