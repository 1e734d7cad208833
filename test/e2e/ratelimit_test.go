package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/poll"
)

// TestRateLimit writes a RateLimitPolicy into east-1's source directory
// while the mesh runs and proves it end to end through the real control
// plane and sidecars: the client's requests to the limited path get 429
// from an echo replica's sidecar (body local_rate_limited, Retry-After,
// RateLimit-Policy and RateLimit naming the limit) once each replica's
// bucket of one request a minute is spent, while other paths are served;
// the refusals are counted with the response flag RL. A bad edit of the
// file is refused and the policy stays in force.
func TestRateLimit(t *testing.T) {
	m := startMesh(t, meshSpec{})
	east1 := m.cluster("east-1")
	const limited = "/limited"
	doc := `apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: echo-limits, namespace: demo}
spec:
  targetRefs: [{kind: Service, name: echo}]
  local:
  - name: per-caller
    match: {paths: ["` + limited + `"]}
    key: {type: Principal}
    requests: 1
    interval: 1m
`
	file := filepath.Join(m.path(east1.Name, "source"), "ratelimit.yaml")
	writeAtomic(t, m.path("ratelimit.tmp"), file, doc)

	c := m.client()
	defer c.CloseIdleConnections()
	get := func(path string) (*http.Response, string, error) {
		resp, err := c.Get(strings.TrimSuffix(echoURL, "/") + path)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp, strings.TrimSpace(string(b)), nil
	}
	// Each east-1 replica admits one request a minute to the path; the
	// policy is in force once one is refused. Bounded: one request per
	// poll for at most 60s.
	var refused *http.Response
	var body string
	poll.Until(t, 60*time.Second, "a request to "+limited+" refused", func() error {
		resp, b, err := get(limited)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			return fmt.Errorf("GET %s: %d", limited, resp.StatusCode)
		}
		refused, body = resp, b
		return nil
	})
	h := refused.Header
	if body != "local_rate_limited" {
		t.Errorf("body %q, want local_rate_limited", body)
	}
	if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q, want 1-60 seconds", h.Get("Retry-After"))
	}
	if got, want := h.Get("RateLimit-Policy"), `"demo/echo-limits/per-caller";q=1;w=60`; got != want {
		t.Errorf("RateLimit-Policy %q, want %q", got, want)
	}
	if got := h.Get("RateLimit"); !strings.HasPrefix(got, `"demo/echo-limits/per-caller";r=0;t=`) {
		t.Errorf("RateLimit %q", got)
	}
	// Other paths are not limited.
	for range 5 {
		if code, rep, b := m.get(t, "/"); code != http.StatusOK || rep.Cluster != east1.Name {
			t.Fatalf("GET /: %d %s; want 200 from east-1", code, b)
		}
	}
	// Every east-1 replica's sidecar admitted at most one and counts
	// what it refused, with the response flag RL.
	var refusedN float64
	for r := 1; r <= m.spec.replicas; r++ {
		page := scrape(t, workloadIP(east1, r)+":15000/stats/prometheus")
		if n := metric(page, "fedmesh_ratelimit_requests_total", `limit="demo/echo-limits/per-caller"`, `decision="admitted"`); n > 1 {
			t.Errorf("replica %d admitted %v requests to %s, want at most 1", r, n, limited)
		}
		refusedN += metric(page, "fedmesh_ratelimit_requests_total", `limit="demo/echo-limits/per-caller"`, `decision="refused"`)
		if n := metric(page, "fedmesh_requests_total", `reporter="destination"`, `response_flags="RL"`); n != metric(page, "fedmesh_ratelimit_requests_total", `limit="demo/echo-limits/per-caller"`, `decision="refused"`) {
			t.Errorf("replica %d: %v requests with flag RL, want its refusals", r, n)
		}
	}
	if refusedN < 1 {
		t.Errorf("no echo sidecar of east-1 counted a refusal")
	}

	// A bad edit (zero requests) is refused by the file source; the last
	// good policy stays in force.
	writeAtomic(t, m.path("ratelimit.tmp"), file, strings.Replace(doc, "requests: 1", "requests: 0", 1))
	poll.Until(t, 30*time.Second, "the bad edit refused", func() error {
		page := scrape(t, east1.Admin()+"/metrics")
		if n := metric(page, "fedmesh_source_rejected_total", `reason="invalid"`); n < 1 {
			return fmt.Errorf("fedmesh_source_rejected_total{reason=invalid} = %v", n)
		}
		return nil
	})
	// Still in force: a replica that had not used its token yet may admit
	// one more, never two, so of 2 requests per replica at least half are
	// refused and no replica has admitted more than one.
	refusedAfter := 0
	for range 2 * m.spec.replicas {
		resp, _, err := get(limited)
		if err != nil {
			t.Fatalf("after the bad edit: %v", err)
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			refusedAfter++
		}
	}
	if refusedAfter < m.spec.replicas {
		t.Errorf("after the bad edit %d of %d requests refused, want at least %d", refusedAfter, 2*m.spec.replicas, m.spec.replicas)
	}
	for r := 1; r <= m.spec.replicas; r++ {
		page := scrape(t, workloadIP(east1, r)+":15000/stats/prometheus")
		if n := metric(page, "fedmesh_ratelimit_requests_total", `limit="demo/echo-limits/per-caller"`, `decision="admitted"`); n > 1 {
			t.Errorf("after the bad edit replica %d admitted %v requests to %s, want at most 1", r, n, limited)
		}
	}
}

// writeAtomic writes content to file through tmp and one rename, so that
// the control plane never reads half a file.
func writeAtomic(t *testing.T, tmp, file, content string) {
	t.Helper()
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}
