package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

var td = spiffeid.RequireTrustDomainFromString("fed.test")

func update(typ, ver string, rs ...types.Resource) xdsclient.Update {
	m := map[string]proto.Message{}
	for _, r := range rs {
		switch v := r.(type) {
		case interface{ GetClusterName() string }:
			m[v.GetClusterName()] = r
		case interface{ GetName() string }:
			m[v.GetName()] = r
		}
	}
	return xdsclient.Update{TypeURL: typ, Version: ver, Resources: m}
}

func TestBuild(t *testing.T) {
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	db := naming.ServicePort{Namespace: "demo", Name: "db", Port: 5432}
	id := "spiffe://fed.test/ns/demo/sa/echo"
	b := config.NewBuilder(td)
	steps := []xdsclient.Update{
		update(xdsclient.ClusterType, "1",
			meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true, Identities: []string{id}, MaxRequests: 7}),
			meshtest.OutboundCluster(db, meshtest.ClusterOpts{Identities: []string{id}})),
		update(xdsclient.EndpointType, "1", meshtest.Assignment(echo,
			meshtest.Endpoint{Addr: "127.0.1.2:15006", Priority: 0, Cluster: "east-1", Identity: id, Healthy: true, Workload: "echo-v1"},
			meshtest.Endpoint{Addr: "127.0.0.13:15443", Priority: 1, Cluster: "west-1", Identity: id, SNI: echo.SNI(), Healthy: false})),
		update(xdsclient.ListenerType, "1", meshtest.OutboundListener(echo, true), meshtest.OutboundListener(db, false)),
		update(xdsclient.RouteType, "1", meshtest.Routes(8080, 3*time.Second, 2, echo)),
	}
	var snap *config.Snapshot
	for _, u := range steps {
		var err error
		if snap, err = b.Apply(u); err != nil {
			t.Fatalf("apply %s: %v", u.TypeURL, err)
		}
	}
	got, ok := snap.Lookup("Echo.Demo.", 8080)
	if !ok {
		t.Fatal("echo.demo:8080 not found")
	}
	want := config.Service{
		Port: echo, Cluster: echo.OutboundCluster(), LB: config.LeastRequest, Protocol: config.HTTP, SNI: echo.SNI(),
		Identities: []string{id}, ConnectTimeout: 5 * time.Second, Timeout: 3 * time.Second,
		Retry:          config.RetryPolicy{Retries: 2, On5xx: true, OnConnectFailure: true, HostAttempts: 3},
		Limits:         config.Limits{MaxConnections: 1024, MaxPending: 1024, MaxRequests: 7, MaxRetries: 3},
		Outlier:        config.Outlier{Consecutive5xx: 5, ConsecutiveGatewayFailure: 5, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 100},
		PanicThreshold: 50,
		Endpoints: []config.Endpoint{
			{Address: "127.0.1.2:15006", Priority: 0, Weight: 1, Healthy: true, Cluster: "east-1", Locality: localityOf("east-1"), SNI: echo.SNI(), Identity: id, Workload: "echo-v1"},
			{Address: "127.0.0.13:15443", Priority: 1, Weight: 1, Healthy: false, Cluster: "west-1", Locality: localityOf("west-1"), SNI: echo.SNI(), Identity: id, Remote: true},
		},
	}
	got2 := *got
	got2.Version = ""
	if diff := cmp.Diff(want, got2); diff != "" {
		t.Errorf("echo service (-want +got):\n%s", diff)
	}
	if dbSvc, ok := snap.Lookup("db.demo.svc.clusterset.local", 5432); !ok || dbSvc.Protocol != config.TCP {
		t.Errorf("db: %v %v, want a TCP service", dbSvc, ok)
	}
	if _, ok := snap.Lookup("echo.demo", 9999); ok {
		t.Error("echo found on a port it does not have")
	}
	if !snap.IsServiceName("echo.demo.svc.clusterset.local") || snap.IsServiceName("nope.demo") {
		t.Error("IsServiceName is wrong")
	}
}

func TestApplyRejectsAndKeepsLastGood(t *testing.T) {
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	id := "spiffe://fed.test/ns/demo/sa/echo"
	good := update(xdsclient.ClusterType, "1", meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true, Identities: []string{id}}))
	badName := meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true})
	badName.Name = "outbound|8080||echo.demo.example.com"
	tests := []struct {
		name string
		u    xdsclient.Update
		want string
	}{
		{name: "cluster name not outbound", u: update(xdsclient.ClusterType, "2", badName), want: "does not end in"},
		{name: "identity not SPIFFE", u: update(xdsclient.ClusterType, "2", meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true, Identities: []string{"https://x"}})), want: "not a SPIFFE ID"},
		{name: "endpoint identity", u: update(xdsclient.EndpointType, "2", meshtest.Assignment(echo, meshtest.Endpoint{Addr: "127.0.0.1:1", Identity: "bad", Healthy: true})), want: `identity "bad"`},
		{name: "endpoint sni", u: update(xdsclient.EndpointType, "2", meshtest.Assignment(echo, meshtest.Endpoint{Addr: "127.0.0.1:1", Identity: id, SNI: "x.example.com", Healthy: true})), want: "bad SNI"},
		{name: "endpoint hostname not a workload name", u: update(xdsclient.EndpointType, "2", meshtest.Assignment(echo, meshtest.Endpoint{Addr: "127.0.0.1:1", Identity: id, Healthy: true, Workload: "Echo V1"})), want: `endpoint 127.0.0.1:1: hostname "Echo V1" is not a workload name`},
		{name: "endpoint hostname too long", u: update(xdsclient.EndpointType, "2", meshtest.Assignment(echo, meshtest.Endpoint{Addr: "127.0.0.1:1", Identity: id, Healthy: true, Workload: strings.Repeat("a", 254)})), want: "endpoint 127.0.0.1:1: hostname"},
		{name: "certificate without PEM", u: update(xdsclient.SecretType, "2", meshtest.Secrets(nil, nil, nil)[0]), want: "tls: failed to find any PEM data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := config.NewBuilder(td)
			before, err := b.Apply(good)
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Apply(tt.u)
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply() error = %v, want ErrInvalid containing %q", err, tt.want)
			}
			if b.Current() != before {
				t.Error("a rejected update changed the current snapshot")
			}
		})
	}
}

func localityOf(cluster string) (l config.LocalityT) {
	l.Region, l.Zone, l.Cluster = "r", "z", cluster
	return l
}
