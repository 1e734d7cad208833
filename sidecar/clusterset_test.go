package sidecar_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// echoClusterSetIP is the ClusterSetIP the test's control plane gives
// echo.demo, as controlplane/xds renders it: a domain of its virtual host.
// Nothing is dialled at it: the client reaches the sidecar's proxy
// listener, which matches the request by it.
const echoClusterSetIP = "10.254.7.9"

// TestClusterSetIP: the sidecar's DNS answers a service's ClusterSetIP
// when it has one (Config.DNSClusterSetIP), its ServiceIP when it has
// none, NXDOMAIN for a name that is not imported; and a request sent to
// ClusterSetIP:port is routed to the service.
func TestClusterSetIP(t *testing.T) {
	p := newPairWith(t, wopts{clusterSetDNS: true})
	hs, gs := svc("echo", p.httpP), svc("echo-grpc", p.grpcP)
	// The control plane adds echo's ClusterSetIP to its virtual host.
	p.res[rdsT] = []types.Resource{
		xdsresource.RouteConfiguration(strconv.Itoa(int(p.httpP)), []*routev3.VirtualHost{xdsresource.VirtualHost(hs, xdsresource.Route{
			Timeout: 15 * time.Second, Retries: 2,
			ExtraDomains: []string{echoClusterSetIP, echoClusterSetIP + ":" + strconv.Itoa(int(p.httpP))},
		})}),
		xdsresource.RouteConfiguration(strconv.Itoa(int(p.grpcP)), []*routev3.VirtualHost{xdsresource.VirtualHost(gs, xdsresource.Route{Timeout: 15 * time.Second, Retries: 2})}),
	}
	p.m.set("client", p.res)

	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, p.client.sc.DNSAddr())
	}}
	lookup := func(name string) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return r.LookupHost(ctx, name)
	}
	poll.Until(t, 30*time.Second, "echo resolves to its ClusterSetIP", func() error {
		for _, name := range []string{"echo.demo.svc.clusterset.local", "echo.demo"} {
			addrs, err := lookup(name)
			if err != nil {
				return err
			}
			if d := cmp.Diff([]string{echoClusterSetIP}, addrs); d != "" {
				return errors.New(name + " (-want +got):\n" + d)
			}
		}
		return nil
	})
	t.Run("an import without a ClusterSetIP resolves to the ServiceIP", func(t *testing.T) {
		addrs, err := lookup("echo-grpc.demo.svc.clusterset.local")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{serviceIP}, addrs); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})
	t.Run("a name that is not imported is NXDOMAIN", func(t *testing.T) {
		_, err := lookup("nope.demo.svc.clusterset.local")
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("lookup of a non-import = %v, want NXDOMAIN (not found)", err)
		}
	})
	t.Run("a request to ClusterSetIP:port reaches the service", func(t *testing.T) {
		want := "echo " + p.m.ca.Workload("demo", "client") + "\n"
		code, body, err := get(proxyClient(p.client), "http://"+echoClusterSetIP+":"+strconv.Itoa(int(p.httpP))+"/")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, body); d != "" || code != 200 {
			t.Errorf("code %d, body (-want +got):\n%s", code, d)
		}
		// Another port of the ClusterSetIP is no service.
		code, _, err = get(proxyClient(p.client), "http://"+echoClusterSetIP+":"+strconv.Itoa(int(p.grpcP))+"/")
		if err != nil || code != 404 {
			t.Errorf("ClusterSetIP on the gRPC port: code %d err %v, want 404", code, err)
		}
	})
}
