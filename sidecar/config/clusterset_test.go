package config_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// A ClusterSetIP among a virtual host's domains (as the control plane
// renders it) finds the service by destination address and port, and is
// the service's ClusterSetIP for DNS; a service without one has none.
func TestClusterSetIP(t *testing.T) {
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	web := naming.ServicePort{Namespace: "demo", Name: "web", Port: 8080}
	v6 := naming.ServicePort{Namespace: "shop", Name: "cart", Port: 8080}
	id := "spiffe://fed.test/ns/demo/sa/echo"
	vh := func(sp naming.ServicePort, extra ...string) *routev3.VirtualHost {
		return xdsresource.VirtualHost(sp, xdsresource.Route{Timeout: time.Second, ExtraDomains: extra})
	}
	b := config.NewBuilder(td)
	var snap *config.Snapshot
	for _, u := range []xdsclient.Update{
		update(xdsclient.ClusterType, "1",
			meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true, Identities: []string{id}}),
			meshtest.OutboundCluster(web, meshtest.ClusterOpts{HTTP: true, Identities: []string{id}}),
			meshtest.OutboundCluster(v6, meshtest.ClusterOpts{HTTP: true, Identities: []string{id}})),
		update(xdsclient.ListenerType, "1", meshtest.OutboundListener(echo, true)),
		update(xdsclient.RouteType, "1", xdsresource.RouteConfiguration("8080", []*routev3.VirtualHost{
			vh(echo, "10.254.7.9", "10.254.7.9:8080"),
			vh(web),
			vh(v6, "[fd00:fed::7]", "[fd00:fed::7]:8080"),
		})),
	} {
		var err error
		if snap, err = b.Apply(u); err != nil {
			t.Fatalf("apply %s: %v", u.TypeURL, err)
		}
	}
	for _, tt := range []struct {
		name   string
		host   string
		port   int32
		want   naming.ServicePort
		wantOK bool
	}{
		{"IPv4 ClusterSetIP and port", "10.254.7.9", 8080, echo, true},
		{"IPv6 ClusterSetIP and port", "fd00:fed::7", 8080, v6, true},
		{"ClusterSetIP on another port", "10.254.7.9", 9090, naming.ServicePort{}, false},
		{"an address no service has", "10.254.7.10", 8080, naming.ServicePort{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc, ok := snap.Lookup(tt.host, tt.port)
			if ok != tt.wantOK || (ok && svc.Port != tt.want) {
				t.Fatalf("Lookup(%s, %d) = %v, %t; want %v, %t", tt.host, tt.port, svc, ok, tt.want, tt.wantOK)
			}
		})
	}
	for _, tt := range []struct {
		host   string
		want   netip.Addr
		wantOK bool
	}{
		{"echo.demo.svc.clusterset.local", netip.MustParseAddr("10.254.7.9"), true},
		{"Echo.Demo.", netip.MustParseAddr("10.254.7.9"), true},
		{"cart.shop.svc.clusterset.local", netip.MustParseAddr("fd00:fed::7"), true},
		{"web.demo.svc.clusterset.local", netip.Addr{}, false},
		{"nope.demo.svc.clusterset.local", netip.Addr{}, false},
	} {
		got, ok := snap.ClusterSetIP(tt.host)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ClusterSetIP(%q) = %s, %t; want %s, %t", tt.host, got, ok, tt.want, tt.wantOK)
		}
	}
}

// The local cluster's ClusterIPs come after the ClusterSetIP: among an
// HTTP service's virtual host domains, and in an opaque TCP port's
// filter chain match (prefix_ranges, where a TCP service has its only
// addresses). Both find the service by destination; DNS answers the
// first, the ClusterSetIP.
func TestClusterIP(t *testing.T) {
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	db := naming.ServicePort{Namespace: "demo", Name: "db", Port: 5432}
	id := "spiffe://fed.test/ns/demo/sa/echo"
	b := config.NewBuilder(td)
	var snap *config.Snapshot
	for _, u := range []xdsclient.Update{
		update(xdsclient.ClusterType, "1",
			meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true, Identities: []string{id}}),
			meshtest.OutboundCluster(db, meshtest.ClusterOpts{Identities: []string{id}})),
		update(xdsclient.ListenerType, "1", meshtest.OutboundListener(echo, true),
			meshtest.OutboundListenerAt(db, false, "10.254.0.5", "10.96.0.15", "fd00:96::15")),
		update(xdsclient.RouteType, "1", xdsresource.RouteConfiguration("8080", []*routev3.VirtualHost{
			xdsresource.VirtualHost(echo, xdsresource.Route{Timeout: time.Second, ExtraDomains: []string{
				"10.254.7.9", "10.254.7.9:8080", "10.96.0.10", "10.96.0.10:8080"}}),
		})),
	} {
		var err error
		if snap, err = b.Apply(u); err != nil {
			t.Fatalf("apply %s: %v", u.TypeURL, err)
		}
	}
	for _, tt := range []struct {
		host   string
		port   int32
		want   naming.ServicePort
		wantOK bool
	}{
		{"10.254.7.9", 8080, echo, true},
		{"10.96.0.10", 8080, echo, true},
		{"10.254.0.5", 5432, db, true},
		{"10.96.0.15", 5432, db, true},
		{"fd00:96::15", 5432, db, true},
		{"10.96.0.15", 8080, naming.ServicePort{}, false},
		{"10.96.0.16", 5432, naming.ServicePort{}, false},
	} {
		svc, ok := snap.Lookup(tt.host, tt.port)
		if ok != tt.wantOK || (ok && svc.Port != tt.want) {
			t.Errorf("Lookup(%s, %d) = %v, %t; want %v, %t", tt.host, tt.port, svc, ok, tt.want, tt.wantOK)
		}
	}
	for host, want := range map[string]string{"echo.demo.svc.clusterset.local": "10.254.7.9", "db.demo.svc.clusterset.local": "10.254.0.5"} {
		if got, ok := snap.ClusterSetIP(host); !ok || got.String() != want {
			t.Errorf("ClusterSetIP(%q) = %s, %t; want %s", host, got, ok, want)
		}
	}
	if svc := snap.Services[db]; svc == nil || svc.Protocol != config.TCP {
		t.Errorf("db: %+v, want an opaque TCP service", svc)
	}
}

// A prefix range that is not an address is refused with the listener
// named, and the last good snapshot stays.
func TestOutboundPrefixRangeInvalid(t *testing.T) {
	db := naming.ServicePort{Namespace: "demo", Name: "db", Port: 5432}
	b := config.NewBuilder(td)
	if _, err := b.Apply(update(xdsclient.ClusterType, "1", meshtest.OutboundCluster(db, meshtest.ClusterOpts{Identities: []string{"spiffe://fed.test/ns/demo/sa/db"}}))); err != nil {
		t.Fatal(err)
	}
	l := meshtest.OutboundListenerAt(db, false, "10.96.0.15")
	l.FilterChains[0].FilterChainMatch.PrefixRanges[0].AddressPrefix = "db.example"
	_, err := b.Apply(update(xdsclient.ListenerType, "2", l))
	if err == nil || !strings.Contains(err.Error(), db.OutboundCluster()) || !strings.Contains(err.Error(), "db.example") {
		t.Fatalf("apply a bad prefix range: %v, want an error naming the listener and the range", err)
	}
}

// FuzzOutboundPrefixRange: any prefix range in an outbound listener is
// refused with an error or taken; a taken full-length range finds the
// service by that address, and no other range finds anything.
func FuzzOutboundPrefixRange(f *testing.F) {
	f.Add("10.96.0.15", uint32(32))
	f.Add("fd00:96::15", uint32(128))
	f.Add("10.96.0.0", uint32(12))
	f.Add("db.example", uint32(32))
	f.Add("::ffff:10.1.2.3", uint32(128))
	db := naming.ServicePort{Namespace: "demo", Name: "db", Port: 5432}
	f.Fuzz(func(t *testing.T, addr string, plen uint32) {
		b := config.NewBuilder(td)
		if _, err := b.Apply(update(xdsclient.ClusterType, "1", meshtest.OutboundCluster(db, meshtest.ClusterOpts{Identities: []string{"spiffe://fed.test/ns/demo/sa/db"}}))); err != nil {
			t.Fatal(err)
		}
		l := meshtest.OutboundListenerAt(db, false, "10.254.0.1")
		r := l.FilterChains[0].FilterChainMatch.PrefixRanges[0]
		r.AddressPrefix = addr
		r.PrefixLen.Value = plen
		snap, err := b.Apply(update(xdsclient.ListenerType, "2", l))
		if err != nil {
			return
		}
		ip, perr := netip.ParseAddr(addr)
		if perr != nil {
			t.Fatalf("took prefix range %q, not an address", addr)
		}
		svc, ok := snap.Lookup(ip.Unmap().String(), db.Port)
		if full := int(plen) == ip.BitLen(); ok != full || (ok && svc.Port != db) {
			t.Fatalf("range %s/%d: Lookup = %v, %t", addr, plen, svc, ok)
		}
	})
}
