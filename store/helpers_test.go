package store_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/topology"
)

// TestMain checks for leaked goroutines. The embedded etcd and its client
// stop every goroutine they start on Close, so nothing is ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// export builds a valid export of cluster with one http port and an
// endpoint per address.
func export(cluster, ns, name string, addrs ...string) catalog.Export {
	e := catalog.Export{Service: catalog.Service{
		Namespace: ns, Name: name, Type: catalog.ClusterSetIP, Cluster: cluster,
		Ports:         []catalog.Port{{Name: "http", Port: 8080, AppProtocol: catalog.AppHTTP}},
		ExportCreated: t0,
	}}
	for _, a := range addrs {
		e.Endpoints = append(e.Endpoints, catalog.Endpoint{
			Address: a, Port: 15006, PortName: "http", Ready: true, Serving: true,
			Locality:       topology.Locality{Region: "us-east", Zone: "a", Cluster: cluster},
			ServiceAccount: "default",
		})
	}
	return e
}

// manyExports builds n services with two endpoints each.
func manyExports(cluster string, n int) []catalog.Export {
	out := make([]catalog.Export, n)
	for i := range out {
		out[i] = export(cluster, "ns", fmt.Sprintf("svc-%04d", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))
	}
	return out
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// counterValue reads a counter (or one child of a vector).
func counterValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	var sum float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		sum += pb.GetCounter().GetValue()
	}
	return sum
}
