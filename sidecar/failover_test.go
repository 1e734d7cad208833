package sidecar_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/fedmesh/fedmesh/internal/addrlock"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// TestFailover runs steady load from a client sidecar to a service with
// two local endpoints (priority 0) and one in another cluster (priority 1).
// The local sidecars die; requests move to priority 1 without a single
// failure (retries go to another endpoint, outlier detection ejects the
// dead ones, no control plane round trip); then the local sidecars come
// back on the same addresses and traffic returns to them.
//
// The one exception is a response that had begun when its sidecar died:
// its status is already with the client, so it cannot be retried and the
// client sees it cut short. Each worker has at most one request in flight
// when the two sidecars die, so at most that many responses are cut.
func TestFailover(t *testing.T) {
	m := newMesh(t)
	port := meshtest.FreePort(t)
	sp := svc("echo", port)
	echoID := m.ca.Workload("demo", "echo")

	type server struct {
		name string
		app  *meshtest.HTTPApp
		w    *workload
		addr string
	}
	startServer := func(name, addr string, app *meshtest.HTTPApp) *server {
		w := m.start(wopts{node: name, ns: "demo", sa: "echo", workload: name, inbound: addr})
		in := w.sc.InboundAddr()
		res := map[string][]types.Resource{}
		all := meshtest.Inbound(in, meshtest.InboundPort{SP: sp, App: app.Addr, HTTP: true})
		rt(res, ldsT, all[0])
		rt(res, cdsT, all[1:]...)
		rt(res, sdsT, w.secrets(m.ca)...)
		m.set(name, res)
		w.ready(t)
		return &server{name: name, app: app, w: w, addr: in}
	}
	// The local sidecars listen on their own loopback addresses so that
	// theirs are still free when they come back on them.
	local1 := startServer("local-1", addrlock.PrivateLoopback(), meshtest.StartHTTP(t, "local-1", ""))
	local2 := startServer("local-2", addrlock.PrivateLoopback(), meshtest.StartHTTP(t, "local-2", ""))
	remote := startServer("remote", "127.0.0.1:0", meshtest.StartHTTP(t, "remote", ""))

	client := m.start(wopts{node: "client", ns: "demo", sa: "client", workload: "client"})
	cl := map[string][]types.Resource{}
	rt(cl, cdsT, meshtest.OutboundCluster(sp, meshtest.ClusterOpts{HTTP: true, Identities: []string{echoID}, BaseEjectionTime: 300 * time.Millisecond, MaxRetries: 16}))
	rt(cl, edsT, meshtest.Assignment(sp,
		meshtest.Endpoint{Addr: local1.addr, Priority: 0, Cluster: "east-1", Identity: echoID, Healthy: true},
		meshtest.Endpoint{Addr: local2.addr, Priority: 0, Cluster: "east-1", Identity: echoID, Healthy: true},
		meshtest.Endpoint{Addr: remote.addr, Priority: 1, Cluster: "west-1", Identity: echoID, SNI: sp.SNI(), Healthy: true},
	))
	rt(cl, ldsT, meshtest.OutboundListener(sp, true))
	rt(cl, rdsT, meshtest.Routes(port, 10*time.Second, 2, sp))
	rt(cl, sdsT, client.secrets(m.ca)...)
	m.set("client", cl)
	client.ready(t)

	url := "http://echo.demo.svc.clusterset.local:" + itoa32(port) + "/"
	var mu sync.Mutex
	served := map[string]int{}
	var ok, failed, cut atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	const workers, maxRequests = 4, 20000
	var sent atomic.Int64
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := proxyClient(client)
			defer c.CloseIdleConnections()
			for ctx.Err() == nil && sent.Add(1) <= maxRequests {
				code, body, err := get(c, url)
				if code == 200 && errors.Is(err, io.ErrUnexpectedEOF) {
					cut.Add(1)
					continue
				}
				if err != nil || code != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, strings.TrimSpace(body)+" "+errString(err))
					continue
				}
				ok.Add(1)
				name, _, _ := strings.Cut(body, " ")
				mu.Lock()
				served[name]++
				mu.Unlock()
			}
		}()
	}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return served[name]
	}
	waitMore := func(what, name string, n int) {
		t.Helper()
		start := count(name)
		poll.True(t, 30*time.Second, what, func() bool { return count(name) >= start+n })
	}

	waitMore("local traffic", "local-1", 20)
	if r := count("remote"); r > count("local-1")+count("local-2") {
		t.Errorf("priority 1 got %d requests before any failure, more than priority 0", r)
	}

	// The local sidecars die.
	local1.w.stop()
	local2.w.stop()
	waitMore("traffic on priority 1", "remote", 100)
	l1, l2 := count("local-1"), count("local-2")
	waitMore("more traffic on priority 1", "remote", 50)
	if count("local-1") != l1 || count("local-2") != l2 {
		t.Errorf("dead endpoints still served requests")
	}

	// They come back on the same addresses.
	startServer("local-1", local1.addr, local1.app)
	startServer("local-2", local2.addr, local2.app)
	waitMore("traffic back on priority 0", "local-1", 50)
	waitMore("traffic back on priority 0", "local-2", 50)

	cancel()
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed (first: %v)", n, n+ok.Load(), firstErr.Load())
	}
	if n := cut.Load(); n > workers {
		t.Errorf("%d responses cut short, more than the %d requests in flight when the sidecars died", n, workers)
	}
	t.Logf("requests: %d ok, %d failed, %d cut short; served %v", ok.Load(), failed.Load(), cut.Load(), served)
	if n := client.counter(t, "fedmesh_sidecar_retries_total", nil); n == 0 {
		t.Error("no retries counted")
	}
	if n := client.counter(t, "fedmesh_sidecar_lb_ejections_total", map[string]string{"reason": "consecutive_connect_failure"}); n == 0 {
		t.Error("no ejections counted")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func itoa32(i int32) string { return strconv.Itoa(int(i)) }
