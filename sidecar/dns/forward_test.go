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
		{name: "IPv6 only", in: "nameserver fd00:fed:15::53\noptions attempts:1\n", want: []string{"[fd00:fed:15::53]:53"}},
		{name: "link-local keeps its zone", in: "nameserver fe80::a%eth0\n", want: []string{"[fe80::a%eth0]:53"}},
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

// TestForwardIPv6: a pod whose nameserver is IPv6 (resolv.conf's
// "nameserver ::1", here on a port of the test's) gets its queries for
// other names forwarded there, over UDP and TCP, through the sidecar's
// IPv6 listener; the sidecar's own names are answered, AAAA among them:
// NODATA for a name with an IPv4 address, never forwarded (the pod's
// DNS would call the clusterset name NXDOMAIN).
func TestForwardIPv6(t *testing.T) {
	if c, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		t.Skipf("skipping: no IPv6 loopback here: %v", err)
	} else {
		c.Close()
	}
	upstream, err := dns.New(dns.Config{Domains: []string{"example.test"}, Resolve: func(name string) (netip.Addr, bool) {
		if name == "db.example.test" {
			return netip.MustParseAddr("fd00:fed::5"), true
		}
		return netip.Addr{}, false
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	upUDP, upTCP := listenPairOn(t, "::1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = upstream.Serve(ctx, upUDP, upTCP)
	}()
	t.Cleanup(func() { cancel(); <-done })
	// The upstream as ParseResolvConf gives it, on the test's port.
	ups, err := dns.ParseResolvConf(strings.NewReader("nameserver ::1\n"))
	if err != nil || len(ups) != 1 || ups[0] != "[::1]:53" {
		t.Fatalf("ParseResolvConf(nameserver ::1) = %q, %v; want [::1]:53", ups, err)
	}
	up := netip.MustParseAddrPort(upUDP.LocalAddr().String())
	fwd := &dns.Forwarder{Servers: []string{netip.AddrPortFrom(netip.MustParseAddr("::1"), up.Port()).String()}, Timeout: 5 * time.Second}

	reg := prometheus.NewPedanticRegistry()
	s, err := dns.New(dns.Config{Resolve: func(name string) (netip.Addr, bool) {
		if name == "echo.demo.svc.clusterset.local" {
			return netip.MustParseAddr("198.19.192.7"), true
		}
		return netip.Addr{}, false
	}, Forward: fwd.Forward}, reg)
	if err != nil {
		t.Fatal(err)
	}
	udp, tcp := listenPairOn(t, "::1")
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() {
		defer close(done2)
		_ = s.Serve(ctx2, udp, tcp)
	}()
	t.Cleanup(func() { cancel2(); <-done2 })
	addr := udp.LocalAddr().String()

	// Rooted names: the host's resolv.conf search list never applies.
	for _, network := range []string{"udp", "tcp"} {
		r := resolver(network, addr)
		ips, err := r.LookupIP(context.Background(), "ip", "db.example.test.")
		if err != nil {
			t.Fatalf("%s db.example.test: %v", network, err)
		}
		if len(ips) != 1 || ips[0].String() != "fd00:fed::5" {
			t.Errorf("%s db.example.test = %v, want the upstream's fd00:fed::5", network, ips)
		}
		// A and AAAA of the clusterset name: the address, and NODATA.
		ips, err = r.LookupIP(context.Background(), "ip", "echo.demo.svc.clusterset.local.")
		if err != nil {
			t.Fatalf("%s echo: %v", network, err)
		}
		if len(ips) != 1 || ips[0].String() != "198.19.192.7" {
			t.Errorf("%s echo = %v, want 198.19.192.7 alone", network, ips)
		}
		if _, err := r.LookupIP(context.Background(), "ip6", "echo.demo.svc.clusterset.local."); err == nil {
			t.Errorf("%s: echo has an IPv6 address", network)
		} else if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound {
			t.Errorf("%s: AAAA of echo: %v, want no address", network, err)
		}
	}
	// The two lookups of db (A and AAAA) each way were forwarded; the
	// four of echo (A and AAAA each way, and AAAA alone) never were.
	poll.Until(t, 10*time.Second, "the counts of answers", func() error {
		fw := meshtest.Counter(t, reg, "fedmesh_sidecar_dns_queries_total", map[string]string{"result": "forwarded"})
		nodata := meshtest.Counter(t, reg, "fedmesh_sidecar_dns_queries_total", map[string]string{"result": "nodata"})
		if fw != 4 || nodata != 4 {
			return fmt.Errorf("forwarded %v, nodata %v; want 4 and 4", fw, nodata)
		}
		return nil
	})
}
