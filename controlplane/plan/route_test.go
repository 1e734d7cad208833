package plan

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan/plantest"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// traffic parses YAML documents (separated by "---") into a set.
func traffic(t *testing.T, docs ...string) policy.Traffic {
	t.Helper()
	var tr policy.Traffic
	for _, d := range docs {
		for _, doc := range strings.Split(d, "\n---\n") {
			obj, err := policy.ParseObject([]byte(doc))
			if err != nil {
				t.Fatalf("parse %q: %v", doc, err)
			}
			if err := tr.Add(obj); err != nil {
				t.Fatal(err)
			}
		}
	}
	return tr
}

// withProducer makes docs echo's producer policies, published by
// west-1, and adds echo-v2 (HTTP 8080, west-1 only) to the view.
func withProducer(t *testing.T, docs ...string) func(*catalog.View) {
	return func(v *catalog.View) {
		addEchoV2(v)
		if len(docs) == 0 {
			return
		}
		pol, err := policy.EncodePolicies(traffic(t, docs...))
		if err != nil {
			t.Fatal(err)
		}
		v.Services[0].Policies, v.Services[0].PoliciesCluster = pol, "west-1"
	}
}

func addEchoV2(v *catalog.View) {
	v2 := catalog.ImportedService{
		Namespace: "demo", Name: "echo-v2", Type: catalog.ClusterSetIP,
		Ports:    []catalog.Port{{Name: "http", Port: 8080, AppProtocol: catalog.AppHTTP}},
		Clusters: []string{"west-1"},
		Endpoints: []catalog.ViewEndpoint{
			plantest.Endpoint("127.0.3.5", plantest.West1, true, ""),
		},
	}
	v.Services = append(v.Services[:1], append([]catalog.ImportedService{v2}, v.Services[1:]...)...)
}

var echoPort = catalog.Port{Name: "http", Port: 8080, AppProtocol: catalog.AppHTTP}

const (
	echoOut   = "outbound|8080||echo.demo.svc.clusterset.local"
	echoLocal = "outbound|8080|local|echo.demo.svc.clusterset.local"
	v2Out     = "outbound|8080||echo-v2.demo.svc.clusterset.local"
	v2Local   = "outbound|8080|local|echo-v2.demo.svc.clusterset.local"
)

// summarizeRoute renders a route as one line: name, match, then where it
// goes.
func summarizeRoute(r Route) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s:%s", r.Name, r.Match.Path.Kind, r.Match.Path.Value)
	if r.Match.Method != "" {
		fmt.Fprintf(&b, " method=%s", r.Match.Method)
	}
	for _, h := range r.Match.Headers {
		fmt.Fprintf(&b, " header:%s=%s:%s", h.Name, h.Match.Kind, h.Match.Value)
	}
	for _, q := range r.Match.Query {
		fmt.Fprintf(&b, " query:%s=%s:%s", q.Name, q.Match.Kind, q.Match.Value)
	}
	b.WriteString(" ->")
	for _, be := range r.Backends {
		fmt.Fprintf(&b, " %s*%d", be.Cluster, be.Weight)
	}
	if r.DirectStatus != 0 {
		fmt.Fprintf(&b, " status %d", r.DirectStatus)
	}
	if r.Redirect != nil {
		b.WriteString(" redirect")
	}
	return b.String()
}

func summarizeTable(t *RouteTable) []string {
	out := []string{"origin " + t.Origin}
	for _, r := range t.Routes {
		out = append(out, summarizeRoute(r))
	}
	return out
}

const routeHead = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: echo%s}]
  rules:
`

func httpRoute(name, ns, rules string) string {
	parentNS := ""
	if ns != "demo" {
		parentNS = ", namespace: demo"
	}
	return fmt.Sprintf(routeHead, name, ns, parentNS) + rules
}

func TestRoutesMatchesAndBackends(t *testing.T) {
	tests := []struct {
		name  string
		docs  []string
		want  []string
		notes int
	}{
		{
			name: "no route: the default route to the whole service",
			want: []string{"origin default", "default prefix:/ -> " + echoOut + "*1"},
		},
		{
			name: "weighted canary: ServiceImport backends to the clusterset",
			docs: []string{httpRoute("canary", "demo", `  - backendRefs:
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 8080, weight: 90}
    - {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080, weight: 10}
`)},
			want: []string{"origin producer", "demo/canary/rule-0 prefix:/ -> " + echoOut + "*90 " + v2Out + "*10"},
		},
		{
			name: "Service backends go to the local-only subset",
			docs: []string{httpRoute("local", "demo", `  - backendRefs:
    - {name: echo-v2, port: 8080}
`)},
			want: []string{"origin producer", "demo/local/rule-0 prefix:/ -> " + v2Local + "*1"},
		},
		{
			name: "weight 0 backends are left out; all 0 answers 500",
			docs: []string{httpRoute("zero", "demo", `  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs:
    - {name: echo, port: 8080, weight: 0}
    - {name: echo-v2, port: 8080, weight: 3}
  - matches: [{path: {type: PathPrefix, value: /b}}]
    backendRefs:
    - {name: echo, port: 8080, weight: 0}
`)},
			want: []string{"origin producer", "demo/zero/rule-0 prefix:/a -> " + v2Local + "*3", "demo/zero/rule-1 prefix:/b -> status 500"},
		},
		{
			name: "missing backend service: its share goes to the missing-backend cluster",
			docs: []string{httpRoute("missing", "demo", `  - backendRefs:
    - {name: echo, port: 8080, weight: 1}
    - {name: nope, port: 8080, weight: 1}
    - {name: echo, port: 9999, weight: 1}
`)},
			want:  []string{"origin producer", "demo/missing/rule-0 prefix:/ -> " + echoLocal + "*1 " + MissingBackendCluster + "*1 " + MissingBackendCluster + "*1"},
			notes: 2,
		},
		{
			name: "match types: exact, prefix with trailing slash, regex, method, headers, query",
			docs: []string{httpRoute("m", "demo", `  - matches:
    - path: {type: Exact, value: /exact}
    - path: {type: PathPrefix, value: /pre/}
    - path: {type: RegularExpression, value: "/re/[0-9]+"}
    - method: POST
      headers: [{name: X-User, value: alice}, {type: RegularExpression, name: x-tier, value: "gold|silver"}]
      queryParams: [{name: v, value: "2"}, {type: RegularExpression, name: q, value: "a.*"}]
    backendRefs: [{name: echo, port: 8080}]
`)},
			want: []string{"origin producer",
				"demo/m/rule-0/match-0 exact:/exact -> " + echoLocal + "*1",
				"demo/m/rule-0/match-1 prefix:/pre -> " + echoLocal + "*1",
				"demo/m/rule-0/match-3 prefix:/ method=POST header:x-user=exact:alice header:x-tier=regex:gold|silver query:v=exact:2 query:q=regex:a.* -> " + echoLocal + "*1",
				"demo/m/rule-0/match-2 regex:/re/[0-9]+ -> " + echoLocal + "*1",
			},
		},
		{
			name: "precedence across routes: exact, longest prefix, method, headers, query, then name",
			docs: []string{
				httpRoute("b", "demo", `  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: echo, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x, value: "1"}]}]
    backendRefs: [{name: echo, port: 8080}]
`),
				httpRoute("a", "demo", `  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /api/v1}}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /api}, method: GET}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches: [{path: {type: Exact, value: /api}}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /api}, queryParams: [{name: q, value: "1"}]}]
    backendRefs: [{name: echo-v2, port: 8080}]
`)},
			want: []string{"origin producer",
				"demo/a/rule-3 exact:/api -> " + v2Local + "*1",
				"demo/a/rule-1 prefix:/api/v1 -> " + v2Local + "*1",
				"demo/a/rule-2 prefix:/api method=GET -> " + v2Local + "*1",
				"demo/b/rule-1 prefix:/api header:x=exact:1 -> " + echoLocal + "*1",
				"demo/a/rule-4 prefix:/api query:q=exact:1 -> " + v2Local + "*1",
				"demo/a/rule-0 prefix:/api -> " + v2Local + "*1",
				"demo/b/rule-0 prefix:/api -> " + echoLocal + "*1",
			},
		},
		{
			name: "GRPCRoute method matches",
			docs: []string{`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches:
    - method: {service: echo.Echo, method: Say}
    - method: {service: echo.Echo}
    - method: {method: Say}
    - method: {type: RegularExpression, service: "echo\\..*"}
    - headers: [{name: x-canary, value: "yes"}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080}]
`},
			want: []string{"origin producer",
				"demo/g/rule-0/match-0 exact:/echo.Echo/Say -> " + v2Out + "*1",
				"demo/g/rule-0/match-1 prefix:/echo.Echo/ -> " + v2Out + "*1",
				"demo/g/rule-0/match-4 prefix:/ header:x-canary=exact:yes -> " + v2Out + "*1",
				"demo/g/rule-0/match-2 regex:/[^/]+/Say -> " + v2Out + "*1",
				"demo/g/rule-0/match-3 regex:/echo\\..*/[^/]+ -> " + v2Out + "*1",
			},
		},
		{
			name: "a route for another port does not apply",
			docs: []string{`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other-port, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 9090}]
  rules: [{backendRefs: [{name: echo-v2, port: 8080}]}]
`},
			want: []string{"origin default", "default prefix:/ -> " + echoOut + "*1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := plantest.View("east-1", withProducer(t, tt.docs...))
			p := New(testTD, topology.Policy{}, v)
			tab := p.Routes("demo", &v.Services[0], echoPort)
			if diff := cmp.Diff(tt.want, summarizeTable(tab)); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			if len(tab.Notes) != tt.notes {
				t.Errorf("notes = %q, want %d", tab.Notes, tt.notes)
			}
		})
	}
}

func TestRoutesFilters(t *testing.T) {
	v := plantest.View("east-1", withProducer(t, httpRoute("f", "demo", `  - matches: [{path: {type: PathPrefix, value: /h}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Set, value: "1"}], add: [{name: X-Add, value: "2"}], remove: [X-Gone]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: X-Resp, value: "3"}]}
    backendRefs:
    - name: echo
      port: 8080
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: X-Backend, value: v1}]}}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: new.example, port: 8443, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
  - matches: [{path: {type: PathPrefix, value: /rw}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: inner.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /inner}}
    backendRefs: [{name: echo, port: 8080}]
  - matches: [{path: {type: Exact, value: /full}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /whole}}
    backendRefs: [{name: echo, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080}, percent: 25}
    - type: RequestMirror
      requestMirror: {backendRef: {name: echo-v2, port: 8080}, fraction: {numerator: 1, denominator: 8}}
    backendRefs: [{name: echo, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /fault}}]
    filters:
    - type: ExtensionRef
      extensionRef: {group: fedmesh.io, kind: FaultInjection, name: half-abort}
    backendRefs: [{name: echo, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /nofault}}]
    filters:
    - type: ExtensionRef
      extensionRef: {group: fedmesh.io, kind: FaultInjection, name: not-there}
    backendRefs: [{name: echo, port: 8080}]
`), `apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
metadata: {name: half-abort, namespace: demo}
spec:
  delay: {fixed: 2s, percentage: 10}
  abort: {httpStatus: 503, percentage: 50.5}
  headers: [{name: X-Chaos, value: "on"}]
`))
	p := New(testTD, topology.Policy{}, v)
	tab := p.Routes("demo", &v.Services[0], echoPort)
	byPath := map[string]Route{}
	for _, r := range tab.Routes {
		byPath[r.Match.Path.Value] = r
	}
	str := func(s string) *string { return &s }
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"request headers", byPath["/h"].RequestHeaders, HeaderModifier{Set: []Header{{"x-set", "1"}}, Add: []Header{{"x-add", "2"}}, Remove: []string{"x-gone"}}},
		{"response headers", byPath["/h"].ResponseHeaders, HeaderModifier{Set: []Header{{"x-resp", "3"}}}},
		{"backend request headers", byPath["/h"].Backends[0].RequestHeaders, HeaderModifier{Add: []Header{{"x-backend", "v1"}}}},
		{"redirect", byPath["/old"].Redirect, &Redirect{Scheme: "https", Hostname: "new.example", Port: 8443, PrefixPath: str("/new"), StatusCode: 301}},
		{"redirect has no backends", len(byPath["/old"].Backends), 0},
		{"prefix rewrite", byPath["/rw"].Rewrite, &Rewrite{Hostname: "inner.example", PrefixPath: str("/inner")}},
		{"full path rewrite", byPath["/full"].Rewrite, &Rewrite{FullPath: str("/whole")}},
		{"mirrors", byPath["/mirror"].Mirrors, []Mirror{{Cluster: v2Out, Percent: 25}, {Cluster: v2Local, Percent: 12.5}}},
		{"fault", byPath["/fault"].Fault, &Fault{
			Policy:  "demo/half-abort",
			Delay:   &FaultDelay{Fixed: 2 * time.Second, Percent: 10},
			Abort:   &FaultAbort{HTTPStatus: 503, Percent: 50.5},
			Headers: []HeaderMatch{{Name: "x-chaos", Match: StringMatch{Kind: MatchExact, Value: "on"}}},
		}},
		{"a rule naming a missing FaultInjection is left out", byPath["/nofault"].Name, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if len(tab.Notes) != 1 {
		t.Errorf("notes = %q, want the rule naming a missing FaultInjection left out", tab.Notes)
	}
	if got := p.LocalSubsets(); !cmp.Equal(got, []naming.ServicePort{{Namespace: "demo", Name: "echo", Port: 8080}, {Namespace: "demo", Name: "echo-v2", Port: 8080}}) {
		t.Errorf("LocalSubsets = %v", got)
	}
}

const resilience = `apiVersion: fedmesh.io/v1alpha1
kind: ResiliencePolicy
metadata: {name: echo-resilience, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
  retry:
    attempts: 4
    retryOn: [5xx, reset]
    statusCodes: [429]
    perTryTimeout: 500ms
    backoff: {baseInterval: 20ms, maxInterval: 200ms}
  timeouts: {request: 3s, idle: 60s, connect: 2s}
  connectionLimits: {maxConnections: 10, maxPendingRequests: 11, maxRequests: 12, maxRetries: 13}
  outlierDetection: {consecutive5xx: 7, consecutiveGatewayErrors: 3, interval: 5s, baseEjectionTime: 15s, maxEjectionPercent: 0}
  loadBalancer:
    algorithm: RingHash
    ringHash: {minimumRingSize: 64, maximumRingSize: 4096}
    hashKey: {header: x-user}
  failover:
    regions: [us-west, ap]
    failoverPriority: [topology.kubernetes.io/zone]
`

func TestResilience(t *testing.T) {
	v := plantest.View("east-1", withProducer(t, resilience, httpRoute("r", "demo", `  - matches: [{path: {type: PathPrefix, value: /own}}]
    timeouts: {request: 0s, backendRequest: 1s}
    retry: {codes: [503], attempts: 1, backoff: 50ms}
    backendRefs: [{name: echo, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /inherit}}]
    backendRefs: [{name: echo, port: 8080}]
`)))
	p := New(testTD, topology.Policy{}, v)
	zero := uint32(0)
	if diff := cmp.Diff(ClusterSettings{
		Policy: "demo/echo-resilience", LB: LBRingHash, MinRingSize: 64, MaxRingSize: 4096,
		MaxConnections: 10, MaxPendingRequests: 11, MaxRequests: 12, MaxRetries: 13,
		Consecutive5xx: 7, ConsecutiveGatewayFailure: 3, OutlierInterval: 5 * time.Second, BaseEjectionTime: 15 * time.Second,
		MaxEjectionPercent: &zero, ConnectTimeout: 2 * time.Second, IdleTimeout: time.Minute,
	}, p.ClusterSettings(&v.Services[0])); diff != "" {
		t.Errorf("cluster settings (-want +got):\n%s", diff)
	}
	if cs := p.ClusterSettings(&v.Services[1]); cs != (ClusterSettings{}) {
		t.Errorf("echo-v2 has no policy, got %+v", cs)
	}
	tab := p.Routes("demo", &v.Services[0], echoPort)
	byPath := map[string]Route{}
	for _, r := range tab.Routes {
		byPath[r.Match.Path.Value] = r
	}
	d0, d3 := time.Duration(0), 3*time.Second
	inherited := &Retry{On: []string{"5xx", "reset", "retriable-status-codes"}, StatusCodes: []uint32{429}, Attempts: 4,
		PerTryTimeout: 500 * time.Millisecond, BaseInterval: 20 * time.Millisecond, MaxInterval: 200 * time.Millisecond}
	own := &Retry{On: []string{"connect-failure", "refused-stream", "reset", "retriable-status-codes"}, StatusCodes: []uint32{503}, Attempts: 1,
		PerTryTimeout: time.Second, BaseInterval: 50 * time.Millisecond, MaxInterval: 500 * time.Millisecond}
	hash := &policy.HashKey{Header: "x-user"}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"rule timeout 0 disables", byPath["/own"].Timeout, &d0},
		{"rule retry and backendRequest", byPath["/own"].Retry, own},
		{"policy timeout inherited", byPath["/inherit"].Timeout, &d3},
		{"policy retry inherited", byPath["/inherit"].Retry, inherited},
		{"hash key on every rule", byPath["/inherit"].Hash, hash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// The default route of a service with a policy and no route.
	v2 := plantest.View("east-1", withProducer(t, resilience))
	def := New(testTD, topology.Policy{}, v2).Routes("other", &v2.Services[0], echoPort).Routes[0]
	if def.Name != DefaultRouteName || def.Timeout == nil || *def.Timeout != d3 || !cmp.Equal(def.Retry, inherited) || !cmp.Equal(def.Hash, hash) {
		t.Errorf("default route = %+v", def)
	}
}

func TestFailoverFromPolicy(t *testing.T) {
	v := plantest.View("east-1", withProducer(t, resilience))
	p := New(testTD, topology.Policy{Failover: []topology.FailoverRule{{From: "us-east", To: "eu"}}}, v)
	tp := p.TopologyPolicy(&v.Services[0], "us-east")
	want := []topology.FailoverRule{{From: "us-east", To: "us-west"}, {From: "us-east", To: "ap"}}
	if !cmp.Equal(tp.Failover, want) || !cmp.Equal(tp.FailoverPriority, []string{"topology.kubernetes.io/zone"}) {
		t.Errorf("policy = %+v, want failover %v", tp, want)
	}
	if tp := p.TopologyPolicy(&v.Services[0], "us-west"); !cmp.Equal(tp.Failover, []topology.FailoverRule{{From: "us-west", To: "ap"}}) {
		t.Errorf("the client's own region is skipped: %+v", tp.Failover)
	}
	if tp := p.TopologyPolicy(&v.Services[1], "us-east"); !cmp.Equal(tp.Failover, []topology.FailoverRule{{From: "us-east", To: "eu"}}) {
		t.Errorf("a service without policy keeps the mesh policy: %+v", tp.Failover)
	}
}

func TestAssignLocal(t *testing.T) {
	v := plantest.View("east-1", withProducer(t))
	p := New(testTD, topology.Policy{}, v)
	a := p.AssignLocal(&v.Services[0], echoPort, plantest.East1, naming.RoleSidecar)
	want := []string{"p0 us-east/a/east-1 w1: 127.0.1.1:15006 healthy, 127.0.1.2:15006 unhealthy"}
	if a.Name != echoLocal || !cmp.Equal(summarize(a), want) {
		t.Errorf("AssignLocal = %s %v, want %v", a.Name, summarize(a), want)
	}
	for _, r := range a.Report.Endpoints {
		if r.Sent != (r.Cluster == "east-1") {
			t.Errorf("endpoint %s sent=%v", r.Address, r.Sent)
		}
	}
	// echo-v2 runs only in west-1: the local subset in east-1 is empty.
	if a := p.AssignLocal(&v.Services[1], echoPort, plantest.East1, naming.RoleProxyless); len(a.Localities) != 0 {
		t.Errorf("echo-v2 local subset in east-1 = %v", summarize(a))
	}
}

func TestConsumerRoutes(t *testing.T) {
	v := plantest.View("east-1", withProducer(t, httpRoute("producer", "demo", `  - backendRefs: [{name: echo, port: 8080}]
`)))
	local := traffic(t, httpRoute("consumer", "shop", `  - matches: [{path: {type: PathPrefix, value: /cart}}]
    filters: [{type: ExtensionRef, extensionRef: {group: fedmesh.io, kind: FaultInjection, name: slow}}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, namespace: demo, port: 8080}]
`), `apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
metadata: {name: slow, namespace: shop}
spec: {delay: {fixed: 1s, percentage: 100}}
`,
		// A producer route in the local set is ignored: producer
		// routes come through the view.
		httpRoute("local-producer", "demo", `  - backendRefs: [{name: echo-v2, port: 8080}]
`))
	p := New(testTD, topology.Policy{}, v).WithTraffic(local)
	tests := []struct {
		ns   string
		want []string
	}{
		{"shop", []string{"origin consumer", "shop/consumer/rule-0 prefix:/cart -> " + v2Out + "*1"}},
		{"demo", []string{"origin producer", "demo/producer/rule-0 prefix:/ -> " + echoLocal + "*1"}},
		{"other", []string{"origin producer", "demo/producer/rule-0 prefix:/ -> " + echoLocal + "*1"}},
	}
	for _, tt := range tests {
		t.Run(tt.ns, func(t *testing.T) {
			tab := p.Routes(tt.ns, &v.Services[0], echoPort)
			if diff := cmp.Diff(tt.want, summarizeTable(tab)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if f := p.Routes("shop", &v.Services[0], echoPort).Routes[0].Fault; f == nil || f.Policy != "shop/slow" {
		t.Errorf("consumer route's fault resolves in its namespace: %+v", f)
	}
	if p.RouteNamespace("shop") != "shop" || p.RouteNamespace("demo") != "" || p.RouteNamespace("other") != "" {
		t.Errorf("RouteNamespace: shop=%q demo=%q", p.RouteNamespace("shop"), p.RouteNamespace("demo"))
	}
}

func TestExplainRoute(t *testing.T) {
	v := plantest.View("east-1", withProducer(t, httpRoute("ab", "demo", `  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-group, value: b}]}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /api}}, {path: {type: RegularExpression, value: "/items/[0-9]+"}, queryParams: [{name: full, value: "1"}]}]
    backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: echo, port: 8080}]
  - matches: [{path: {type: Exact, value: /moved}, method: GET}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: elsewhere.example}}]
`)))
	p := New(testTD, topology.Policy{}, v)
	tests := []struct {
		name       string
		host       string
		port       int32
		method     string
		path       string
		headers    map[string]string
		wantRoute  string
		wantStatus int
	}{
		{"header match wins", "echo.demo.svc.clusterset.local", 8080, "GET", "/api/x", map[string]string{"X-Group": "b"}, "demo/ab/rule-0", 0},
		{"prefix without the header", "echo.demo", 8080, "GET", "/api", nil, "demo/ab/rule-1/match-0", 0},
		{"prefix is segment-wise", "echo.demo", 8080, "GET", "/apix", nil, "", 404},
		{"regex with query", "echo.demo:8080", 0, "GET", "/items/42?full=1", nil, "demo/ab/rule-1/match-1", 0},
		{"regex without query", "echo.demo:8080", 0, "GET", "/items/42", nil, "", 404},
		{"method and exact: redirect", "echo.demo", 8080, "GET", "/moved", nil, "demo/ab/rule-2", 302},
		{"method mismatch", "echo.demo", 8080, "POST", "/moved", nil, "", 404},
		{"service without routes: default", "echo-v2.demo", 8080, "GET", "/anything", nil, DefaultRouteName, 0},
		{"unknown service", "nope.demo", 8080, "GET", "/", nil, "", 404},
		{"TCP port", "store.demo", 5432, "GET", "/", nil, "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Explain("demo", tt.host, tt.port, tt.method, tt.path, tt.headers)
			if d.Route != tt.wantRoute || d.Status != tt.wantStatus || d.Reason == "" {
				t.Errorf("Explain = route %q status %d (%s), want %q %d", d.Route, d.Status, d.Reason, tt.wantRoute, tt.wantStatus)
			}
		})
	}
}

func TestProducerDecodeMemo(t *testing.T) {
	v := plantest.View("east-1", withProducer(t, resilience))
	p := New(testTD, topology.Policy{}, v)
	if errs := p.DecodeErrors(); len(errs) != 0 {
		t.Fatal(errs)
	}
	n := New(testTD, topology.Policy{}, v).ReuseDecoded(p)
	if len(n.decoded.m) != 1 {
		t.Errorf("memo carried %d digests, want 1", len(n.decoded.m))
	}
	bad := plantest.View("east-1", withProducer(t), func(v *catalog.View) {
		v.Services[0].Policies = &catalog.Policies{Digest: "x", Objects: []json.RawMessage{json.RawMessage(`{"kind":"Nope"}`)}}
	})
	pb := New(testTD, topology.Policy{}, bad)
	if errs := pb.DecodeErrors(); len(errs) != 1 {
		t.Errorf("DecodeErrors = %v, want one", errs)
	}
	if tab := pb.Routes("demo", &bad.Services[0], echoPort); tab.Origin != OriginDefault || len(tab.Notes) != 1 {
		t.Errorf("undecodable policies: table %+v, want the default route and a note", tab)
	}
}
