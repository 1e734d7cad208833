package dns_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/dns"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// serve runs s on a fresh UDP and TCP pair until the test ends and
// returns their address.
func serve(t *testing.T, s *dns.Server) string {
	t.Helper()
	udp, tcp := listenPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ctx, udp, tcp)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return udp.LocalAddr().String()
}

func resolver(network, addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// TestForward: a sidecar whose pod's DNS is captured answers its own
// names and forwards every other one to the pod's upstream (here a real
// DNS server on loopback that owns example.test), over UDP and TCP as the
// client asked; an upstream that does not answer gives SERVFAIL.
func TestForward(t *testing.T) {
	upstream, err := dns.New(dns.Config{Domains: []string{"example.test"}, Resolve: func(name string) (netip.Addr, bool) {
		if name == "db.example.test" {
			return netip.MustParseAddr("198.18.0.5"), true
		}
		return netip.Addr{}, false
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	up := serve(t, upstream)
	reg := prometheus.NewPedanticRegistry()
	fwd := &dns.Forwarder{Servers: []string{up}, Timeout: 5 * time.Second}
	s, err := dns.New(dns.Config{Resolve: func(name string) (netip.Addr, bool) {
		if name == "echo.demo.svc.clusterset.local" {
			return netip.MustParseAddr("198.19.192.7"), true
		}
		return netip.Addr{}, false
	}, Forward: fwd.Forward}, reg)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	for _, network := range []string{"udp", "tcp"} {
		r := resolver(network, addr)
		for name, want := range map[string]string{"echo.demo.svc.clusterset.local": "198.19.192.7", "db.example.test": "198.18.0.5"} {
			got, err := r.LookupHost(context.Background(), name)
			if err != nil {
				t.Fatalf("%s %s: %v", network, name, err)
			}
			if d := cmp.Diff([]string{want}, got); d != "" {
				t.Errorf("%s %s (-want +got):\n%s", network, name, d)
			}
		}
		// A name neither owns: the upstream's NXDOMAIN comes back.
		if _, err := r.LookupHost(context.Background(), "nope.example.test"); err == nil || !strings.Contains(err.Error(), "no such host") {
			t.Errorf("%s: a name the upstream does not know: %v, want no such host", network, err)
		}
	}
	if n := meshtest.Counter(t, reg, "fedmesh_sidecar_dns_queries_total", map[string]string{"result": "forwarded"}); n < 4 {
		t.Errorf("forwarded %v queries, want at least 4", n)
	}

	// An upstream that is gone: SERVFAIL, counted.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().String()
	dead.Close()
	fwd2 := &dns.Forwarder{Servers: []string{deadAddr}, Timeout: time.Second}
	reg2 := prometheus.NewPedanticRegistry()
	s2, err := dns.New(dns.Config{Resolve: func(string) (netip.Addr, bool) { return netip.Addr{}, false }, Forward: fwd2.Forward}, reg2)
	if err != nil {
		t.Fatal(err)
	}
	addr2 := serve(t, s2)
	if _, err := resolver("udp", addr2).LookupHost(context.Background(), "db.example.test"); err == nil {
		t.Error("resolved through an upstream that is gone")
	}
	poll.Until(t, 10*time.Second, "the failed forward counted", func() error {
		if n := meshtest.Counter(t, reg2, "fedmesh_sidecar_dns_queries_total", map[string]string{"result": "forward_error"}); n < 1 {
			return fmt.Errorf("%v forward errors", n)
		}
		return nil
	})
}

func TestParseResolvConf(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		wantErr  bool
	}{
		{name: "kubernetes", in: "search demo.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n", want: []string{"10.96.0.10:53"}},
		{name: "two and IPv6", in: "# comment\nnameserver 198.18.0.53\nnameserver fd00::a\n", want: []string{"198.18.0.53:53", "[fd00::a]:53"}},
		{name: "none", in: "search x\n"},
		{name: "no address", in: "nameserver\n", wantErr: true},
		{name: "a name", in: "nameserver dns.example\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dns.ParseResolvConf(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func FuzzParseResolvConf(f *testing.F) {
	f.Add("nameserver 10.96.0.10\n")
	f.Add("nameserver fe80::1%eth0\nsearch a b\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := dns.ParseResolvConf(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, a := range got {
			if _, err := netip.ParseAddrPort(a); err != nil {
				t.Errorf("ParseResolvConf(%q) gave %q: %v", s, a, err)
			}
		}
	})
}
