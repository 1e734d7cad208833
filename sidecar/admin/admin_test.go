package admin_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/sidecar/admin"
)

// source is a fixed admin.Source.
type source struct {
	ready bool
	why   string
}

var _ admin.Source = source{}

func (source) ConfigDump() any {
	return map[string]any{"node": map[string]string{"cluster": "east-1"}, "versions": map[string]string{"cds": "v3"}}
}

func (source) Endpoints() any {
	return []map[string]any{{"service": "demo/echo:8080", "hosts": []string{"127.0.1.1:15006"}}}
}

func (s source) Ready() (bool, string) { return s.ready, s.why }

func TestHandler(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	requests := prometheus.NewCounter(prometheus.CounterOpts{Name: "fedmesh_test_requests_total", Help: "Requests."})
	reg.MustRegister(requests)
	requests.Add(3)

	type page struct {
		Status      int
		ContentType string
		Body        string
	}
	tests := []struct {
		name   string
		src    source
		method string
		path   string
		want   page
		// contains is checked instead of the whole body when set.
		contains string
	}{
		{name: "ready", src: source{ready: true}, method: "GET", path: "/ready",
			want: page{Status: 200, ContentType: "text/plain; charset=utf-8", Body: "ready\n"}},
		{name: "not ready says why", src: source{why: "no workload certificate from SDS yet"}, method: "GET", path: "/ready",
			want: page{Status: 503, ContentType: "text/plain; charset=utf-8", Body: "not ready: no workload certificate from SDS yet\n"}},
		{name: "config dump", method: "GET", path: "/config_dump",
			want: page{Status: 200, ContentType: "application/json", Body: "{\n  \"node\": {\n    \"cluster\": \"east-1\"\n  },\n  \"versions\": {\n    \"cds\": \"v3\"\n  }\n}\n"}},
		{name: "endpoints", method: "GET", path: "/endpoints",
			want: page{Status: 200, ContentType: "application/json", Body: "[\n  {\n    \"hosts\": [\n      \"127.0.1.1:15006\"\n    ],\n    \"service\": \"demo/echo:8080\"\n  }\n]\n"}},
		{name: "metrics", method: "GET", path: "/stats/prometheus",
			want: page{Status: 200, ContentType: "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"}, contains: "fedmesh_test_requests_total 3\n"},
		{name: "unknown page", method: "GET", path: "/quitquitquit",
			want: page{Status: 404, ContentType: "text/plain; charset=utf-8", Body: "404 page not found\n"}},
		{name: "pages are read only", method: "POST", path: "/ready",
			want: page{Status: 405, ContentType: "text/plain; charset=utf-8", Body: "Method Not Allowed\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			admin.Handler(tt.src, reg).ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			body, _ := io.ReadAll(rec.Result().Body)
			got := page{Status: rec.Code, ContentType: rec.Header().Get("Content-Type"), Body: string(body)}
			if tt.contains != "" {
				if !strings.Contains(got.Body, tt.contains) {
					t.Errorf("body lacks %q:\n%s", tt.contains, got.Body)
				}
				got.Body = ""
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", tt.method, tt.path, diff)
			}
		})
	}
}

// TestReadyHandler: the probe listener answers /ready and the metrics as
// the admin listener does, and serves no other page.
func TestReadyHandler(t *testing.T) {
	tests := []struct {
		name, path string
		src        source
		wantStatus int
		wantBody   string
	}{
		{name: "ready", path: "/ready", src: source{ready: true}, wantStatus: 200, wantBody: "ready\n"},
		{name: "not ready says why", path: "/ready", src: source{why: "no trust bundle"}, wantStatus: 503, wantBody: "not ready: no trust bundle\n"},
		{name: "ready with a note", path: "/ready", src: source{ready: true, why: "stale config: serving the persisted configuration"}, wantStatus: 200, wantBody: "ready (stale config: serving the persisted configuration)\n"},
		{name: "no config dump", path: "/config_dump", src: source{ready: true}, wantStatus: 404, wantBody: "404 page not found\n"},
		{name: "metrics", path: "/stats/prometheus", src: source{ready: true}, wantStatus: 200, wantBody: "# HELP fedmesh_test_requests_total Requests.\n# TYPE fedmesh_test_requests_total counter\nfedmesh_test_requests_total 3\n"},
		{name: "no endpoints", path: "/endpoints", src: source{ready: true}, wantStatus: 404, wantBody: "404 page not found\n"},
	}
	reg := prometheus.NewPedanticRegistry()
	requests := prometheus.NewCounter(prometheus.CounterOpts{Name: "fedmesh_test_requests_total", Help: "Requests."})
	reg.MustRegister(requests)
	requests.Add(3)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			admin.ReadyHandler(tt.src, reg).ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			body, _ := io.ReadAll(rec.Result().Body)
			if rec.Code != tt.wantStatus || string(body) != tt.wantBody {
				t.Errorf("GET %s = %d %q, want %d %q", tt.path, rec.Code, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}
