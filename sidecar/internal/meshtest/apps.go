package meshtest

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// HTTPApp is a real HTTP/1.1 server that answers every request with
// "NAME CLIENT-ID" where CLIENT-ID is the x-fedmesh-client-id it received.
// POST bodies are echoed after that line.
type HTTPApp struct {
	Name string
	Addr string
	srv  *http.Server
	wg   sync.WaitGroup
}

// StartHTTP starts an HTTPApp on 127.0.0.1:0 (or addr) until the test ends.
func StartHTTP(t testing.TB, name, addr string) *HTTPApp {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a := &HTTPApp{Name: name, Addr: l.Addr().String()}
	a.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-App", name)
		_, _ = io.WriteString(w, name+" "+r.Header.Get("X-Fedmesh-Client-Id")+"\n")
		_, _ = w.Write(body)
	})}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		_ = a.srv.Serve(l)
	}()
	t.Cleanup(a.Stop)
	return a
}

// Stop closes the server; idempotent.
func (a *HTTPApp) Stop() {
	_ = a.srv.Close()
	a.wg.Wait()
}

// GRPCApp is a real gRPC server (h2c) with the standard health service.
type GRPCApp struct {
	Addr string
	srv  *grpc.Server
	wg   sync.WaitGroup
}

// StartGRPC starts a GRPCApp on 127.0.0.1:0 until the test ends.
func StartGRPC(t testing.TB) *GRPCApp {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &GRPCApp{Addr: l.Addr().String(), srv: grpc.NewServer()}
	hs := health.NewServer()
	hs.SetServingStatus("echo", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(a.srv, hs)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		_ = a.srv.Serve(l)
	}()
	t.Cleanup(func() {
		a.srv.Stop()
		a.wg.Wait()
	})
	return a
}

// TCPApp is a real TCP echo server.
type TCPApp struct {
	Addr string
	l    net.Listener
	wg   sync.WaitGroup
}

// StartTCP starts a TCPApp on 127.0.0.1:0 until the test ends.
func StartTCP(t testing.TB) *TCPApp {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &TCPApp{Addr: l.Addr().String(), l: l}
	var conns sync.Map
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
				return
			}
			conns.Store(c, true)
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
				conns.Delete(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		a.wg.Wait()
	})
	return a
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// It is taken below the kernel's ephemeral range when it can be, so that
// no connection out takes it as its source port before the test binds it
// (a port from 127.0.0.1:0 can be, and the test's bind then fails).
func FreePort(t testing.TB) int32 {
	t.Helper()
	if lo := ephemeralLow(); lo > 10000 {
		for range 64 {
			p := 10000 + rand.IntN(lo-10000)
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err == nil {
				l.Close()
				return int32(p)
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// ephemeralLow is the first port of the kernel's ephemeral range, 0 when
// it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		return 0
	}
	return lo
}
