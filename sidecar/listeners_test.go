package sidecar_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/fedmesh/fedmesh/internal/poll"
)

// without returns res less the resources named name (a service's
// cluster, endpoints and listener share its outbound cluster name).
func without(res map[string][]types.Resource, name string) map[string][]types.Resource {
	out := map[string][]types.Resource{}
	for typ, rs := range res {
		for _, r := range rs {
			if cachev3.GetResourceName(r) != name {
				out[typ] = append(out[typ], r)
			}
		}
	}
	return out
}

// returnsWithin runs fn and fails the test when it has not returned
// within 30 seconds (fn is left running then).
func returnsWithin(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return within 30s", what)
	}
}

// TestServiceListenerRemovedWithOpenConnection removes the opaque TCP
// service from the configuration while a connection through its
// service-port listener is open. The sidecar's lookups and admin pages
// must keep answering while the listener stops, the connection is closed
// by the sidecar, and the service's listener comes back when the service
// does.
func TestServiceListenerRemovedWithOpenConnection(t *testing.T) {
	p := newPair(t)
	conn, err := net.Dial("tcp", p.client.sc.ServiceAddr(p.tcpP))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := br.ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("echo %q %v", got, err)
	}

	p.m.set("client", without(p.res, svc("echo-tcp", p.tcpP).OutboundCluster()))
	poll.True(t, 30*time.Second, "tcp service listener gone", func() bool {
		var addr string
		returnsWithin(t, "ServiceAddr", func() { addr = p.client.sc.ServiceAddr(p.tcpP) })
		return addr == ""
	})
	returnsWithin(t, "GET /config_dump", func() {
		resp, err := http.Get("http://" + p.client.sc.AdminAddr() + "/config_dump")
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/config_dump: %d", resp.StatusCode)
		}
	})

	// The connection of the removed listener ends.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := br.ReadString('\n'); err != io.EOF {
		t.Errorf("read on the removed listener's connection: %v, want EOF", err)
	}

	// The reconciler is not stuck: the service's listener comes back.
	p.m.set("client", p.res)
	poll.True(t, 30*time.Second, "tcp service listener back", func() bool {
		var addr string
		returnsWithin(t, "ServiceAddr", func() { addr = p.client.sc.ServiceAddr(p.tcpP) })
		return addr != ""
	})
}
