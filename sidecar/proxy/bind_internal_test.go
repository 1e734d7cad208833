package proxy

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestDialerBindsToTheWorkloadAddress: with OutboundBindAddr set, a
// connection to a reachable peer comes from the workload's address, as
// the peer sees it; destinations the source cannot reach are dialled
// unbound.
func TestDialerBindsToTheWorkloadAddress(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	peers := make(chan string, 4)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			peers <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	for _, tc := range []struct {
		name, bind, want string
	}{
		{name: "bound", bind: "127.0.7.9", want: "127.0.7.9"},
		{name: "unbound", bind: "", want: "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Proxy{}
			if tc.bind != "" {
				p.cfg.OutboundBindAddr = netip.MustParseAddr(tc.bind)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := p.dialer(lis.Addr().String()).DialContext(ctx, "tcp", lis.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case got := <-peers:
				if got != tc.want {
					t.Errorf("peer saw %s, want %s", got, tc.want)
				}
			case <-ctx.Done():
				t.Fatal("no connection accepted")
			}
		})
	}

	for _, tc := range []struct {
		bind, dst string
		bound     bool
	}{
		{bind: "127.0.1.100", dst: "127.0.0.13:15443", bound: true},
		{bind: "127.0.1.100", dst: "[::1]:15443"},
		{bind: "127.0.1.100", dst: "198.18.0.2:15443"},
		{bind: "127.0.1.100", dst: "gw.example:15443"},
		{bind: "127.0.1.100", dst: "not an address"},
		{bind: "198.18.1.5", dst: "198.18.0.2:15443", bound: true},
		{bind: "198.18.1.5", dst: "127.0.0.1:15006"},
		{bind: "fd00::5", dst: "[fd00::6]:15006", bound: true},
		{bind: "fd00::5", dst: "198.18.0.2:15006"},
	} {
		p := &Proxy{cfg: Config{OutboundBindAddr: netip.MustParseAddr(tc.bind)}}
		if got := p.dialer(tc.dst).LocalAddr != nil; got != tc.bound {
			t.Errorf("from %s to %s: bound %v, want %v", tc.bind, tc.dst, got, tc.bound)
		}
	}
}
