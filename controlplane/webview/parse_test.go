package webview

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const samplePage = `# HELP fedmesh_sidecar_requests_total HTTP requests.
# TYPE fedmesh_sidecar_requests_total counter
fedmesh_sidecar_requests_total{code="2xx",destination_cluster="east-1",direction="outbound",service="demo/echo:8080",source_cluster="east-1"} 90
fedmesh_sidecar_requests_total{code="5xx",destination_cluster="east-1",direction="outbound",service="demo/echo:8080",source_cluster="east-1"} 10
fedmesh_sidecar_requests_total{code="2xx",destination_cluster="west-1",direction="outbound",service="demo/echo:8080",source_cluster="east-1"} 5
fedmesh_sidecar_requests_total{code="2xx",destination_cluster="east-1",direction="inbound",service="demo/echo:8080",source_cluster="east-2"} 7
fedmesh_sidecar_requests_total{code="2xx",destination_cluster="unknown",direction="outbound",service="demo/echo:8080",source_cluster="east-1"} 3
fedmesh_sidecar_requests_total{response_code="503",destination_cluster="east-2",reporter="source",source_cluster="east-1"} 2
# TYPE fedmesh_sidecar_request_duration_seconds histogram
fedmesh_sidecar_request_duration_seconds_bucket{destination_cluster="east-1",direction="outbound",service="demo/echo:8080",source_cluster="east-1",le="0.001"} 50
fedmesh_sidecar_request_duration_seconds_bucket{destination_cluster="east-1",direction="outbound",service="demo/echo:8080",source_cluster="east-1",le="0.01"} 100
fedmesh_sidecar_request_duration_seconds_bucket{destination_cluster="east-1",direction="outbound",service="demo/echo:8080",source_cluster="east-1",le="+Inf"} 100
fedmesh_sidecar_request_duration_seconds_sum{destination_cluster="east-1",direction="outbound",service="demo/echo:8080",source_cluster="east-1"} 0.3
fedmesh_sidecar_request_duration_seconds_count{destination_cluster="east-1",direction="outbound",service="demo/echo:8080",source_cluster="east-1"} 100
# TYPE fedmesh_gateway_connections_active gauge
fedmesh_gateway_connections_active{service="demo/echo:8080"} 4
# TYPE fedmesh_gateway_connections_total counter
fedmesh_gateway_connections_total{service="demo/echo:8080"} 12
# TYPE go_goroutines gauge
go_goroutines 42
`

func TestParsePage(t *testing.T) {
	p, err := parsePage(strings.NewReader(samplePage))
	if err != nil {
		t.Fatal(err)
	}
	type edge struct{ Requests, Errors float64 }
	got := map[EdgeKey]edge{}
	for k, c := range p.edges {
		got[k] = edge{c.requests, c.errors}
	}
	want := map[EdgeKey]edge{
		{From: "east-1", To: "east-1"}: {Requests: 100, Errors: 10},
		{From: "east-1", To: "west-1"}: {Requests: 5},
		{From: "east-1", To: "east-2"}: {Requests: 2, Errors: 2},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("edges (-want +got):\n%s", d)
	}
	wantBuckets := map[float64]float64{0.001: 50, 0.01: 100, math.Inf(1): 100}
	if d := cmp.Diff(wantBuckets, p.edges[EdgeKey{"east-1", "east-1"}].buckets); d != "" {
		t.Errorf("buckets (-want +got):\n%s", d)
	}
	if !p.hasGateway || p.gatewayOpen != 4 || p.gatewayConns != 12 {
		t.Errorf("gateway: has %v, open %v, total %v; want true, 4, 12", p.hasGateway, p.gatewayOpen, p.gatewayConns)
	}
}

func TestParsePageRefusesBadPages(t *testing.T) {
	tests := []struct{ name, page, want string }{
		{name: "not the text format", page: "fedmesh_sidecar_requests_total{", want: "bad metrics page"},
		{name: "negative counter", page: `fedmesh_sidecar_requests_total{direction="outbound",source_cluster="a",destination_cluster="b"} -1` + "\n", want: "value -1"},
		{name: "NaN counter", page: `fedmesh_sidecar_requests_total{direction="outbound",source_cluster="a",destination_cluster="b"} NaN` + "\n", want: "value NaN"},
		{name: "too many buckets", page: manyBuckets(maxBuckets + 1), want: "buckets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parsePage(strings.NewReader(tt.page))
			if err == nil || !errors.Is(err, ErrBadPage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrBadPage naming %q", err, tt.want)
			}
		})
	}
}

func manyBuckets(n int) string {
	var b strings.Builder
	b.WriteString("# TYPE fedmesh_sidecar_request_duration_seconds histogram\n")
	for i := 1; i <= n; i++ {
		b.WriteString(`fedmesh_sidecar_request_duration_seconds_bucket{direction="outbound",source_cluster="a",destination_cluster="b",le="`)
		b.WriteString(strings.Repeat("9", i))
		b.WriteString(`"} 1` + "\n")
	}
	b.WriteString(`fedmesh_sidecar_request_duration_seconds_bucket{direction="outbound",source_cluster="a",destination_cluster="b",le="+Inf"} 1` + "\n")
	b.WriteString(`fedmesh_sidecar_request_duration_seconds_count{direction="outbound",source_cluster="a",destination_cluster="b"} 1` + "\n")
	return b.String()
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name    string
		buckets map[float64]float64
		q, want float64
	}{
		{name: "inside the first bucket", buckets: map[float64]float64{0.1: 100, inf: 100}, q: 0.5, want: 0.05},
		{name: "interpolated in the second", buckets: map[float64]float64{0.1: 50, 0.2: 100, inf: 100}, q: 0.99, want: 0.198},
		{name: "in +Inf: the highest bound", buckets: map[float64]float64{0.1: 50, inf: 100}, q: 0.99, want: 0.1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quantile(tt.q, tt.buckets); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("quantile = %v, want %v", got, tt.want)
			}
		})
	}
	if got := quantile(0.99, map[float64]float64{inf: 0}); !math.IsNaN(got) {
		t.Errorf("quantile of an empty histogram = %v, want NaN", got)
	}
}

// FuzzParsePage feeds the parser what a target could answer: it never
// panics, and what it accepts holds no negative or NaN counts.
func FuzzParsePage(f *testing.F) {
	f.Add(samplePage)
	f.Add(manyBuckets(3))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePage(strings.NewReader(s))
		if err != nil {
			return
		}
		if len(p.edges) > maxEdgesPerPage {
			t.Fatalf("%d edges accepted", len(p.edges))
		}
		for k, c := range p.edges {
			if k.From == "" || k.To == "" || c.requests < 0 || math.IsNaN(c.requests) || c.errors < 0 || math.IsNaN(c.errors) {
				t.Fatalf("edge %v accepted with %+v", k, c)
			}
			if len(c.buckets) > maxBuckets+1 {
				t.Fatalf("edge %v accepted with %d buckets", k, len(c.buckets))
			}
		}
	})
}
