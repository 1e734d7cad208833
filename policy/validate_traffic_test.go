package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
)

// goodHTTPRoute uses every feature fedmesh supports; the tests break
// one thing at a time.
const goodHTTPRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: demo}
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api}
      headers: [{name: x-a, value: "1"}]
      queryParams: [{name: q, value: v}]
      method: GET
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-s, value: s}], add: [{name: x-add, value: a}], remove: [x-r]}
    - type: URLRewrite
      urlRewrite: {hostname: echo.demo, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    - type: RequestMirror
      requestMirror: {backendRef: {group: "", kind: Service, name: mirror, port: 8080}, percent: 10}
    - type: ExtensionRef
      extensionRef: {group: fedmesh.io, kind: FaultInjection, name: f}
    backendRefs:
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 8080, weight: 90}
    - name: echo-v2
      port: 8080
      weight: 10
      filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-v, value: "2"}]}}]
    timeouts: {request: 10s, backendRequest: 2s}
    retry: {attempts: 2, codes: [503], backoff: 100ms}
  - matches: [{path: {type: Exact, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: new.example, port: 443, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /new}}
  - matches: [{path: {type: RegularExpression, value: "^/v[0-9]+/.*"}, headers: [{type: RegularExpression, name: x-user, value: "^a.*"}]}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 8080}]
`

const goodGRPCRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: demo}
spec:
  parentRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: greeter}]
  rules:
  - matches:
    - method: {service: helloworld.Greeter, method: SayHello}
      headers: [{name: x-a, value: "1"}]
    - method: {type: RegularExpression, service: "helloworld\\..*"}
    filters:
    - type: ExtensionRef
      extensionRef: {group: fedmesh.io, kind: FaultInjection, name: f}
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-s, value: s}]}
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: greeter, port: 50051}]
`

const goodResilience = `apiVersion: fedmesh.io/v1alpha1
kind: ResiliencePolicy
metadata: {name: p, namespace: demo}
spec:
  targetRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo}, {kind: Service, name: other}]
  retry:
    attempts: 3
    retryOn: [5xx, reset, unavailable]
    statusCodes: [429, 503]
    perTryTimeout: 2s
    backoff: {baseInterval: 25ms, maxInterval: 250ms}
  timeouts: {request: 15s, idle: 5m, connect: 1s}
  connectionLimits: {maxConnections: 0, maxPendingRequests: 10, maxRequests: 10, maxRetries: 3}
  outlierDetection: {consecutive5xx: 5, consecutiveGatewayErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}
  loadBalancer:
    algorithm: RingHash
    ringHash: {minimumRingSize: 1024, maximumRingSize: 8388608}
    hashKey: {header: x-user}
  failover:
    regions: [us-east, us-west]
    failoverPriority: [topology.kubernetes.io/region, zone]
`

const goodFault = `apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
metadata: {name: f, namespace: demo}
spec:
  delay: {fixed: 200ms, percentage: 12.5}
  abort: {httpStatus: 503, percentage: 0.0001}
  headers: [{name: x-chaos, value: "on"}, {type: RegularExpression, name: x-user, value: "^test-"}]
`

// fieldWant is one field error a test expects: the field's path and a
// part of the reason.
type fieldWant struct{ field, reason string }

func (w fieldWant) String() string { return w.field + ": " + w.reason }

// checkFields checks that err is a *catalog.ValidationError naming
// object with exactly the wanted fields, in order, each with its reason.
func checkFields(t *testing.T, object string, err error, want []fieldWant) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var ve *catalog.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *catalog.ValidationError", err, err)
	}
	if !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("error does not wrap catalog.ErrInvalid")
	}
	if ve.Object != object {
		t.Errorf("object %q, want %q", ve.Object, object)
	}
	got := make([]fieldWant, len(ve.Fields))
	for i, f := range ve.Fields {
		got[i] = fieldWant{f.Field, f.Reason}
		if i < len(want) && strings.Contains(f.Reason, want[i].reason) {
			got[i].reason = want[i].reason
		}
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(fieldWant{})); diff != "" {
		t.Errorf("field errors (-want +got):\n%s\nerror: %v", diff, err)
	}
}

func mustParse[T any](t *testing.T, doc string) *T {
	t.Helper()
	obj, err := ParseObject([]byte(doc))
	if err != nil {
		t.Fatalf("the good document does not parse: %v", err)
	}
	o, ok := obj.(*T)
	if !ok {
		t.Fatalf("parsed %T", obj)
	}
	return o
}

func ptr[T any](v T) *T { return &v }

func TestGoodObjectsValidate(t *testing.T) {
	for _, doc := range []string{goodHTTPRoute, goodGRPCRoute, goodResilience, goodFault} {
		obj, err := ParseObject([]byte(doc))
		if err != nil {
			t.Fatalf("%v", err)
		}
		if err := ValidateObject(obj); err != nil {
			t.Errorf("ValidateObject of a parsed object: %v", err)
		}
	}
}

func TestValidateHTTPRoute(t *testing.T) {
	svcRef := func(name string) gatewayv1.ParentReference {
		return gatewayv1.ParentReference{Group: ptr(gatewayv1.Group("")), Kind: ptr(gatewayv1.Kind("Service")), Name: gatewayv1.ObjectName(name)}
	}
	match := func(path string) gatewayv1.HTTPRouteMatch {
		return gatewayv1.HTTPRouteMatch{Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr(path)}}
	}
	backend := func(name string, port int32) gatewayv1.HTTPBackendRef {
		return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr(port)}}}
	}
	tests := []struct {
		name string
		mod  func(r *gatewayv1.HTTPRoute)
		want []fieldWant
	}{
		{"good", func(r *gatewayv1.HTTPRoute) {}, nil},
		{"wrong apiVersion and kind", func(r *gatewayv1.HTTPRoute) { r.APIVersion, r.Kind = "v1", "Route" },
			[]fieldWant{{"apiVersion", "must be gateway.networking.k8s.io/v1"}, {"kind", "must be HTTPRoute"}}},
		{"bad name and namespace", func(r *gatewayv1.HTTPRoute) { r.Name, r.Namespace = "R_1", "Demo" },
			[]fieldWant{{"metadata.name", "DNS-1123"}, {"metadata.namespace", "DNS-1123"}}},
		{"no parentRefs", func(r *gatewayv1.HTTPRoute) { r.Spec.ParentRefs = nil },
			[]fieldWant{{"spec.parentRefs", "at least one"}}},
		{"too many parentRefs", func(r *gatewayv1.HTTPRoute) {
			r.Spec.ParentRefs = nil
			for i := range 33 {
				r.Spec.ParentRefs = append(r.Spec.ParentRefs, svcRef(fmt.Sprintf("s%d", i)))
			}
		}, []fieldWant{{"spec.parentRefs", "33 parentRefs, at most 32"}}},
		{"parentRef with the Gateway defaults", func(r *gatewayv1.HTTPRoute) { r.Spec.ParentRefs[0].Group, r.Spec.ParentRefs[0].Kind = nil, nil },
			[]fieldWant{{"spec.parentRefs[0]", "group and kind must be set"}}},
		{"parentRef to a Gateway", func(r *gatewayv1.HTTPRoute) {
			r.Spec.ParentRefs[0].Group, r.Spec.ParentRefs[0].Kind = ptr(gatewayv1.Group(GatewayGroup)), ptr(gatewayv1.Kind("Gateway"))
		}, []fieldWant{{"spec.parentRefs[0].kind", "fedmesh has no Gateways"}}},
		{"parentRef Service without the core group", func(r *gatewayv1.HTTPRoute) { r.Spec.ParentRefs[0].Group = nil },
			[]fieldWant{{"spec.parentRefs[0].group", `must be "" (the core group) for kind Service`}}},
		{"parentRef ServiceImport in the core group", func(r *gatewayv1.HTTPRoute) { r.Spec.ParentRefs[0].Kind = ptr(gatewayv1.Kind(KindServiceImport)) },
			[]fieldWant{{"spec.parentRefs[0].group", "must be multicluster.x-k8s.io for kind ServiceImport"}}},
		{"parentRef of another kind", func(r *gatewayv1.HTTPRoute) { r.Spec.ParentRefs[0].Kind = ptr(gatewayv1.Kind("Deployment")) },
			[]fieldWant{{"spec.parentRefs[0].kind", "must be Service"}}},
		{"parentRef name, namespace, sectionName and port", func(r *gatewayv1.HTTPRoute) {
			p := &r.Spec.ParentRefs[0]
			p.Name, p.Namespace, p.SectionName, p.Port = "9echo", ptr(gatewayv1.Namespace("a_b")), ptr(gatewayv1.SectionName("HTTP")), ptr(int32(0))
		}, []fieldWant{{"spec.parentRefs[0].name", "DNS-1035"}, {"spec.parentRefs[0].namespace", "DNS-1123"}, {"spec.parentRefs[0].sectionName", "DNS-1123"}, {"spec.parentRefs[0].port", "out of range 1-65535"}}},
		{"the same parent twice", func(r *gatewayv1.HTTPRoute) { r.Spec.ParentRefs = append(r.Spec.ParentRefs, svcRef("echo")) },
			[]fieldWant{{"spec.parentRefs[1]", "the same parent as parentRefs[0]"}}},
		{"the same parent on two ports", func(r *gatewayv1.HTTPRoute) {
			a, b := svcRef("echo"), svcRef("echo")
			a.Port, b.Port = ptr(int32(80)), ptr(int32(81))
			r.Spec.ParentRefs = []gatewayv1.ParentReference{a, b}
		}, nil},
		{"consumer route: parent in another namespace", func(r *gatewayv1.HTTPRoute) { r.Spec.ParentRefs[0].Namespace = ptr(gatewayv1.Namespace("shop")) }, nil},
		{"useDefaultGateways All", func(r *gatewayv1.HTTPRoute) { r.Spec.UseDefaultGateways = gatewayv1.GatewayDefaultScopeAll },
			[]fieldWant{{"spec.useDefaultGateways", "fedmesh has no Gateways"}}},
		{"hostnames", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Hostnames = []gatewayv1.Hostname{"echo.demo", "*.demo", "Echo", "a.*"}
		},
			[]fieldWant{{"spec.hostnames[2]", "lower-case DNS name"}, {"spec.hostnames[3]", "lower-case DNS name"}}},
		{"no rules", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules = nil }, []fieldWant{{"spec.rules", "at least one"}}},
		{"17 rules", func(r *gatewayv1.HTTPRoute) {
			for len(r.Spec.Rules) < 17 {
				r.Spec.Rules = append(r.Spec.Rules, r.Spec.Rules[2])
			}
		}, []fieldWant{{"spec.rules", "17 rules, at most 16"}}},
		{"65 matches in a rule", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[2].Matches = nil
			for i := range 65 {
				r.Spec.Rules[2].Matches = append(r.Spec.Rules[2].Matches, match(fmt.Sprintf("/p%d", i)))
			}
		}, []fieldWant{{"spec.rules[2].matches", "65 matches, at most 64"}}},
		{"129 matches in a route", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules = r.Spec.Rules[2:]
			for i := range 43 {
				r.Spec.Rules[0].Matches = append(r.Spec.Rules[0].Matches, match(fmt.Sprintf("/p%d", i)))
			}
			r.Spec.Rules = append(r.Spec.Rules, r.Spec.Rules[0], r.Spec.Rules[0])
		}, []fieldWant{{"spec.rules", "132 matches in all rules, at most 128"}}},
		{"rule names", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Name, r.Spec.Rules[1].Name, r.Spec.Rules[2].Name = ptr(gatewayv1.SectionName("a")), ptr(gatewayv1.SectionName("a")), ptr(gatewayv1.SectionName("B"))
		}, []fieldWant{{"spec.rules[1].name", "unique within the route: rule 0"}, {"spec.rules[2].name", "DNS-1123"}}},
		{"relative exact path", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[1].Matches[0].Path.Value = ptr("old") },
			[]fieldWant{{"spec.rules[1].matches[0].path.value", `starting with "/"`}}},
		{"path with //", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[0].Matches[0].Path.Value = ptr("/a//b") },
			[]fieldWant{{"spec.rules[0].matches[0].path.value", `"//"`}}},
		{"path with ..", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[1].Matches[0].Path.Value = ptr("/a/..") },
			[]fieldWant{{"spec.rules[1].matches[0].path.value", `".." segment`}}},
		{"path with .", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[1].Matches[0].Path.Value = ptr("/a/./b") },
			[]fieldWant{{"spec.rules[1].matches[0].path.value", `"." segment`}}},
		{"path with %2f", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[1].Matches[0].Path.Value = ptr("/a%2fb") },
			[]fieldWant{{"spec.rules[1].matches[0].path.value", "encoded"}}},
		{"path with a query", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[1].Matches[0].Path.Value = ptr("/a?b=1") },
			[]fieldWant{{"spec.rules[1].matches[0].path.value", `"?" or "#"`}}},
		{"path with a space", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[1].Matches[0].Path.Value = ptr("/a b") },
			[]fieldWant{{"spec.rules[1].matches[0].path.value", "not allowed in a path"}}},
		{"path too long", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[1].Matches[0].Path.Value = ptr("/" + strings.Repeat("a", 1024))
		},
			[]fieldWant{{"spec.rules[1].matches[0].path.value", "longer than 1024"}}},
		{"path type", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[1].Matches[0].Path.Type = ptr(gatewayv1.PathMatchType("Prefix"))
		},
			[]fieldWant{{"spec.rules[1].matches[0].path.type", "must be Exact, PathPrefix or RegularExpression"}}},
		{"path default type and value", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[1].Matches[0].Path = &gatewayv1.HTTPPathMatch{} }, nil},
		{"path regex does not compile", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[2].Matches[0].Path.Value = ptr("^/(a") },
			[]fieldWant{{"spec.rules[2].matches[0].path.value", "not an RE2 regular expression"}}},
		{"path regex beyond RE2", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[2].Matches[0].Path.Value = ptr(`^/(?=a)`) },
			[]fieldWant{{"spec.rules[2].matches[0].path.value", "not an RE2 regular expression"}}},
		{"empty path regex", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[2].Matches[0].Path.Value = ptr("") },
			[]fieldWant{{"spec.rules[2].matches[0].path.value", "must not be empty"}}},
		{"header match name, value, type", func(r *gatewayv1.HTTPRoute) {
			m := &r.Spec.Rules[0].Matches[0]
			m.Headers = []gatewayv1.HTTPHeaderMatch{
				{Name: "x a", Value: "1"},
				{Name: "x-b", Value: ""},
				{Name: "X-B", Value: "2"},
				{Type: ptr(gatewayv1.HeaderMatchType("Prefix")), Name: "x-c", Value: "3"},
				{Type: ptr(gatewayv1.HeaderMatchRegularExpression), Name: "x-d", Value: "[a"},
				{Name: "x-e", Value: strings.Repeat("v", 4097)},
			}
		}, []fieldWant{
			{"spec.rules[0].matches[0].headers[0].name", "header name token"},
			{"spec.rules[0].matches[0].headers[1].value", "must not be empty"},
			{"spec.rules[0].matches[0].headers[2].name", "matched already by entry 1"},
			{"spec.rules[0].matches[0].headers[3].type", "must be Exact or RegularExpression"},
			{"spec.rules[0].matches[0].headers[4].value", "not an RE2"},
			{"spec.rules[0].matches[0].headers[5].value", "longer than 4096"},
		}},
		{"17 header matches", func(r *gatewayv1.HTTPRoute) {
			m := &r.Spec.Rules[0].Matches[0]
			for i := range 16 {
				m.Headers = append(m.Headers, gatewayv1.HTTPHeaderMatch{Name: gatewayv1.HTTPHeaderName(fmt.Sprintf("x-%d", i)), Value: "v"})
			}
		}, []fieldWant{{"spec.rules[0].matches[0].headers", "17 headers, at most 16"}}},
		{"query param matches", func(r *gatewayv1.HTTPRoute) {
			m := &r.Spec.Rules[0].Matches[0]
			m.QueryParams = []gatewayv1.HTTPQueryParamMatch{
				{Name: "q", Value: "v"},
				{Name: "Q", Value: "v"}, // query names are case-sensitive
				{Name: "q", Value: "w"},
				{Type: ptr(gatewayv1.QueryParamMatchRegularExpression), Name: "r", Value: "*"},
				{Name: "long", Value: strings.Repeat("v", 1025)},
			}
		}, []fieldWant{
			{"spec.rules[0].matches[0].queryParams[2].name", "matched already by entry 0"},
			{"spec.rules[0].matches[0].queryParams[3].value", "not an RE2"},
			{"spec.rules[0].matches[0].queryParams[4].value", "longer than 1024"},
		}},
		{"method", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[0].Matches[0].Method = ptr(gatewayv1.HTTPMethod("get")) },
			[]fieldWant{{"spec.rules[0].matches[0].method", "must be GET, HEAD"}}},
		{"filter type missing", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[0].Filters[0].Type = "" },
			[]fieldWant{{"spec.rules[0].filters[0].type", "required"}, {"spec.rules[0].filters[0].requestHeaderModifier", "must not be set for a filter of type "}}},
		{"filter type unknown", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Filters = append(r.Spec.Rules[0].Filters, gatewayv1.HTTPRouteFilter{Type: "RateLimit"})
		}, []fieldWant{{"spec.rules[0].filters[4].type", "must be RequestHeaderModifier, ResponseHeaderModifier, URLRewrite"}}},
		{"CORS filter", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Filters = append(r.Spec.Rules[0].Filters, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterCORS, CORS: &gatewayv1.HTTPCORSFilter{}})
		}, []fieldWant{{"spec.rules[0].filters[4].cors", "not supported by fedmesh"}, {"spec.rules[0].filters[4].type", "not supported by fedmesh"}}},
		{"filter field missing", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[0].Filters[0].RequestHeaderModifier = nil },
			[]fieldWant{{"spec.rules[0].filters[0].requestHeaderModifier", "required for a filter of type RequestHeaderModifier"}}},
		{"filter field of another type", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Filters[1].RequestHeaderModifier = r.Spec.Rules[0].Filters[0].RequestHeaderModifier
		}, []fieldWant{{"spec.rules[0].filters[1].requestHeaderModifier", "must not be set for a filter of type URLRewrite"}}},
		{"repeated header modifier", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Filters = append(r.Spec.Rules[0].Filters, r.Spec.Rules[0].Filters[0])
		}, []fieldWant{{"spec.rules[0].filters", "may appear once"}}},
		{"redirect with a rewrite", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[1].Filters = append(r.Spec.Rules[1].Filters, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: &gatewayv1.HTTPURLRewriteFilter{Hostname: ptr(gatewayv1.PreciseHostname("a"))}})
		}, []fieldWant{{"spec.rules[1].filters", "RequestRedirect and URLRewrite must not be used together"}}},
		{"redirect with backendRefs", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[1].BackendRefs = r.Spec.Rules[2].BackendRefs },
			[]fieldWant{{"spec.rules[1].filters[0]", "must not be used together with backendRefs"}}},
		{"replacePrefixMatch without one PathPrefix match", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Matches = append(r.Spec.Rules[0].Matches, match("/b"))
		}, []fieldWant{{"spec.rules[0].filters[1]", "exactly one match, of path type PathPrefix"}}},
		{"header modifier entries", func(r *gatewayv1.HTTPRoute) {
			h := r.Spec.Rules[0].Filters[0].RequestHeaderModifier
			h.Set = append(h.Set, gatewayv1.HTTPHeader{Name: "host", Value: "x"}, gatewayv1.HTTPHeader{Name: "x-e", Value: ""}, gatewayv1.HTTPHeader{Name: "x-n", Value: "a\nb"})
			h.Add = append(h.Add, gatewayv1.HTTPHeader{Name: "X-S", Value: "again"})
			h.Remove = append(h.Remove, "X-R", "bad name")
		}, []fieldWant{
			{"spec.rules[0].filters[0].requestHeaderModifier.set[1].name", "Host header"},
			{"spec.rules[0].filters[0].requestHeaderModifier.set[2].value", "must not be empty"},
			{"spec.rules[0].filters[0].requestHeaderModifier.set[3].value", "CR, LF or NUL"},
			{"spec.rules[0].filters[0].requestHeaderModifier.add[1].name", "already named in set[0]"},
			{"spec.rules[0].filters[0].requestHeaderModifier.remove[1]", "listed twice"},
			{"spec.rules[0].filters[0].requestHeaderModifier.remove[2]", "header name token"},
		}},
		{"empty header modifier", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Filters[0].RequestHeaderModifier = &gatewayv1.HTTPHeaderFilter{}
		}, []fieldWant{{"spec.rules[0].filters[0].requestHeaderModifier", "set, add or remove must be given"}}},
		{"17 headers set", func(r *gatewayv1.HTTPRoute) {
			h := r.Spec.Rules[0].Filters[0].RequestHeaderModifier
			for i := range 16 {
				h.Set = append(h.Set, gatewayv1.HTTPHeader{Name: gatewayv1.HTTPHeaderName(fmt.Sprintf("x-%d", i)), Value: "v"})
			}
		}, []fieldWant{{"spec.rules[0].filters[0].requestHeaderModifier.set", "17 headers, at most 16"}}},
		{"rewrite hostname and path", func(r *gatewayv1.HTTPRoute) {
			u := r.Spec.Rules[0].Filters[1].URLRewrite
			u.Hostname = ptr(gatewayv1.PreciseHostname("*.demo"))
			u.Path.ReplacePrefixMatch = ptr("v2")
			u.Path.ReplaceFullPath = ptr("/x")
		}, []fieldWant{
			{"spec.rules[0].filters[1].urlRewrite.hostname", "no wildcard"},
			{"spec.rules[0].filters[1].urlRewrite.path.replacePrefixMatch", `must start with "/"`},
			{"spec.rules[0].filters[1].urlRewrite.path.replaceFullPath", "must not be set for type ReplacePrefixMatch"},
		}},
		{"rewrite path type", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Filters[1].URLRewrite.Path.Type = "ReplacePrefix"
		}, []fieldWant{{"spec.rules[0].filters[1].urlRewrite.path.type", "must be ReplaceFullPath or ReplacePrefixMatch"}}},
		{"redirect fields", func(r *gatewayv1.HTTPRoute) {
			rd := r.Spec.Rules[1].Filters[0].RequestRedirect
			rd.Scheme, rd.Port, rd.StatusCode = ptr("ftp"), ptr(int32(0)), ptr(200)
			rd.Path.ReplaceFullPath = nil
		}, []fieldWant{
			{"spec.rules[1].filters[0].requestRedirect.scheme", "must be http or https"},
			{"spec.rules[1].filters[0].requestRedirect.path.replaceFullPath", "required for path type ReplaceFullPath"},
			{"spec.rules[1].filters[0].requestRedirect.port", "out of range 1-65535"},
			{"spec.rules[1].filters[0].requestRedirect.statusCode", "must be 301, 302, 303, 307 or 308"},
		}},
		{"mirror without a port, percent out of range", func(r *gatewayv1.HTTPRoute) {
			m := r.Spec.Rules[0].Filters[2].RequestMirror
			m.BackendRef.Port, m.Percent = nil, ptr(int32(101))
		}, []fieldWant{{"spec.rules[0].filters[2].requestMirror.backendRef.port", "required"}, {"spec.rules[0].filters[2].requestMirror.percent", "out of range 0-100"}}},
		{"mirror percent and fraction", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Filters[2].RequestMirror.Fraction = &gatewayv1.Fraction{Numerator: 3, Denominator: ptr(int32(2))}
		}, []fieldWant{{"spec.rules[0].filters[2].requestMirror", "must not both be set"}, {"spec.rules[0].filters[2].requestMirror.fraction.numerator", "out of range 0-2"}}},
		{"mirror to a Deployment", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Filters[2].RequestMirror.BackendRef.Kind = ptr(gatewayv1.Kind("Deployment"))
		}, []fieldWant{{"spec.rules[0].filters[2].requestMirror.backendRef.kind", "must be Service"}}},
		{"extensionRef of another kind", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Filters[3].ExtensionRef = &gatewayv1.LocalObjectReference{Group: "example.com", Kind: "Lua", Name: "x"}
		}, []fieldWant{{"spec.rules[0].filters[3].extensionRef", "group fedmesh.io, kind FaultInjection"}}},
		{"extensionRef name", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[0].Filters[3].ExtensionRef.Name = "F!" },
			[]fieldWant{{"spec.rules[0].filters[3].extensionRef.name", "DNS-1123"}}},
		{"two FaultInjections", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Filters = append(r.Spec.Rules[0].Filters, r.Spec.Rules[0].Filters[3])
		}, []fieldWant{{"spec.rules[0].filters", "at most one FaultInjection per rule"}}},
		{"17 filters", func(r *gatewayv1.HTTPRoute) {
			for len(r.Spec.Rules[0].Filters) < 17 {
				r.Spec.Rules[0].Filters = append(r.Spec.Rules[0].Filters, r.Spec.Rules[0].Filters[2])
			}
		}, []fieldWant{{"spec.rules[0].filters", "17 filters, at most 16"}}},
		{"backendRef kind, group, name, namespace", func(r *gatewayv1.HTTPRoute) {
			b := r.Spec.Rules[0].BackendRefs
			b[0].Group = ptr(gatewayv1.Group(""))
			b[1].Kind, b[1].Name, b[1].Namespace = ptr(gatewayv1.Kind("Backend")), "Echo", ptr(gatewayv1.Namespace("-x"))
		}, []fieldWant{
			{"spec.rules[0].backendRefs[0].group", "must be multicluster.x-k8s.io for kind ServiceImport"},
			{"spec.rules[0].backendRefs[1].kind", "must be Service"},
			{"spec.rules[0].backendRefs[1].name", "DNS-1123"},
			{"spec.rules[0].backendRefs[1].namespace", "DNS-1123"},
		}},
		{"backendRef Service in another group", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].BackendRefs[1].Group = ptr(gatewayv1.Group(MCSGroup))
		}, []fieldWant{{"spec.rules[0].backendRefs[1].group", `must be "" (the core group) for kind Service`}}},
		{"backendRef ports and weights", func(r *gatewayv1.HTTPRoute) {
			b := r.Spec.Rules[0].BackendRefs
			b[0].Port, b[0].Weight = nil, ptr(int32(-1))
			b[1].Port, b[1].Weight = ptr(int32(65536)), ptr(int32(1000001))
		}, []fieldWant{
			{"spec.rules[0].backendRefs[0].port", "required"},
			{"spec.rules[0].backendRefs[0].weight", "out of range 0-1000000"},
			{"spec.rules[0].backendRefs[1].port", "out of range 1-65535"},
			{"spec.rules[0].backendRefs[1].weight", "out of range 0-1000000"},
		}},
		{"all weights zero", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].BackendRefs[0].Weight, r.Spec.Rules[0].BackendRefs[1].Weight = ptr(int32(0)), ptr(int32(0))
		}, nil},
		{"17 backendRefs", func(r *gatewayv1.HTTPRoute) {
			for i := range 17 {
				r.Spec.Rules[2].BackendRefs = append(r.Spec.Rules[2].BackendRefs, backend(fmt.Sprintf("b%d", i), 80))
			}
		}, []fieldWant{{"spec.rules[2].backendRefs", "18 backendRefs, at most 16"}}},
		{"backendRef filter that only a rule may have", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].BackendRefs[1].Filters = append(r.Spec.Rules[0].BackendRefs[1].Filters, r.Spec.Rules[0].Filters[1])
		}, []fieldWant{{"spec.rules[0].backendRefs[1].filters[1].type", "only RequestHeaderModifier and ResponseHeaderModifier are supported on a backendRef"}}},
		{"timeouts format", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Timeouts = &gatewayv1.HTTPRouteTimeouts{Request: ptr(gatewayv1.Duration("10")), BackendRequest: ptr(gatewayv1.Duration("1.5s"))}
		}, []fieldWant{{"spec.rules[0].timeouts.request", "Gateway API duration"}, {"spec.rules[0].timeouts.backendRequest", "Gateway API duration"}}},
		{"backendRequest longer than request", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Timeouts.BackendRequest = ptr(gatewayv1.Duration("1m"))
		}, []fieldWant{{"spec.rules[0].timeouts.backendRequest", "must not be longer than timeouts.request 10s"}}},
		{"backendRequest with no request timeout", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Timeouts = &gatewayv1.HTTPRouteTimeouts{Request: ptr(gatewayv1.Duration("0s")), BackendRequest: ptr(gatewayv1.Duration("1h30m"))}
		}, nil},
		{"retry", func(r *gatewayv1.HTTPRoute) {
			r.Spec.Rules[0].Retry = &gatewayv1.HTTPRouteRetry{Attempts: ptr(0), Codes: []gatewayv1.HTTPRouteRetryStatusCode{503, 399, 503, 600}, Backoff: ptr(gatewayv1.Duration("0s"))}
		}, []fieldWant{
			{"spec.rules[0].retry.attempts", "out of range 1-100"},
			{"spec.rules[0].retry.codes[1]", "out of range 400-599"},
			{"spec.rules[0].retry.codes[2]", "listed twice"},
			{"spec.rules[0].retry.codes[3]", "out of range 400-599"},
			{"spec.rules[0].retry.backoff", "positive Gateway API duration"},
		}},
		{"session persistence", func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[2].SessionPersistence = &gatewayv1.SessionPersistence{} },
			[]fieldWant{{"spec.rules[2].sessionPersistence", "not supported by fedmesh"}}},
		{"every wrong field is listed", func(r *gatewayv1.HTTPRoute) {
			r.Spec.ParentRefs[0].Name = ""
			r.Spec.Rules[0].Matches[0].Method = ptr(gatewayv1.HTTPMethod("FETCH"))
			r.Spec.Rules[2].BackendRefs[0].Weight = ptr(int32(-5))
		}, []fieldWant{
			{"spec.parentRefs[0].name", "must not be empty"},
			{"spec.rules[0].matches[0].method", "must be GET"},
			{"spec.rules[2].backendRefs[0].weight", "out of range"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse[gatewayv1.HTTPRoute](t, goodHTTPRoute)
			tt.mod(r)
			checkFields(t, "HTTPRoute "+r.Namespace+"/"+r.Name, ValidateObject(r), tt.want)
		})
	}
}

func TestValidateGRPCRoute(t *testing.T) {
	tests := []struct {
		name string
		mod  func(r *gatewayv1.GRPCRoute)
		want []fieldWant
	}{
		{"good", func(r *gatewayv1.GRPCRoute) {}, nil},
		{"wrong kind", func(r *gatewayv1.GRPCRoute) { r.Kind = KindHTTPRoute }, []fieldWant{{"kind", "must be GRPCRoute"}}},
		{"parentRef to a Gateway", func(r *gatewayv1.GRPCRoute) { r.Spec.ParentRefs[0].Group, r.Spec.ParentRefs[0].Kind = nil, nil },
			[]fieldWant{{"spec.parentRefs[0]", "group and kind must be set"}}},
		{"no rules", func(r *gatewayv1.GRPCRoute) { r.Spec.Rules = nil }, []fieldWant{{"spec.rules", "at least one"}}},
		{"method match with neither service nor method", func(r *gatewayv1.GRPCRoute) {
			r.Spec.Rules[0].Matches[0].Method = &gatewayv1.GRPCMethodMatch{Type: ptr(gatewayv1.GRPCMethodMatchExact)}
		}, []fieldWant{{"spec.rules[0].matches[0].method", "service or method (or both) must be set"}}},
		{"exact names", func(r *gatewayv1.GRPCRoute) {
			m := r.Spec.Rules[0].Matches[0].Method
			m.Service, m.Method = ptr("helloworld..Greeter"), ptr("Say.Hello")
		}, []fieldWant{{"spec.rules[0].matches[0].method.service", "fully qualified gRPC service name"}, {"spec.rules[0].matches[0].method.method", "gRPC method name"}}},
		{"method only", func(r *gatewayv1.GRPCRoute) { r.Spec.Rules[0].Matches[0].Method.Service = nil }, nil},
		{"regular expressions", func(r *gatewayv1.GRPCRoute) {
			r.Spec.Rules[0].Matches[1].Method.Method = ptr("Say(")
		}, []fieldWant{{"spec.rules[0].matches[1].method.method", "not an RE2"}}},
		{"method match type", func(r *gatewayv1.GRPCRoute) {
			r.Spec.Rules[0].Matches[1].Method.Type = ptr(gatewayv1.GRPCMethodMatchType("Prefix"))
		}, []fieldWant{{"spec.rules[0].matches[1].method.type", "must be Exact or RegularExpression"}}},
		{"header match", func(r *gatewayv1.GRPCRoute) {
			r.Spec.Rules[0].Matches[0].Headers = append(r.Spec.Rules[0].Matches[0].Headers,
				gatewayv1.GRPCHeaderMatch{Type: ptr(gatewayv1.GRPCHeaderMatchRegularExpression), Name: "x-b", Value: "(("})
		}, []fieldWant{{"spec.rules[0].matches[0].headers[1].value", "not an RE2"}}},
		{"an HTTP-only filter", func(r *gatewayv1.GRPCRoute) { r.Spec.Rules[0].Filters[1].Type = "URLRewrite" },
			[]fieldWant{{"spec.rules[0].filters[1].type", "must be RequestHeaderModifier, ResponseHeaderModifier, RequestMirror or ExtensionRef"}, {"spec.rules[0].filters[1].requestHeaderModifier", "must not be set"}}},
		{"repeated header modifier", func(r *gatewayv1.GRPCRoute) {
			r.Spec.Rules[0].Filters = append(r.Spec.Rules[0].Filters, r.Spec.Rules[0].Filters[1])
		}, []fieldWant{{"spec.rules[0].filters", "may appear once"}}},
		{"extensionRef of another kind", func(r *gatewayv1.GRPCRoute) { r.Spec.Rules[0].Filters[0].ExtensionRef.Kind = "RateLimit" },
			[]fieldWant{{"spec.rules[0].filters[0].extensionRef", "group fedmesh.io, kind FaultInjection"}}},
		{"backendRef without a port", func(r *gatewayv1.GRPCRoute) { r.Spec.Rules[0].BackendRefs[0].Port = nil },
			[]fieldWant{{"spec.rules[0].backendRefs[0].port", "required"}}},
		{"backendRef mirror filter", func(r *gatewayv1.GRPCRoute) {
			r.Spec.Rules[0].BackendRefs[0].Filters = []gatewayv1.GRPCRouteFilter{{Type: gatewayv1.GRPCRouteFilterRequestMirror, RequestMirror: &gatewayv1.HTTPRequestMirrorFilter{}}}
		}, []fieldWant{{"spec.rules[0].backendRefs[0].filters[0].type", "only RequestHeaderModifier and ResponseHeaderModifier"}}},
		{"session persistence", func(r *gatewayv1.GRPCRoute) { r.Spec.Rules[0].SessionPersistence = &gatewayv1.SessionPersistence{} },
			[]fieldWant{{"spec.rules[0].sessionPersistence", "not supported"}}},
		{"duplicate rule names", func(r *gatewayv1.GRPCRoute) {
			r.Spec.Rules[0].Name = ptr(gatewayv1.SectionName("a"))
			r.Spec.Rules = append(r.Spec.Rules, r.Spec.Rules[0])
		}, []fieldWant{{"spec.rules[1].name", "unique within the route"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse[gatewayv1.GRPCRoute](t, goodGRPCRoute)
			tt.mod(r)
			checkFields(t, "GRPCRoute demo/g", ValidateObject(r), tt.want)
		})
	}
}

func TestValidateResiliencePolicy(t *testing.T) {
	d := func(s string) *metav1.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			panic(err)
		}
		return &metav1.Duration{Duration: v}
	}
	tests := []struct {
		name string
		mod  func(p *ResiliencePolicy)
		want []fieldWant
	}{
		{"good", func(p *ResiliencePolicy) {}, nil},
		{"empty spec but a target", func(p *ResiliencePolicy) {
			p.Spec = ResilienceSpec{TargetRefs: p.Spec.TargetRefs}
		}, nil},
		{"wrong apiVersion", func(p *ResiliencePolicy) { p.APIVersion = "fedmesh.io/v1" }, []fieldWant{{"apiVersion", "must be fedmesh.io/v1alpha1"}}},
		{"no targets", func(p *ResiliencePolicy) { p.Spec.TargetRefs = nil }, []fieldWant{{"spec.targetRefs", "at least one is required"}}},
		{"17 targets", func(p *ResiliencePolicy) {
			p.Spec.TargetRefs = nil
			for i := range 17 {
				p.Spec.TargetRefs = append(p.Spec.TargetRefs, TargetRef{Kind: KindService, Name: fmt.Sprintf("s%d", i)})
			}
		}, []fieldWant{{"spec.targetRefs", "17 targetRefs, at most 16"}}},
		{"target kinds, groups, names", func(p *ResiliencePolicy) {
			p.Spec.TargetRefs = []TargetRef{
				{Kind: "Gateway", Name: "gw"},
				{Group: MCSGroup, Kind: KindService, Name: "a"},
				{Kind: KindServiceImport, Name: "b"},
				{Kind: KindService, Name: "B"},
				{Kind: KindService, Name: "c"},
				{Kind: KindService, Name: "c"},
			}
		}, []fieldWant{
			{"spec.targetRefs[0].kind", "must be Service"},
			{"spec.targetRefs[1].group", `must be ""`},
			{"spec.targetRefs[2].group", "must be multicluster.x-k8s.io"},
			{"spec.targetRefs[3].name", "DNS-1123"},
			{"spec.targetRefs[5]", "the same target as targetRefs[4]"},
		}},
		{"retry", func(p *ResiliencePolicy) {
			r := p.Spec.Retry
			r.Attempts = ptr(int32(-1))
			r.RetryOn = []RetryOn{"5xx", "bogus", "5xx"}
			r.StatusCodes = []int32{200, 503, 503}
			r.PerTryTimeout = d("0s")
			r.Backoff = &Backoff{BaseInterval: d("1s"), MaxInterval: d("100ms")}
		}, []fieldWant{
			{"spec.retry.attempts", "out of range 0-100"},
			{"spec.retry.retryOn[1]", "must be one of 5xx"},
			{"spec.retry.retryOn[2]", "listed twice"},
			{"spec.retry.statusCodes[0]", "out of range 400-599"},
			{"spec.retry.statusCodes[2]", "listed twice"},
			{"spec.retry.perTryTimeout", "must be positive"},
			{"spec.retry.backoff.maxInterval", "must not be shorter than baseInterval 1s"},
		}},
		{"too many attempts", func(p *ResiliencePolicy) { p.Spec.Retry.Attempts = ptr(int32(101)) },
			[]fieldWant{{"spec.retry.attempts", "out of range 0-100"}}},
		{"negative durations", func(p *ResiliencePolicy) {
			p.Spec.Timeouts = &Timeouts{Request: d("-1s"), Idle: d("0s"), Connect: d("-1ms")}
			p.Spec.Retry.Backoff.BaseInterval = d("-1s")
		}, []fieldWant{
			{"spec.retry.backoff.baseInterval", "must be positive"},
			{"spec.timeouts.request", "must be positive"},
			{"spec.timeouts.idle", "must be positive"},
			{"spec.timeouts.connect", "must be positive"},
		}},
		{"limits", func(p *ResiliencePolicy) {
			p.Spec.ConnectionLimits = &ConnectionLimits{MaxConnections: ptr(int32(-1)), MaxPendingRequests: ptr(int32(-1)), MaxRequests: ptr(int32(-1)), MaxRetries: ptr(int32(-1))}
		}, []fieldWant{
			{"spec.connectionLimits.maxConnections", "must not be negative"},
			{"spec.connectionLimits.maxPendingRequests", "must not be negative"},
			{"spec.connectionLimits.maxRequests", "must not be negative"},
			{"spec.connectionLimits.maxRetries", "must not be negative"},
		}},
		{"outlier detection", func(p *ResiliencePolicy) {
			p.Spec.OutlierDetection = &OutlierDetection{Consecutive5xx: ptr(int32(-1)), ConsecutiveGatewayErrors: ptr(int32(-2)), Interval: d("0s"), BaseEjectionTime: d("-1s"), MaxEjectionPercent: ptr(int32(101))}
		}, []fieldWant{
			{"spec.outlierDetection.consecutive5xx", "must not be negative"},
			{"spec.outlierDetection.consecutiveGatewayErrors", "must not be negative"},
			{"spec.outlierDetection.interval", "must be positive"},
			{"spec.outlierDetection.baseEjectionTime", "must be positive"},
			{"spec.outlierDetection.maxEjectionPercent", "out of range 0-100"},
		}},
		{"algorithm", func(p *ResiliencePolicy) { p.Spec.LoadBalancer = &LoadBalancer{Algorithm: "Random"} },
			[]fieldWant{{"spec.loadBalancer.algorithm", "must be LeastRequest, RoundRobin or RingHash"}}},
		{"ring hash without a key", func(p *ResiliencePolicy) { p.Spec.LoadBalancer.HashKey = nil },
			[]fieldWant{{"spec.loadBalancer.hashKey", "required with algorithm RingHash"}}},
		{"hash key and ring without ring hash", func(p *ResiliencePolicy) { p.Spec.LoadBalancer.Algorithm = LBRoundRobin },
			[]fieldWant{{"spec.loadBalancer.ringHash", "only with algorithm RingHash"}, {"spec.loadBalancer.hashKey", "only with algorithm RingHash"}}},
		{"default algorithm with a hash key", func(p *ResiliencePolicy) {
			p.Spec.LoadBalancer.Algorithm, p.Spec.LoadBalancer.RingHash = "", nil
		}, []fieldWant{{"spec.loadBalancer.hashKey", "only with algorithm RingHash"}}},
		{"two hash keys", func(p *ResiliencePolicy) { p.Spec.LoadBalancer.HashKey.SourceIP = true },
			[]fieldWant{{"spec.loadBalancer.hashKey", "exactly one of header, cookie, queryParameter and sourceIP must be set, not 2"}}},
		{"empty hash key", func(p *ResiliencePolicy) { p.Spec.LoadBalancer.HashKey = &HashKey{} },
			[]fieldWant{{"spec.loadBalancer.hashKey", "not 0"}}},
		{"hash key names", func(p *ResiliencePolicy) { p.Spec.LoadBalancer.HashKey = &HashKey{Cookie: "a=b"} },
			[]fieldWant{{"spec.loadBalancer.hashKey.cookie", "cookie name"}}},
		{"hash key header", func(p *ResiliencePolicy) { p.Spec.LoadBalancer.HashKey = &HashKey{Header: ":authority"} },
			[]fieldWant{{"spec.loadBalancer.hashKey.header", "header name token"}}},
		{"source IP", func(p *ResiliencePolicy) { p.Spec.LoadBalancer.HashKey = &HashKey{SourceIP: true} }, nil},
		{"ring sizes", func(p *ResiliencePolicy) {
			p.Spec.LoadBalancer.RingHash = &RingHash{MinimumRingSize: ptr(int64(0)), MaximumRingSize: ptr(int64(8<<20 + 1))}
		}, []fieldWant{{"spec.loadBalancer.ringHash.minimumRingSize", "out of range 1-8388608"}, {"spec.loadBalancer.ringHash.maximumRingSize", "out of range 1-8388608"}}},
		{"ring min above max", func(p *ResiliencePolicy) {
			p.Spec.LoadBalancer.RingHash = &RingHash{MinimumRingSize: ptr(int64(2048)), MaximumRingSize: ptr(int64(1024))}
		}, []fieldWant{{"spec.loadBalancer.ringHash.maximumRingSize", "must not be smaller than minimumRingSize 2048"}}},
		{"failover", func(p *ResiliencePolicy) {
			p.Spec.Failover = &Failover{Regions: []string{"us-east", "US-West", "us-east"}, FailoverPriority: []string{"a b", "zone", "zone"}}
		}, []fieldWant{
			{"spec.failover.regions[1]", "DNS-1123"},
			{"spec.failover.regions[2]", "listed already as regions[0]"},
			{"spec.failover.failoverPriority[0]", "label key"},
			{"spec.failover.failoverPriority[2]", "listed already as failoverPriority[1]"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse[ResiliencePolicy](t, goodResilience)
			tt.mod(p)
			checkFields(t, "ResiliencePolicy demo/p", ValidateObject(p), tt.want)
		})
	}
}

func TestValidateFaultInjection(t *testing.T) {
	tests := []struct {
		name string
		mod  func(f *FaultInjection)
		want []fieldWant
	}{
		{"good", func(f *FaultInjection) {}, nil},
		{"wrong kind", func(f *FaultInjection) { f.Kind = KindResiliencePolicy }, []fieldWant{{"kind", "must be FaultInjection"}}},
		{"nothing to inject", func(f *FaultInjection) { f.Spec.Delay, f.Spec.Abort = nil, nil },
			[]fieldWant{{"spec", "delay or abort (or both) must be set"}}},
		{"only a delay", func(f *FaultInjection) { f.Spec.Abort = nil }, nil},
		{"delay", func(f *FaultInjection) { f.Spec.Delay.Fixed.Duration, f.Spec.Delay.Percentage = 0, 101 },
			[]fieldWant{{"spec.delay.fixed", "must be positive"}, {"spec.delay.percentage", "out of range 0-100"}}},
		{"delay too long", func(f *FaultInjection) { f.Spec.Delay.Fixed.Duration = 2 * time.Hour },
			[]fieldWant{{"spec.delay.fixed", "at most 1h0m0s"}}},
		{"percentage resolution", func(f *FaultInjection) { f.Spec.Delay.Percentage = 12.34567 },
			[]fieldWant{{"spec.delay.percentage", "at most 4 decimals"}}},
		{"negative percentage", func(f *FaultInjection) { f.Spec.Abort.Percentage = -1 },
			[]fieldWant{{"spec.abort.percentage", "out of range 0-100"}}},
		{"abort with both statuses", func(f *FaultInjection) { f.Spec.Abort.GRPCStatus = ptr(int32(14)) },
			[]fieldWant{{"spec.abort", "not both"}}},
		{"abort with no status", func(f *FaultInjection) { f.Spec.Abort.HTTPStatus = nil },
			[]fieldWant{{"spec.abort", "exactly one of httpStatus and grpcStatus"}}},
		{"HTTP status range", func(f *FaultInjection) { f.Spec.Abort.HTTPStatus = ptr(int32(199)) },
			[]fieldWant{{"spec.abort.httpStatus", "out of range 200-599"}}},
		{"gRPC status range", func(f *FaultInjection) { f.Spec.Abort.HTTPStatus, f.Spec.Abort.GRPCStatus = nil, ptr(int32(17)) },
			[]fieldWant{{"spec.abort.grpcStatus", "out of range 0-16"}}},
		{"gRPC status", func(f *FaultInjection) { f.Spec.Abort.HTTPStatus, f.Spec.Abort.GRPCStatus = nil, ptr(int32(0)) }, nil},
		{"headers", func(f *FaultInjection) {
			f.Spec.Headers = append(f.Spec.Headers, gatewayv1.HTTPHeaderMatch{Name: "x-chaos", Value: "again"}, gatewayv1.HTTPHeaderMatch{Type: ptr(gatewayv1.HeaderMatchRegularExpression), Name: "x-b", Value: "\\"})
		}, []fieldWant{{"spec.headers[2].name", "matched already by entry 0"}, {"spec.headers[3].value", "not an RE2"}}},
		{"17 headers", func(f *FaultInjection) {
			for i := range 15 {
				f.Spec.Headers = append(f.Spec.Headers, gatewayv1.HTTPHeaderMatch{Name: gatewayv1.HTTPHeaderName(fmt.Sprintf("x-%d", i)), Value: "v"})
			}
		}, []fieldWant{{"spec.headers", "17 headers, at most 16"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse[FaultInjection](t, goodFault)
			tt.mod(f)
			checkFields(t, "FaultInjection demo/f", ValidateObject(f), tt.want)
		})
	}
}

func TestValidateObjectOfAnotherType(t *testing.T) {
	err := ValidateObject(&AuthorizationPolicy{})
	if err == nil || errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("err = %v, want a not-a-traffic-object error", err)
	}
}

func TestParseGatewayDuration(t *testing.T) {
	tests := []struct {
		in   gatewayv1.Duration
		want time.Duration
		ok   bool
	}{
		{"0s", 0, true},
		{"500ms", 500 * time.Millisecond, true},
		{"1h30m", 90 * time.Minute, true},
		{"1h1m1s1ms", time.Hour + time.Minute + time.Second + time.Millisecond, true},
		{"99999h", 99999 * time.Hour, true},
		{"", 0, false},
		{"1", 0, false},
		{"1.5s", 0, false},
		{"-1s", 0, false},
		{"100000s", 0, false},
		{"1us", 0, false},
		{"1h1m1s1ms1h", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseGatewayDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseGatewayDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestPercentPerMillion(t *testing.T) {
	for p, want := range map[Percent]uint32{0: 0, 100: 1000000, 12.5: 125000, 0.0001: 1, 33.3333: 333333} {
		if got := p.PerMillion(); got != want {
			t.Errorf("Percent(%v).PerMillion() = %d, want %d", float64(p), got, want)
		}
	}
}
