package xdsresource

import (
	"errors"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestQuotaLoadRoundTrip(t *testing.T) {
	want := QuotaLoad{Quota: "demo/limits/per-minute", Admitted: 17, Refused: 4, Interval: 2 * time.Second}
	cs := QuotaClusterStats(want)
	if !IsQuotaLoad(cs) {
		t.Fatalf("IsQuotaLoad(%v) = false", cs)
	}
	got, err := ParseQuotaLoad(cs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseQuotaLoad(QuotaClusterStats()) (-want +got):\n%s", diff)
	}
	if got := cs.GetDroppedRequests()[0].GetCategory(); got != DropCategoryRateLimited {
		t.Errorf("dropped category %q, want %q", got, DropCategoryRateLimited)
	}
}

func TestParseQuotaLoadRefuses(t *testing.T) {
	good := func() *endpointv3.ClusterStats {
		return QuotaClusterStats(QuotaLoad{Quota: "demo/p/q", Admitted: 1, Interval: time.Second})
	}
	tests := []struct {
		name   string
		change func(*endpointv3.ClusterStats)
	}{
		{"not a quota", func(cs *endpointv3.ClusterStats) { cs.ClusterName = "outbound|8080||echo.demo" }},
		{"two segments", func(cs *endpointv3.ClusterStats) { cs.ClusterName = QuotaLoadPrefix + "demo/p" }},
		{"empty segment", func(cs *endpointv3.ClusterStats) { cs.ClusterName = QuotaLoadPrefix + "demo//q" }},
		{"upper case", func(cs *endpointv3.ClusterStats) { cs.ClusterName = QuotaLoadPrefix + "demo/P/q" }},
		{"no interval", func(cs *endpointv3.ClusterStats) { cs.LoadReportInterval = nil }},
		{"zero interval", func(cs *endpointv3.ClusterStats) { cs.LoadReportInterval = durationpb.New(0) }},
		{"interval too long", func(cs *endpointv3.ClusterStats) { cs.LoadReportInterval = durationpb.New(2 * time.Hour) }},
		{"invalid interval", func(cs *endpointv3.ClusterStats) { cs.LoadReportInterval = &durationpb.Duration{Seconds: 1, Nanos: -1} }},
		{"overflow", func(cs *endpointv3.ClusterStats) {
			cs.UpstreamLocalityStats = append(cs.UpstreamLocalityStats, &endpointv3.UpstreamLocalityStats{TotalSuccessfulRequests: ^uint64(0)})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := good()
			tt.change(cs)
			if _, err := ParseQuotaLoad(cs); !errors.Is(err, ErrBadLoadReport) {
				t.Errorf("ParseQuotaLoad() error = %v, want ErrBadLoadReport", err)
			}
		})
	}
}

func FuzzParseQuotaLoad(f *testing.F) {
	b, _ := proto.Marshal(QuotaClusterStats(QuotaLoad{Quota: "demo/p/q", Admitted: 3, Refused: 2, Interval: time.Second}))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var cs endpointv3.ClusterStats
		if proto.Unmarshal(b, &cs) != nil {
			return
		}
		l, err := ParseQuotaLoad(&cs)
		if err != nil {
			if !errors.Is(err, ErrBadLoadReport) {
				t.Fatalf("error %v does not wrap ErrBadLoadReport", err)
			}
			return
		}
		if l.Interval <= 0 || l.Interval > MaxLoadInterval || checkQuotaID(l.Quota) != nil {
			t.Fatalf("accepted a bad report: %+v", l)
		}
	})
}
