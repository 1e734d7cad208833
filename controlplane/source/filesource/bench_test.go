package filesource

import (
	"fmt"
	"strings"
	"testing"
)

// benchDir writes n services, each exported with two workloads, one file
// per service.
func benchDir(b *testing.B, n int) string {
	dir := b.TempDir()
	files := make(map[string]string, n)
	for i := range n {
		name := fmt.Sprintf("svc-%d", i)
		y := strings.NewReplacer("echo", name, "127.0.1.", fmt.Sprintf("127.%d.%d.", 1+i/250, i%250)).
			Replace(docs(echoService, echoExport, echoWorkloads))
		files[name+".yaml"] = y
	}
	writeFiles(&testing.T{}, dir, files)
	return dir
}

func BenchmarkParseFile(b *testing.B) {
	data := []byte(docs(echoService, echoExport, echoWorkloads))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if f := ParseFile("echo.yaml", data); f.Bad() {
			b.Fatal(f.Problems)
		}
	}
}

// BenchmarkLoadCold reads and builds 200 services from scratch.
func BenchmarkLoadCold(b *testing.B) {
	dir := benchDir(b, 200)
	for b.Loop() {
		s, err := New(Config{Dir: dir, Cluster: "east-1"})
		if err != nil {
			b.Fatal(err)
		}
		if e, p := s.Load(); len(e) != 200 || len(p) != 0 {
			b.Fatalf("%d exports, problems %v", len(e), p)
		}
	}
}

// BenchmarkRescanUnchanged is the periodic safety-net rescan of 200
// unchanged files: read and hash only.
func BenchmarkRescanUnchanged(b *testing.B) {
	dir := benchDir(b, 200)
	s, err := New(Config{Dir: dir, Cluster: "east-1"})
	if err != nil {
		b.Fatal(err)
	}
	s.Load()
	for b.Loop() {
		s.mu.Lock()
		changed := s.scanLocked()
		s.mu.Unlock()
		if changed {
			b.Fatal("unchanged directory changed the exports")
		}
	}
}
