package xds

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/clusterset"
	"github.com/fedmesh/fedmesh/controlplane/plan/plantest"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

// The shared test federation (plantest.View) under short names.
const testTD = plantest.TrustDomain

var (
	locEast1 = plantest.East1
	locWest1 = plantest.West1
	ep       = plantest.Endpoint
	testView = plantest.View
)

func sidecarNode(cluster string, loc topology.Locality) Node {
	return Node{ID: "sidecar~" + cluster, Role: naming.RoleSidecar, Cluster: cluster, Namespace: "demo",
		ServiceAccount: "client", Workload: "client", Locality: loc}
}

// summarizeCLA renders an assignment as one line per locality:
// "p0 us-east/a/east-1 w1: 127.0.1.1:15006 HEALTHY, ..." with the SNI and
// weight of gateway entries.
func summarizeCLA(cla *endpointv3.ClusterLoadAssignment) []string {
	var out []string
	for _, l := range cla.GetEndpoints() {
		var eps []string
		for _, lb := range l.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			s := fmt.Sprintf("%s:%d %s", sa.GetAddress(), sa.GetPortValue(), lb.GetHealthStatus())
			md := lb.GetMetadata().GetFilterMetadata()[naming.MetadataNamespace].GetFields()
			if sni := md[naming.EndpointSNI].GetStringValue(); sni != "" {
				s += fmt.Sprintf(" w%d sni=%s", lb.GetLoadBalancingWeight().GetValue(), sni)
			}
			eps = append(eps, s)
		}
		loc := topology.Locality{Region: l.GetLocality().GetRegion(), Zone: l.GetLocality().GetZone(), Cluster: l.GetLocality().GetSubZone()}
		out = append(out, fmt.Sprintf("p%d %s w%d: %s", l.GetPriority(), loc, l.GetLoadBalancingWeight().GetValue(), strings.Join(eps, ", ")))
	}
	return out
}

func resourcesOf(t *testing.T, b *Built, typ resourcev3.Type) map[string]types.Resource {
	t.Helper()
	return b.Snapshot.GetResources(typ)
}

func mustBuild(t *testing.T, v *catalog.View, n Node, sec *Secrets) *Built {
	t.Helper()
	return mustBuildWithPolicies(t, v, nil, n, sec)
}

func mustBuildWithPolicies(t *testing.T, v *catalog.View, policies []policy.AuthorizationPolicy, n Node, sec *Secrets) *Built {
	t.Helper()
	g, err := NewGeneratorWithPolicies(DefaultSettings(testTD), v, policies)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Build(n, sec)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if err := b.Snapshot.Consistent(); err != nil {
		t.Fatalf("snapshot not consistent: %v", err)
	}
	return b
}

const echoCluster = plantest.EchoCluster
const echoSNI = plantest.EchoSNI

func TestEndpointIdentityMetadata(t *testing.T) {
	b := mustBuild(t, testView("east-1"), sidecarNode("east-1", locEast1), nil)
	cla := resourcesOf(t, b, resourcev3.EndpointType)[echoCluster].(*endpointv3.ClusterLoadAssignment)
	var got []string
	for _, l := range cla.GetEndpoints() {
		for _, lb := range l.GetLbEndpoints() {
			md := lb.GetMetadata().GetFilterMetadata()[naming.MetadataNamespace].GetFields()
			got = append(got, md[naming.EndpointCluster].GetStringValue()+" "+md[naming.EndpointIdentity].GetStringValue())
		}
	}
	want := []string{
		"east-1 spiffe://fedmesh.test/ns/demo/sa/echo",
		"east-1 spiffe://fedmesh.test/ns/demo/sa/echo",
		"east-2 spiffe://fedmesh.test/ns/demo/sa/echo",
		"west-1 spiffe://fedmesh.test/ns/demo/sa/echo",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
}

func TestSidecarResourceNames(t *testing.T) {
	app := func(v *catalog.View) {
		// the client workload also serves echo in east-1
		e := ep("127.0.1.100", locEast1, true, "")
		e.Workload = "client"
		v.Services[0].Endpoints = append(v.Services[0].Endpoints, e)
	}
	n := sidecarNode("east-1", locEast1)
	n.AppPorts = map[string]int32{"http": 18080}
	sec := &Secrets{ChainPEM: []byte("chain"), KeyPEM: []byte("key"), BundlePEM: []byte("bundle")}
	b := mustBuild(t, testView("east-1", app), n, sec)
	names := func(typ resourcev3.Type) []string {
		var out []string
		for name := range b.Snapshot.GetResources(typ) {
			out = append(out, name)
		}
		sort.Strings(out)
		return out
	}
	got := map[string][]string{
		"clusters":  names(resourcev3.ClusterType),
		"endpoints": names(resourcev3.EndpointType),
		"listeners": names(resourcev3.ListenerType),
		"routes":    names(resourcev3.RouteType),
		"secrets":   names(resourcev3.SecretType),
	}
	want := map[string][]string{
		"clusters":  {"inbound|8080||echo.demo.svc.clusterset.local", "outbound|5432||store.demo.svc.clusterset.local", echoCluster},
		"endpoints": {"outbound|5432||store.demo.svc.clusterset.local", echoCluster},
		"listeners": {"inbound|127.0.1.100:15006", "outbound|5432||store.demo.svc.clusterset.local", echoCluster},
		"routes":    {"8080"},
		"secrets":   {naming.SecretRootCA, naming.SecretWorkload},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("resource names (-want +got):\n%s", diff)
	}

	// The inbound cluster points at the app port from node metadata.
	in := b.Snapshot.GetResources(resourcev3.ClusterType)["inbound|8080||echo.demo.svc.clusterset.local"].(*clusterv3.Cluster)
	sa := in.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if diff := cmp.Diff("127.0.1.100:18080", fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())); diff != "" {
		t.Errorf("inbound app address (-want +got):\n%s", diff)
	}
	// The inbound listener matches the SNI and requires client certs.
	l := b.Snapshot.GetResources(resourcev3.ListenerType)["inbound|127.0.1.100:15006"].(*listenerv3.Listener)
	fc := l.GetFilterChains()[0]
	if diff := cmp.Diff([]string{echoSNI}, fc.GetFilterChainMatch().GetServerNames()); diff != "" {
		t.Errorf("inbound server names (-want +got):\n%s", diff)
	}
	var dtc tlsv3.DownstreamTlsContext
	if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(&dtc); err != nil {
		t.Fatal(err)
	}
	if !dtc.GetRequireClientCertificate().GetValue() {
		t.Error("inbound TLS does not require client certificates")
	}

	// The outbound cluster expects the endpoints' identities and sends the SNI.
	out := b.Snapshot.GetResources(resourcev3.ClusterType)[echoCluster].(*clusterv3.Cluster)
	var utc tlsv3.UpstreamTlsContext
	if err := out.GetTransportSocket().GetTypedConfig().UnmarshalTo(&utc); err != nil {
		t.Fatal(err)
	}
	var sans []string
	for _, m := range utc.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
		sans = append(sans, m.GetSanType().String()+" "+m.GetMatcher().GetExact())
	}
	if diff := cmp.Diff([]string{"URI spiffe://fedmesh.test/ns/demo/sa/echo"}, sans); diff != "" {
		t.Errorf("expected SANs (-want +got):\n%s", diff)
	}
	if utc.GetSni() != echoSNI {
		t.Errorf("upstream SNI = %q, want %q", utc.GetSni(), echoSNI)
	}
	if out.GetOutlierDetection() == nil || out.GetCircuitBreakers() == nil || out.GetConnectTimeout().AsDuration() == 0 {
		t.Error("outbound cluster lacks outlier detection, circuit breakers or connect timeout")
	}

	// HTTP listener uses RDS "8080"; the tcp one a tcp_proxy.
	httpL := b.Snapshot.GetResources(resourcev3.ListenerType)[echoCluster].(*listenerv3.Listener)
	var hcm hcmv3.HttpConnectionManager
	if err := httpL.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatalf("echo listener is not HTTP: %v", err)
	}
	if hcm.GetRds().GetRouteConfigName() != "8080" {
		t.Errorf("route config name = %q, want 8080", hcm.GetRds().GetRouteConfigName())
	}
	tcpL := b.Snapshot.GetResources(resourcev3.ListenerType)["outbound|5432||store.demo.svc.clusterset.local"].(*listenerv3.Listener)
	var tp tcpproxyv3.TcpProxy
	if err := tcpL.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&tp); err != nil {
		t.Fatalf("store listener is not tcp_proxy: %v", err)
	}
	rc := b.Snapshot.GetResources(resourcev3.RouteType)["8080"].(*routev3.RouteConfiguration)
	csIP := clusterset.FromView(clusterset.DefaultPrefix, testView("east-1", app))[catalog.ServiceKey{Namespace: "demo", Name: "echo"}].String()
	wantDomains := []string{"echo.demo.svc.clusterset.local", "echo.demo.svc.clusterset.local:8080", "echo.demo", "echo.demo:8080", csIP, csIP + ":8080"}
	if diff := cmp.Diff(wantDomains, rc.GetVirtualHosts()[0].GetDomains()); diff != "" {
		t.Errorf("virtual host domains (-want +got):\n%s", diff)
	}
	if rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetRetryPolicy() == nil {
		t.Error("route has no retry policy")
	}
}

func TestGatewayOnlyExportsLocal(t *testing.T) {
	gw := Node{ID: "gateway~east-1", Role: naming.RoleGateway, Cluster: "east-1", Locality: locEast1}
	b := mustBuild(t, testView("east-1"), gw, nil)
	var clusters []string
	for name := range b.Snapshot.GetResources(resourcev3.ClusterType) {
		clusters = append(clusters, name)
	}
	if diff := cmp.Diff([]string{echoSNI}, clusters); diff != "" {
		t.Errorf("gateway clusters (-want +got):\n%s", diff)
	}
	cla := b.Snapshot.GetResources(resourcev3.EndpointType)[echoSNI].(*endpointv3.ClusterLoadAssignment)
	want := []string{"p0 us-east/a/east-1 w1: 127.0.1.1:15006 HEALTHY, 127.0.1.2:15006 UNHEALTHY"}
	if diff := cmp.Diff(want, summarizeCLA(cla)); diff != "" {
		t.Errorf("gateway endpoints (-want +got):\n%s", diff)
	}
	l := b.Snapshot.GetResources(resourcev3.ListenerType)[GatewayListenerName].(*listenerv3.Listener)
	var sni []string
	for _, fc := range l.GetFilterChains() {
		sni = append(sni, fc.GetFilterChainMatch().GetServerNames()...)
	}
	if diff := cmp.Diff([]string{echoSNI}, sni); diff != "" {
		t.Errorf("gateway server names (-want +got):\n%s", diff)
	}
	if len(b.Snapshot.GetResources(resourcev3.SecretType)) != 0 {
		t.Error("gateway without a certificate yet received secrets")
	}
	// With its certificate, a gateway gets both secrets, as a sidecar:
	// its SVID answers probes of the gateway itself, the bundle verifies
	// the control plane after a root rotation.
	sec := &Secrets{ChainPEM: []byte("chain"), KeyPEM: []byte("key"), BundlePEM: []byte("bundle")}
	b = mustBuild(t, testView("east-1"), gw, sec)
	var secrets []string
	for name := range b.Snapshot.GetResources(resourcev3.SecretType) {
		secrets = append(secrets, name)
	}
	slices.Sort(secrets)
	if diff := cmp.Diff([]string{naming.SecretRootCA, naming.SecretWorkload}, secrets); diff != "" {
		t.Errorf("gateway secrets (-want +got):\n%s", diff)
	}
}

func TestProxylessListeners(t *testing.T) {
	n := Node{ID: "grpc", Role: naming.RoleProxyless, Cluster: "east-1", Namespace: "demo", ServiceAccount: "client", Locality: locEast1}
	b := mustBuild(t, testView("east-1"), n, nil)
	var names []string
	for name, r := range b.Snapshot.GetResources(resourcev3.ListenerType) {
		if r.(*listenerv3.Listener).GetApiListener() == nil {
			t.Errorf("listener %s is not an API listener", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	want := []string{
		"echo.demo.svc.clusterset.local", "echo.demo.svc.clusterset.local:8080",
		"store.demo.svc.clusterset.local", "store.demo.svc.clusterset.local:5432",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	c := b.Snapshot.GetResources(resourcev3.ClusterType)[echoCluster].(*clusterv3.Cluster)
	if c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN {
		t.Errorf("proxyless cluster: lb %v; want ROUND_ROBIN", c.GetLbPolicy())
	}
	// mTLS from the bootstrap's certificate provider (proxyless_render_test.go).
	if c.GetTransportSocket() == nil {
		t.Error("proxyless cluster has no transport socket")
	}
}

func TestVersionsChangeOnlyWithContent(t *testing.T) {
	n := sidecarNode("east-1", locEast1)
	a := mustBuild(t, testView("east-1"), n, nil)
	same := mustBuild(t, testView("east-1"), n, nil)
	changed := mustBuild(t, testView("east-1", func(v *catalog.View) {
		v.Services[0].Endpoints[1].Healthy = true
	}), n, nil)
	for _, typ := range []resourcev3.Type{resourcev3.ClusterType, resourcev3.ListenerType, resourcev3.EndpointType} {
		if a.Snapshot.GetVersion(typ) != same.Snapshot.GetVersion(typ) {
			t.Errorf("%s: equal views give versions %s and %s", typ, a.Snapshot.GetVersion(typ), same.Snapshot.GetVersion(typ))
		}
	}
	if a.Snapshot.GetVersion(resourcev3.EndpointType) == changed.Snapshot.GetVersion(resourcev3.EndpointType) {
		t.Error("endpoint version did not change with an endpoint's health")
	}
	if a.Snapshot.GetVersion(resourcev3.ClusterType) != changed.Snapshot.GetVersion(resourcev3.ClusterType) {
		t.Error("cluster version changed although clusters did not")
	}
}

func TestInvalidSnapshotRefused(t *testing.T) {
	v := testView("east-1", func(v *catalog.View) {
		v.Services[0].Endpoints[0].Address = "" // would be an empty socket address
	})
	g, err := NewGenerator(DefaultSettings(testTD), v)
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Build(sidecarNode("east-1", locEast1), nil)
	var ve *ValidationError
	if !errors.Is(err, ErrInvalidSnapshot) || !errors.As(err, &ve) {
		t.Fatalf("Build error = %v, want a ValidationError", err)
	}
	if diff := cmp.Diff("resource "+echoCluster, ve.Reason+" "+ve.Resource); diff != "" {
		t.Errorf("validation error (-want +got):\n%s", diff)
	}
}

func TestSettingsRejected(t *testing.T) {
	tests := []struct {
		name string
		s    Settings
		want string
	}{
		{name: "no trust domain", s: Settings{}, want: "settings: trust domain is empty"},
		{name: "ejection above 100", s: Settings{TrustDomain: testTD, MaxEjectionPercent: 101}, want: "settings: max ejection percent 101 is above 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGenerator(tt.s, nil)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
