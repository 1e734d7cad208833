package proxy_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// idLog remembers the X-Request-Id of every request an app received.
type idLog struct {
	mu  sync.Mutex // guards ids
	ids []string
}

func (l *idLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids = append(l.ids, r.Header.Get("X-Request-Id"))
}

func (l *idLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ids...)
}

// twoLevels starts two workloads of s: first at priority 0, second at
// priority 1 (so every first attempt goes to first, and a retry, which
// avoids the endpoints already tried, to second).
func twoLevels(t *testing.T, ca *meshtest.CA, s naming.ServicePort, first, second *app, opts meshtest.ClusterOpts, retries uint32) *client {
	t.Helper()
	w1 := startWorkload(t, ca, "echo", s, first)
	w2 := startWorkload(t, ca, "echo", s, second)
	opts.HTTP = true
	opts.Identities = []string{w1.id}
	return startClient(t, ca, service{sp: s, opts: opts, retries: retries, eps: []meshtest.Endpoint{
		{Addr: w1.addr, Priority: 0, Cluster: "east-1", Identity: w1.id, Healthy: true},
		{Addr: w2.addr, Priority: 1, Cluster: "west-1", Identity: w2.id, Healthy: true},
	}})
}

func TestRetry(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	s := sp("echo", 8080)
	post := func(t *testing.T, c *client, id string) result {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, svcURL(s), stringsReader("payload "+id))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Request-Id", id)
		return do(t, c.http(t), req)
	}
	echoBody := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			_, _ = io.WriteString(w, name+": "+string(b))
		}
	}

	t.Run("a 5xx is retried on another endpoint with the body", func(t *testing.T) {
		var seenA idLog
		a := startApp(t, "a", func(w http.ResponseWriter, r *http.Request) {
			seenA.add(r)
			http.Error(w, "a is broken", http.StatusServiceUnavailable)
		})
		b := startApp(t, "b", echoBody("b"))
		c := twoLevels(t, ca, s, a, b, meshtest.ClusterOpts{}, 2)
		// Fewer requests than outlier detection's 5 consecutive 5xx, so
		// every one meets the broken endpoint first.
		for i := range 3 {
			id := strconv.Itoa(i)
			if diff := cmp.Diff(result{Code: 200, App: "b", Body: "b: payload " + id}, post(t, c, id)); diff != "" {
				t.Errorf("request %s (-want +got):\n%s", id, diff)
			}
		}
		if diff := cmp.Diff([]string{"0", "1", "2"}, seenA.get()); diff != "" {
			t.Errorf("requests a received, each once (-want +got):\n%s", diff)
		}
		if got := b.hits.Load(); got != 3 {
			t.Errorf("b received %d requests, want 3", got)
		}
		if n := counter(t, c.reg, "fedmesh_sidecar_retries_total", map[string]string{"reason": "status_5xx"}); n != 3 {
			t.Errorf("retries for status_5xx = %v, want 3", n)
		}
	})

	t.Run("a failed connect is retried on another endpoint", func(t *testing.T) {
		b := startApp(t, "b", echoBody("b"))
		wb := startWorkload(t, ca, "echo", s, b)
		closed := listen(t)
		deadAddr := closed.Addr().String()
		closed.Close()
		c := startClient(t, ca, service{sp: s, retries: 2, opts: meshtest.ClusterOpts{HTTP: true, Identities: []string{wb.id}}, eps: []meshtest.Endpoint{
			{Addr: deadAddr, Priority: 0, Cluster: "east-1", Identity: wb.id, Healthy: true},
			{Addr: wb.addr, Priority: 1, Cluster: "west-1", Identity: wb.id, Healthy: true},
		}})
		for i := range 2 {
			id := strconv.Itoa(i)
			if diff := cmp.Diff(result{Code: 200, App: "b", Body: "b: payload " + id}, post(t, c, id)); diff != "" {
				t.Errorf("request %s (-want +got):\n%s", id, diff)
			}
		}
		if n := counter(t, c.reg, "fedmesh_sidecar_retries_total", map[string]string{"reason": "connect_failure"}); n != 2 {
			t.Errorf("retries for connect_failure = %v, want 2", n)
		}
	})

	t.Run("after num_retries the last 5xx goes to the client as it is", func(t *testing.T) {
		a := startApp(t, "a", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "a is broken", http.StatusBadGateway) })
		b := startApp(t, "b", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "b is broken", http.StatusServiceUnavailable)
		})
		c := twoLevels(t, ca, s, a, b, meshtest.ClusterOpts{}, 1)
		got := post(t, c, "x")
		if diff := cmp.Diff(result{Code: 503, App: "b", Body: "b is broken\n"}, got); diff != "" {
			t.Errorf("response (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int64{1, 1}, []int64{a.hits.Load(), b.hits.Load()}); diff != "" {
			t.Errorf("attempts on a and b (-want +got):\n%s", diff)
		}
	})

	t.Run("with the retry budget spent the 5xx goes to the client as it is", func(t *testing.T) {
		release := make(chan struct{})
		a := startApp(t, "a", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "a is broken", http.StatusServiceUnavailable)
		})
		b := startApp(t, "b", func(w http.ResponseWriter, r *http.Request) {
			<-release
			_, _ = io.WriteString(w, "b")
		})
		// max_retries 1: one retry in flight at a time.
		c := twoLevels(t, ca, s, a, b, meshtest.ClusterOpts{MaxRetries: 1}, 2)
		first := make(chan result, 1)
		go func() {
			resp, err := c.http(t).Get(svcURL(s))
			if err != nil {
				first <- result{Error: err.Error()}
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			first <- result{Code: resp.StatusCode, App: resp.Header.Get("X-App"), Body: string(body)}
		}()
		poll.True(t, 30*time.Second, "the first request's retry to wait in b", func() bool { return b.hits.Load() == 1 })
		got := get(t, c.http(t), svcURL(s))
		close(release)
		if diff := cmp.Diff(result{Code: 503, App: "a", Body: "a is broken\n"}, got); diff != "" {
			t.Errorf("second request (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(result{Code: 200, App: "b", Body: "b"}, <-first); diff != "" {
			t.Errorf("first request (-want +got):\n%s", diff)
		}
		if n := counter(t, c.reg, "fedmesh_sidecar_retries_total", map[string]string{"reason": "budget_exhausted"}); n != 1 {
			t.Errorf("retries refused by the budget = %v, want 1", n)
		}
	})

	t.Run("a response that has begun is never retried", func(t *testing.T) {
		a := startApp(t, "a", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // the app dies mid-body
		})
		b := startApp(t, "b", nil)
		c := twoLevels(t, ca, s, a, b, meshtest.ClusterOpts{}, 2)
		resp, err := c.http(t).Get(svcURL(s))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err == nil {
			t.Errorf("status %d, body %q, read error %v; want 200 and a body cut short", resp.StatusCode, body, err)
		}
		if diff := cmp.Diff([]int64{1, 0}, []int64{a.hits.Load(), b.hits.Load()}); diff != "" {
			t.Errorf("attempts on a and b (-want +got):\n%s", diff)
		}
		if n := counter(t, c.reg, "fedmesh_sidecar_retries_total", nil); n != 0 {
			t.Errorf("retries = %v, want 0", n)
		}
	})

	t.Run("a request canceled by the client is not retried", func(t *testing.T) {
		entered := make(chan struct{}, 1)
		a := startApp(t, "a", func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			<-r.Context().Done()
		})
		b := startApp(t, "b", nil)
		c := twoLevels(t, ca, s, a, b, meshtest.ClusterOpts{}, 2)
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, svcURL(s), nil)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			<-entered
			cancel()
		}()
		if _, err := c.http(t).Do(req); err == nil {
			t.Fatal("a canceled request succeeded")
		}
		poll.True(t, 30*time.Second, "the proxy to count the canceled request", func() bool {
			return counter(t, c.reg, "fedmesh_sidecar_request_errors_total", map[string]string{"reason": "client_canceled"}) == 1
		})
		if got := b.hits.Load(); got != 0 {
			t.Errorf("b received %d requests, want 0", got)
		}
	})
}

// TestCircuitBreaker fills a service's max_requests or max_pending with a
// request the app holds, and checks that one more is refused at once with
// 503 and the limit's name, and counted.
func TestCircuitBreaker(t *testing.T) {
	ca := meshtest.NewCA(t, td)
	s := sp("echo", 8080)
	tests := []struct {
		name       string
		opts       meshtest.ClusterOpts
		limit      string
		wantHeader http.Header
	}{
		{name: "max_requests", opts: meshtest.ClusterOpts{MaxRequests: 1}, limit: "max_requests",
			wantHeader: http.Header{"X-Fedmesh-Overloaded": {"max_requests"}}},
		{name: "max_pending", opts: meshtest.ClusterOpts{MaxPending: 1}, limit: "max_pending",
			wantHeader: http.Header{"X-Fedmesh-Error": {"overflow"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			a := startApp(t, "a", func(w http.ResponseWriter, r *http.Request) {
				<-release
				_, _ = io.WriteString(w, "a")
			})
			w := startWorkload(t, ca, "echo", s, a)
			opts := tt.opts
			opts.HTTP, opts.Identities = true, []string{w.id}
			c := startClient(t, ca, service{sp: s, opts: opts, retries: 2,
				eps: []meshtest.Endpoint{{Addr: w.addr, Cluster: "east-1", Identity: w.id, Healthy: true}}})
			held := make(chan result, 1)
			go func() {
				resp, err := c.http(t).Get(svcURL(s))
				if err != nil {
					held <- result{Error: err.Error()}
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				held <- result{Code: resp.StatusCode, App: resp.Header.Get("X-App"), Body: string(body)}
			}()
			poll.True(t, 30*time.Second, "the first request to reach the app", func() bool { return a.hits.Load() == 1 })

			resp, err := c.http(t).Get(svcURL(s))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			close(release)
			got := http.Header{}
			for k := range tt.wantHeader {
				got[k] = resp.Header.Values(k)
			}
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", resp.StatusCode)
			}
			if diff := cmp.Diff(tt.wantHeader, got); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(result{Code: 200, App: "a", Body: "a"}, <-held); diff != "" {
				t.Errorf("held request (-want +got):\n%s", diff)
			}
			if got := a.hits.Load(); got != 1 {
				t.Errorf("the app received %d requests, want 1", got)
			}
			if n := counter(t, c.reg, "fedmesh_sidecar_circuit_open_total", map[string]string{"limit": tt.limit}); n != 1 {
				t.Errorf("circuit_open{limit=%s} = %v, want 1", tt.limit, n)
			}
			// The breaker closes again once the request is done.
			if diff := cmp.Diff(result{Code: 200, App: "a", Body: "a"}, get(t, c.http(t), svcURL(s))); diff != "" {
				t.Errorf("request after the held one (-want +got):\n%s", diff)
			}
		})
	}
}
