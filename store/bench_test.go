package store_test

import (
	"context"
	"testing"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/store/storetest"
)

const benchServices = 1000

// BenchmarkSetExportsInitial writes 1,000 services with two endpoints each
// into an empty prefix: one transaction of 1,000 puts per iteration.
func BenchmarkSetExportsInitial(b *testing.B) {
	ctx := context.Background()
	s := storetest.Open(b, "east-1")
	set := manyExports("east-1", benchServices)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if _, err := s.SetExports(ctx, nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.SetExports(ctx, set); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetExportsOneEndpointChange replaces a set of 1,000 services in
// which one endpoint changed: 999 services are skipped, one is put.
func BenchmarkSetExportsOneEndpointChange(b *testing.B) {
	ctx := context.Background()
	s := storetest.Open(b, "east-1")
	sets := [2][]catalog.Export{manyExports("east-1", benchServices), manyExports("east-1", benchServices)}
	sets[1][500].Endpoints[1].Ready = false
	if _, err := s.SetExports(ctx, sets[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.SetExports(ctx, sets[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListExports reads and decodes 1,000 services.
func BenchmarkListExports(b *testing.B) {
	ctx := context.Background()
	s := storetest.Open(b, "east-1")
	if _, err := s.SetExports(ctx, manyExports("east-1", benchServices)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		es, _, err := s.ListExports(ctx, "east-1")
		if err != nil {
			b.Fatal(err)
		}
		if len(es) != benchServices {
			b.Fatalf("listed %d exports, want %d", len(es), benchServices)
		}
	}
}
