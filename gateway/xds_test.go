package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/hostport"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsclient/xdstest"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

func gatewayListener(t testing.TB, snis ...string) *listenerv3.Listener {
	return xdsresource.GatewayListener("0.0.0.0", 15443, snis)
}

// cla is the assignment of SNI cluster name: one locality at priority
// with the endpoints of eps (address -> health).
func cla(name string, eps map[string]corev3.HealthStatus, priority uint32) *endpointv3.ClusterLoadAssignment {
	var lbs []*endpointv3.LbEndpoint
	for addr, h := range eps {
		host, port, err := hostport.SplitPort(addr)
		if err != nil {
			panic(err)
		}
		lb := xdsresource.LbEndpoint(&xdsresource.Endpoint{Host: host, Port: port, Healthy: h == corev3.HealthStatus_HEALTHY})
		lb.HealthStatus = h // as sent: the gateway also reads statuses the control plane does not send
		lbs = append(lbs, lb)
	}
	return xdsresource.ClusterLoadAssignment(name, 140, []*endpointv3.LocalityLbEndpoints{
		xdsresource.Locality(priority, "", "", "", 1, lbs),
	})
}

func TestXDSHandlerBuildsRoutesAndRejectsBadSNI(t *testing.T) {
	gw, _ := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
	h := NewXDSHandler(gw)
	sni := echoSP.SNI()
	if err := h.OnUpdate(xdsclient.Update{TypeURL: xdsclient.EndpointType, Resources: map[string]protoMsg{
		sni: cla(sni, map[string]corev3.HealthStatus{"127.0.1.1:15006": corev3.HealthStatus_HEALTHY, "127.0.1.2:15006": corev3.HealthStatus_UNHEALTHY}, 0),
	}}); err != nil {
		t.Fatal(err)
	}
	if err := h.OnUpdate(xdsclient.Update{TypeURL: xdsclient.ListenerType, Resources: map[string]protoMsg{GatewayListener: gatewayListener(t, sni)}}); err != nil {
		t.Fatal(err)
	}
	want := []Route{{Service: echoSP, Endpoints: []Endpoint{{Address: "127.0.1.1:15006", Healthy: true}, {Address: "127.0.1.2:15006"}}}}
	got := gw.Routes()
	for i := range got {
		sortEndpoints(got[i].Endpoints)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}

	// A listener naming a non-fedmesh server name is rejected; routes stay.
	err := h.OnUpdate(xdsclient.Update{TypeURL: xdsclient.ListenerType, Resources: map[string]protoMsg{GatewayListener: gatewayListener(t, "evil.example.com")}})
	if err == nil {
		t.Fatal("bad SNI accepted")
	}
	if diff := cmp.Diff(want, sortedRoutes(gw)); diff != "" {
		t.Errorf("routes after a rejected update (-want +got):\n%s", diff)
	}
}

type protoMsg = proto.Message

func sortedRoutes(gw *Gateway) []Route {
	got := gw.Routes()
	for i := range got {
		sortEndpoints(got[i].Endpoints)
	}
	return got
}

func sortEndpoints(eps []Endpoint) {
	for i := 1; i < len(eps); i++ {
		for j := i; j > 0 && eps[j].Address < eps[j-1].Address; j-- {
			eps[j], eps[j-1] = eps[j-1], eps[j]
		}
	}
}

// TestGatewayFromRealXDSServer drives the handler through the real ADS
// client and a go-control-plane server, then keeps its routes when the
// server goes away.
func TestGatewayFromRealXDSServer(t *testing.T) {
	srv := xdstest.New(t, nil)
	sp := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	sni := sp.SNI()
	srv.Set("1", map[string][]types.Resource{
		resourcev3.ListenerType: {gatewayListener(t, sni)},
		resourcev3.EndpointType: {cla(sni, map[string]corev3.HealthStatus{"127.0.1.1:15006": corev3.HealthStatus_HEALTHY}, 0)},
	}, "gateway~east-1")

	gw, _ := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
	c, err := xdsclient.New(xdsclient.Config{
		Target: srv.Addr(), Insecure: true,
		Node:    &corev3.Node{Id: "gateway~east-1"},
		Types:   XDSTypes,
		Handler: NewXDSHandler(gw),
	}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	poll.True(t, 30*time.Second, "routes from xDS", func() bool { return len(gw.Routes()) == 1 && len(gw.Routes()[0].Endpoints) == 1 })
	srv.Stop()
	poll.True(t, 30*time.Second, "client notices the server is gone", func() bool { return !c.Status().Connected })
	if got := gw.Routes(); len(got) != 1 || got[0].Service != sp {
		t.Errorf("routes after the control plane left = %+v, want the last good ones", got)
	}
}

// TestReplicasActiveActive runs two gateway replicas from one control
// plane: both route the same exported services at once, and stopping one
// leaves the other serving. Nothing in a gateway depends on being alone.
func TestReplicasActiveActive(t *testing.T) {
	pki := newPKI(t)
	backend, stop := tlsBackend(t, pki, "b1")
	defer stop()
	host, port, _ := strings.Cut(backend, ":")
	srv := xdstest.New(t, nil)
	sni := echoSP.SNI()
	var replicas []*testGateway
	var ids []string
	for i := 0; i < 2; i++ {
		replicas = append(replicas, startGateway(t, Config{Cluster: "west-1"}))
		ids = append(ids, fmt.Sprintf("gateway~replica-%d~west-1", i))
	}
	cl := cla(sni, map[string]corev3.HealthStatus{host + ":" + port: corev3.HealthStatus_HEALTHY}, 0)
	srv.Set("1", map[string][]types.Resource{
		resourcev3.ListenerType: {gatewayListener(t, sni)},
		resourcev3.EndpointType: {cl},
	}, ids...)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i, r := range replicas {
		c, err := xdsclient.New(xdsclient.Config{
			Target: srv.Addr(), Insecure: true, Node: &corev3.Node{Id: ids[i]},
			Types: XDSTypes, Handler: NewXDSHandler(r.gw),
		}, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	for i, r := range replicas {
		poll.True(t, 30*time.Second, fmt.Sprintf("replica %d configured", i), func() bool { return len(r.gw.Routes()) == 1 })
	}
	// Both serve at the same time, each with its own connections.
	var conns []net.Conn
	for _, r := range replicas {
		c, err := dialTLS(t, pki, r.addr, sni)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		if got := roundTrip(t, c, fmt.Sprintf("via %d", i)); !strings.HasSuffix(got, fmt.Sprintf("via %d", i)) {
			t.Errorf("replica %d: %q", i, got)
		}
		c.Close()
	}
	// One replica drains; the other keeps serving new connections.
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	replicas[0].gw.Shutdown(sctx)
	c, err := dialTLS(t, pki, replicas[1].addr, sni)
	if err != nil {
		t.Fatalf("second replica after the first drained: %v", err)
	}
	defer c.Close()
	if got := roundTrip(t, c, "still"); !strings.HasSuffix(got, "still") {
		t.Errorf("second replica: %q", got)
	}
}
