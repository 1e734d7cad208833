package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/poll"
)

// tempErr is what Accept returns when, say, the process is out of file
// descriptors: a net.Error that is a timeout.
type tempErr struct{}

func (tempErr) Error() string   { return "accept: too many open files" }
func (tempErr) Timeout() bool   { return true }
func (tempErr) Temporary() bool { return true }

// flakyListener fails the first fail Accepts (all of them when fail < 0)
// with a temporary error, then accepts from the real listener.
type flakyListener struct {
	net.Listener
	fail  int64
	calls atomic.Int64
}

func (l *flakyListener) Accept() (net.Conn, error) {
	n := l.calls.Add(1)
	if l.fail < 0 || n <= l.fail {
		return nil, tempErr{}
	}
	return l.Listener.Accept()
}

func serveFlaky(t *testing.T, fail int64) (*Gateway, *prometheus.Registry, *flakyListener, <-chan error) {
	t.Helper()
	reg := prometheus.NewRegistry()
	gw, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln, fail: fail}
	done := make(chan error, 1)
	go func() { done <- gw.Serve(fl) }()
	return gw, reg, fl, done
}

func waitServe(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second): // bounds a Serve that wrongly keeps running
		t.Fatal("Serve did not return after Shutdown")
	}
}

// Temporary Accept errors are retried: the gateway goes on serving.
func TestServeRetriesTemporaryAcceptErrors(t *testing.T) {
	gw, reg, fl, done := serveFlaky(t, 3)
	tg := &testGateway{gw: gw, reg: reg}
	c, err := net.Dial("tcp", fl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	c.Read(make([]byte, 1)) // refused: reset or EOF
	c.Close()
	poll.True(t, 10*time.Second, "not-TLS refusal counted", func() bool { return tg.refused(ReasonNotTLS) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitServe(t, done)
}

// Shutdown ends a Serve that is backing off after temporary errors.
func TestShutdownEndsAcceptBackoff(t *testing.T) {
	gw, _, fl, done := serveFlaky(t, -1)
	poll.True(t, 10*time.Second, "accept retried after temporary errors", func() bool { return fl.calls.Load() >= 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitServe(t, done)
}
