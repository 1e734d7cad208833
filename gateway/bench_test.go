package gateway

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// sinkServer accepts plain TCP connections; each reads a 4-byte size then
// writes that many bytes back, then waits for the next size.
func sinkServer(b *testing.B) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 64<<10)
				// The gateway replays the ClientHello first: skip it.
				if _, err := ReadClientHello(c, 0); err != nil {
					return
				}
				io.CopyBuffer(c, c, buf)
			}()
		}
	}()
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }
}

// helloBytes is a real ClientHello for the echo service.
func helloBytes(b *testing.B) []byte { return realHello(b, echoSP.SNI(), []string{"h2"}) }

func benchGateway(b *testing.B, backend string) (string, func()) {
	gw, _ := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
	gw.SetRoutes([]Route{{Service: echoSP, Endpoints: []Endpoint{{Address: backend, Healthy: true}}}})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan struct{})
	go func() { gw.Serve(ln); close(done) }()
	return ln.Addr().String(), func() {
		gw.Shutdown(b.Context())
		<-done
	}
}

// BenchmarkThroughput echoes 64 KiB chunks through one connection, direct
// and through the gateway; MB/s is the figure.
func BenchmarkThroughput(b *testing.B) { benchEcho(b, 64<<10, true) }

// BenchmarkRoundTrip measures one small request/response round trip on an
// open connection: the added latency of the gateway hop is the difference
// between the two ns/op figures.
func BenchmarkRoundTrip(b *testing.B) { benchEcho(b, 128, false) }

// benchEcho writes size bytes and reads them back per iteration on one
// open connection, straight to the backend and through the gateway.
func benchEcho(b *testing.B, size int, throughput bool) {
	backend, stop := sinkServer(b)
	defer stop()
	gwAddr, stopGW := benchGateway(b, backend)
	defer stopGW()
	hello := helloBytes(b)
	for _, tc := range []struct{ name, addr string }{{"direct", backend}, {"gateway", gwAddr}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			c.Write(hello)
			msg := make([]byte, size)
			if throughput {
				b.SetBytes(int64(size))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNewTLSConnections opens a new TLS 1.3 connection through the
// gateway per iteration: accepted, routed by SNI, handshaken end to end.
func BenchmarkNewTLSConnections(b *testing.B) {
	pki := newPKI(b)
	cert := pki.issue(b, "spiffe://fedmesh.test/ns/demo/sa/echo")
	ln, _ := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Write([]byte{1})
				c.Close()
			}()
		}
	}()
	defer func() { ln.Close(); wg.Wait() }()
	gwAddr, stopGW := benchGateway(b, ln.Addr().String())
	defer stopGW()
	cfg := &tls.Config{ServerName: echoSP.SNI(), InsecureSkipVerify: true}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", gwAddr, cfg)
		if err != nil {
			b.Fatal(err)
		}
		c.Read(make([]byte, 1))
		c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
}
