package dns_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/dns"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newServer(t testing.TB) *dns.Server {
	return newServerWith(t, nil)
}

func newServerWith(t testing.TB, reg prometheus.Registerer) *dns.Server {
	s, err := dns.New(dns.Config{Resolve: func(name string) (netip.Addr, bool) {
		if name == "echo.demo.svc.clusterset.local" || name == "echo.demo" {
			return netip.MustParseAddr("127.0.1.100"), true
		}
		return netip.Addr{}, false
	}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func query(t testing.TB, name string, typ dnsmessage.Type) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAnswer(t *testing.T) {
	s := newServer(t)
	tests := []struct {
		name      string
		q         string
		typ       dnsmessage.Type
		wantRCode dnsmessage.RCode
		wantAns   int
	}{
		{name: "A full name", q: "echo.demo.svc.clusterset.local.", typ: dnsmessage.TypeA, wantAns: 1},
		{name: "A short name", q: "Echo.Demo.", typ: dnsmessage.TypeA, wantAns: 1},
		{name: "AAAA of a v4 service", q: "echo.demo.", typ: dnsmessage.TypeAAAA},
		{name: "unknown service", q: "nope.demo.svc.clusterset.local.", typ: dnsmessage.TypeA, wantRCode: dnsmessage.RCodeNameError},
		{name: "foreign name", q: "example.com.", typ: dnsmessage.TypeA, wantRCode: dnsmessage.RCodeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p dnsmessage.Parser
			h, err := p.Start(s.Answer(query(t, tt.q, tt.typ), 512))
			if err != nil {
				t.Fatal(err)
			}
			_ = p.SkipAllQuestions()
			ans, _ := p.AllAnswers()
			if diff := cmp.Diff([]any{tt.wantRCode, tt.wantAns, uint16(7)}, []any{h.RCode, len(ans), h.ID}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if len(ans) == 1 {
				if a, ok := ans[0].Body.(*dnsmessage.AResource); !ok || netip.AddrFrom4(a.A) != netip.MustParseAddr("127.0.1.100") {
					t.Errorf("answer %v", ans[0].Body)
				}
			}
		})
	}
}

func TestServeUDPAndTCP(t *testing.T) {
	s := newServer(t)
	udp, tcp := listenPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ctx, udp, tcp)
	}()
	defer func() { cancel(); <-done }()
	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, udp.LocalAddr().String())
		}}
		addrs, err := r.LookupHost(context.Background(), "echo.demo.svc.clusterset.local")
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		if diff := cmp.Diff([]string{"127.0.1.100"}, addrs); diff != "" {
			t.Errorf("%s (-want +got):\n%s", network, diff)
		}
	}
}

// listenPair binds UDP and TCP on one loopback port, as a resolver
// expects of a DNS server. The kernel hands out UDP and TCP ports apart,
// so the port it gave the UDP socket may be taken for TCP: then it tries
// another, a bounded number of times. Serve closes both.
func listenPair(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	return listenPairOn(t, "127.0.0.1")
}

// listenPairOn is listenPair on the loopback address host.
func listenPairOn(t *testing.T, host string) (net.PacketConn, net.Listener) {
	t.Helper()
	const attempts = 50
	var last error
	for range attempts {
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			return udp, tcp
		}
		udp.Close()
		last = err
	}
	t.Fatalf("no loopback port free for both UDP and TCP in %d attempts: %v", attempts, last)
	return nil, nil
}

// TestServeGoesOnAfterReadError makes the real socket fail its reads (a
// read or accept deadline in the past gives a timeout error, as a
// transient fault would), waits until the server has counted such errors,
// lifts the deadline and checks that queries are still answered, twice.
func TestServeGoesOnAfterReadError(t *testing.T) {
	tests := []struct {
		name string
		// fail sets (past) or clears (zero) the deadline of the socket the
		// server reads from.
		fail func(t *testing.T, udp net.PacketConn, tcp net.Listener, deadline time.Time)
		// ask sends one A query for echo.demo and returns the response.
		ask func(t *testing.T, addr string) []byte
	}{
		{
			name: "udp",
			fail: func(t *testing.T, udp net.PacketConn, _ net.Listener, deadline time.Time) {
				if err := udp.SetReadDeadline(deadline); err != nil {
					t.Fatal(err)
				}
			},
			ask: func(t *testing.T, addr string) []byte {
				c, err := net.Dial("udp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write(query(t, "echo.demo.", dnsmessage.TypeA)); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
				buf := make([]byte, 512)
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("no answer after a read error: %v", err)
				}
				return buf[:n]
			},
		},
		{
			name: "tcp",
			fail: func(t *testing.T, _ net.PacketConn, tcp net.Listener, deadline time.Time) {
				if err := tcp.(*net.TCPListener).SetDeadline(deadline); err != nil {
					t.Fatal(err)
				}
			},
			ask: func(t *testing.T, addr string) []byte {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				q := query(t, "echo.demo.", dnsmessage.TypeA)
				if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					t.Fatalf("no answer after an accept error: %v", err)
				}
				resp := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, resp); err != nil {
					t.Fatal(err)
				}
				return resp
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			s := newServerWith(t, reg)
			udp, tcp := listenPair(t)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = s.Serve(ctx, udp, tcp)
			}()
			defer func() { cancel(); <-done }()
			for round := range 2 {
				before := readErrors(t, reg, tt.name)
				tt.fail(t, udp, tcp, time.Now().Add(-time.Second))
				poll.True(t, 30*time.Second, fmt.Sprintf("round %d: a %s read error counted", round, tt.name), func() bool {
					return readErrors(t, reg, tt.name) > before
				})
				tt.fail(t, udp, tcp, time.Time{})
				var p dnsmessage.Parser
				h, err := p.Start(tt.ask(t, udp.LocalAddr().String()))
				if err != nil {
					t.Fatal(err)
				}
				_ = p.SkipAllQuestions()
				ans, _ := p.AllAnswers()
				if diff := cmp.Diff([]any{dnsmessage.RCodeSuccess, 1}, []any{h.RCode, len(ans)}); diff != "" {
					t.Errorf("round %d (-want +got):\n%s", round, diff)
				}
			}
		})
	}
}

// readErrors is fedmesh_sidecar_dns_read_errors_total{transport} in reg.
func readErrors(t *testing.T, reg prometheus.Gatherer, transport string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fedmesh_sidecar_dns_read_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "transport" && l.GetValue() == transport {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// FuzzAnswer: any bytes get either no answer or a well-formed response
// with the query's ID.
func FuzzAnswer(f *testing.F) {
	s := newServer(f)
	f.Add(query(f, "echo.demo.", dnsmessage.TypeA))
	f.Add(query(f, "x.svc.clusterset.local.", dnsmessage.TypeAAAA))
	f.Add([]byte{0, 1, 2})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		out := s.Answer(in, 512)
		if out == nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(out)
		if err != nil {
			t.Fatalf("response does not parse: %v", err)
		}
		if !h.Response || len(in) < 2 || h.ID != uint16(in[0])<<8|uint16(in[1]) {
			t.Fatalf("bad response header %+v", h)
		}
	})
}

// TestAnswerFamilies: a service has one address, IPv4 or IPv6 (of the
// clusterset CIDR's family). The query of its family is answered; the
// other one gets NOERROR with no answer (NODATA, authoritative), not
// NXDOMAIN: the name exists, and a resolver asking A and AAAA together
// keeps the answer it got. With a forwarder, neither is forwarded. A name
// nobody imports is NXDOMAIN for both.
func TestAnswerFamilies(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	forwarded := 0
	s, err := dns.New(dns.Config{Resolve: func(name string) (netip.Addr, bool) {
		switch name {
		case "v4.demo.svc.clusterset.local":
			return netip.MustParseAddr("198.19.192.7"), true
		case "v6.demo.svc.clusterset.local":
			return netip.MustParseAddr("fd00:fed::7"), true
		}
		return netip.Addr{}, false
	}, Forward: func(context.Context, []byte, bool) ([]byte, error) {
		forwarded++
		return nil, errors.New("not forwarded in this test")
	}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q         string
		typ       dnsmessage.Type
		wantRCode dnsmessage.RCode
		want      string // the answer; "" none
	}{
		{"v4.demo.svc.clusterset.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "198.19.192.7"},
		{"v4.demo.svc.clusterset.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, ""},
		{"v6.demo.svc.clusterset.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, "fd00:fed::7"},
		{"v6.demo.svc.clusterset.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, ""},
		{"V4.Demo.Svc.Clusterset.Local.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, ""},
		{"nope.demo.svc.clusterset.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, ""},
		{"nope.demo.svc.clusterset.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeNameError, ""},
	} {
		resp, fwd := s.Answer(query(t, tc.q, tc.typ), 512), forwarded
		var p dnsmessage.Parser
		h, err := p.Start(resp)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.q, tc.typ, err)
		}
		q, err := p.Question()
		if err != nil || q.Name.String() != tc.q || q.Type != tc.typ {
			t.Errorf("%s %v: question %v (%v), want it echoed", tc.q, tc.typ, q, err)
		}
		_ = p.SkipAllQuestions()
		ans, err := p.AllAnswers()
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if len(ans) == 1 {
			switch b := ans[0].Body.(type) {
			case *dnsmessage.AResource:
				got = netip.AddrFrom4(b.A).String()
			case *dnsmessage.AAAAResource:
				got = netip.AddrFrom16(b.AAAA).String()
			}
		}
		if h.RCode != tc.wantRCode || !h.Authoritative || got != tc.want || len(ans) > 1 || fwd != 0 {
			t.Errorf("%s %v: %v authoritative %t, %d answers (%q), forwarded %d; want %v, authoritative, %q, none forwarded",
				tc.q, tc.typ, h.RCode, h.Authoritative, len(ans), got, fwd, tc.wantRCode, tc.want)
		}
	}
	for result, want := range map[string]float64{"answer": 2, "nodata": 3, "nxdomain": 2} {
		if n := meshtest.Counter(t, reg, "fedmesh_sidecar_dns_queries_total", map[string]string{"result": result}); n != want {
			t.Errorf("%s counted %v, want %v", result, n, want)
		}
	}
}
