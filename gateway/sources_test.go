package gateway

import (
	"crypto/tls"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// dialFrom is dialTLS from a chosen loopback source address.
func dialFrom(t *testing.T, pki *testPKI, src, addr, sni string) *tls.Conn {
	t.Helper()
	cert := pki.issue(t, "spiffe://fedmesh.test/ns/demo/sa/client")
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: sni, Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	return c
}

// series returns name's series as "label=value,..." -> value.
func series(t *testing.T, tg *testGateway, name string) map[string]float64 {
	t.Helper()
	mfs, err := tg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var kv []string
			for _, l := range m.GetLabel() {
				kv = append(kv, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(kv)
			out[strings.Join(kv, ",")] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestSourceClusterLabels: the gateway labels connections and bytes with
// the destination service and the federation member whose addresses
// (sent by the control plane in the listener's metadata) the peer
// address belongs to, "unknown" for any other; bad metadata is refused
// and the last good table kept.
func TestSourceClusterLabels(t *testing.T) {
	pki := newPKI(t)
	addr, stop := tlsBackend(t, pki, "b1")
	defer stop()
	tg := startGateway(t, Config{Cluster: "west-1"})
	h := NewXDSHandler(tg.gw)
	sni := echoSP.SNI()
	host, port, _ := net.SplitHostPort(addr)
	if err := h.OnUpdate(xdsclient.Update{TypeURL: xdsclient.EndpointType, Resources: map[string]protoMsg{
		sni: cla(sni, map[string]corev3.HealthStatus{net.JoinHostPort(host, port): corev3.HealthStatus_HEALTHY}, 0),
	}}); err != nil {
		t.Fatal(err)
	}
	l := xdsresource.WithGatewaySourceClusters(gatewayListener(t, sni), map[string][]string{
		"east-1": {"127.0.0.2"}, "east-2": {"127.0.3.0/24", "127.0.3.9"},
	})
	if err := h.OnUpdate(xdsclient.Update{TypeURL: xdsclient.ListenerType, Resources: map[string]protoMsg{GatewayListener: l}}); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"127.0.0.2", "127.0.3.7", "127.0.3.9", "127.0.0.1"} {
		c := dialFrom(t, pki, src, tg.addr, sni)
		if got := roundTrip(t, c, "hi"); !strings.HasPrefix(got, "b1 ") {
			t.Fatalf("reply %q", got)
		}
		c.Close()
	}
	want := map[string]float64{
		"destination_service=echo.demo.svc.clusterset.local,source_cluster=east-1":  1,
		"destination_service=echo.demo.svc.clusterset.local,source_cluster=east-2":  2,
		"destination_service=echo.demo.svc.clusterset.local,source_cluster=unknown": 1,
	}
	if diff := cmp.Diff(want, series(t, tg, "fedmesh_gateway_connections_total")); diff != "" {
		t.Errorf("connections (-want +got):\n%s", diff)
	}
	var bytesIn []string
	poll.True(t, 30*time.Second, "bytes counted for the four connections", func() bool {
		bytesIn = nil
		for k, v := range series(t, tg, "fedmesh_gateway_bytes_total") {
			if strings.HasPrefix(k, "destination_service=echo.demo.svc.clusterset.local,direction=in,") && v > 0 {
				bytesIn = append(bytesIn, k)
			}
		}
		return len(bytesIn) == 3
	})

	// Bad metadata: refused, counted, the table kept.
	bad := xdsresource.WithGatewaySourceClusters(gatewayListener(t, sni), map[string][]string{"east-1": {"not an address"}})
	if err := h.OnUpdate(xdsclient.Update{TypeURL: xdsclient.ListenerType, Resources: map[string]protoMsg{GatewayListener: bad}}); err == nil || !strings.Contains(err.Error(), "not an address") {
		t.Errorf("bad source clusters: err = %v", err)
	}
	if n := counterValue(tg.gw.metrics.configRejected); n != 1 {
		t.Errorf("config rejected = %v, want 1", n)
	}
	c := dialFrom(t, pki, "127.0.0.2", tg.addr, sni)
	roundTrip(t, c, "again")
	c.Close()
	if n := series(t, tg, "fedmesh_gateway_connections_total")["destination_service=echo.demo.svc.clusterset.local,source_cluster=east-1"]; n != 2 {
		t.Errorf("east-1 connections after the bad update = %v, want 2", n)
	}
}
