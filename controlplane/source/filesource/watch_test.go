package filesource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
)

// run starts s.Run and returns its updates; the test's cleanup stops it and
// checks that it returned nil.
func run(t *testing.T, s *FileSource) <-chan []catalog.Export {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan []catalog.Export, 100)
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		err = s.Run(ctx, func(e []catalog.Export) { updates <- e })
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
	return updates
}

func endpointsOf(exports []catalog.Export, name string) []string {
	for _, e := range exports {
		if e.Service.Name == name {
			addrs := []string{}
			for _, ep := range e.Endpoints {
				addrs = append(addrs, ep.Address)
			}
			return addrs
		}
	}
	return nil
}

func hasEndpoints(name string, want ...string) func([]catalog.Export) bool {
	return func(e []catalog.Export) bool {
		got := endpointsOf(e, name)
		return got != nil && cmp.Equal(want, got)
	}
}

const workload3 = `apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-3, namespace: demo, labels: {app: echo}}
spec: {address: 127.0.1.3, ports: {http: 15006}}
`

// TestWatch adds, changes and deletes files under a running source, with
// the watch doing the work (the safety-net rescan is an hour away).
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s := newSource(t, dir, func(c *Config) {
		c.Debounce = 10 * time.Millisecond
		c.Rescan = time.Hour
		c.Registerer = reg
	})
	updates := run(t, s)

	first := waitFor(t, updates, "the initial update", func([]catalog.Export) bool { return true })
	if len(first) != 0 {
		t.Fatalf("initial exports of an empty dir = %+v, want none", first)
	}

	writeFiles(t, dir, map[string]string{"echo.yaml": docs(echoService, echoExport, echoWorkloads)})
	waitFor(t, updates, "echo with two endpoints", hasEndpoints("echo", "127.0.1.1", "127.0.1.2"))

	writeFiles(t, dir, map[string]string{"more.yaml": workload3})
	waitFor(t, updates, "a third endpoint from a new file", hasEndpoints("echo", "127.0.1.1", "127.0.1.2", "127.0.1.3"))

	// A bad version of a file: reported, and its last good objects stay.
	writeFiles(t, dir, map[string]string{"more.yaml": strings.Replace(workload3, "ports:", "portz:", 1)})
	problems := waitProblems(t, s, "the bad file reported", func(p []source.Problem) bool { return len(p) == 1 })
	if p := problems[0]; p.File != "more.yaml" || p.Reason != source.ReasonParse || p.Object != "Workload demo/echo-3" {
		t.Errorf("problem = %+v, want more.yaml Workload demo/echo-3 parse", p)
	}
	if got := endpointsOf(s.Exports(), "echo"); !cmp.Equal(got, []string{"127.0.1.1", "127.0.1.2", "127.0.1.3"}) {
		t.Errorf("endpoints while more.yaml is bad = %v, want its last good workload kept", got)
	}
	if got := counterValue(t, s.rejected.WithLabelValues("parse")); got != 1 {
		t.Errorf("rejected{reason=parse} = %v, want 1", got)
	}

	// Fixed: the new content is used and the problem is gone.
	writeFiles(t, dir, map[string]string{"more.yaml": `apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-3, namespace: demo, labels: {app: echo}}
spec: {address: 127.0.1.33, ports: {http: 15006}}
`})
	waitFor(t, updates, "the fixed file applied", hasEndpoints("echo", "127.0.1.1", "127.0.1.2", "127.0.1.33"))
	if p := s.Problems(); len(p) != 0 {
		t.Errorf("problems after the fix = %v, want none", p)
	}

	// Deleted: its objects go away.
	if err := os.Remove(filepath.Join(dir, "more.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, updates, "the deleted file's workload gone", hasEndpoints("echo", "127.0.1.1", "127.0.1.2"))

	// Withdrawing the ServiceExport withdraws the export.
	writeFiles(t, dir, map[string]string{"echo.yaml": docs(echoService, echoWorkloads)})
	waitFor(t, updates, "echo no longer exported", func(e []catalog.Export) bool { return len(e) == 0 })

	if got := counterValue(t, s.rejected.WithLabelValues("parse")); got != 1 {
		t.Errorf("rejected{reason=parse} at the end = %v, want 1", got)
	}
}

// TestWatchBadFromStart: a file that was never good contributes nothing,
// and the first update comes even though there are problems.
func TestWatchBadFromStart(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"echo.yaml": docs(echoService, echoExport),
		"bad.yaml":  echoWorkloads + "---\nnot: [closed\n",
	})
	s := newSource(t, dir, func(c *Config) { c.Debounce = 10 * time.Millisecond })
	updates := run(t, s)
	first := waitFor(t, updates, "the initial update", func([]catalog.Export) bool { return true })
	if got := endpointsOf(first, "echo"); len(got) != 0 {
		t.Errorf("endpoints = %v, want none from a file that was never good", got)
	}
	checkProblems(t, []probe{{File: "bad.yaml", Doc: 3, Reason: source.ReasonParse}}, s.Problems())

	writeFiles(t, dir, map[string]string{"bad.yaml": echoWorkloads})
	waitFor(t, updates, "the fixed file applied", hasEndpoints("echo", "127.0.1.1", "127.0.1.2"))
}

// TestRescan sees changes through the periodic rescan alone, as it must
// when the platform cannot watch: the debounce is an hour away.
func TestRescan(t *testing.T) {
	dir := t.TempDir()
	s := newSource(t, dir, func(c *Config) {
		c.Debounce = time.Hour
		c.Rescan = 10 * time.Millisecond
	})
	updates := run(t, s)
	waitFor(t, updates, "the initial update", func([]catalog.Export) bool { return true })
	writeFiles(t, dir, map[string]string{"echo.yaml": docs(echoService, echoExport, echoWorkloads)})
	waitFor(t, updates, "echo exported", hasEndpoints("echo", "127.0.1.1", "127.0.1.2"))
}

// TestDirectoryGoneKeepsState: a directory that cannot be listed is
// reported and withdraws nothing; when it is back, it is read again.
func TestDirectoryGoneKeepsState(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "cluster")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"echo.yaml": docs(echoService, echoExport, echoWorkloads)})
	s := newSource(t, dir, func(c *Config) {
		c.Debounce = 10 * time.Millisecond
		c.Rescan = 10 * time.Millisecond
	})
	updates := run(t, s)
	waitFor(t, updates, "echo exported", hasEndpoints("echo", "127.0.1.1", "127.0.1.2"))

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	problems := waitProblems(t, s, "the missing directory reported", func(p []source.Problem) bool { return len(p) == 1 })
	if !errors.Is(problems[0], os.ErrNotExist) || problems[0].Reason != source.ReasonRead {
		t.Errorf("problem = %v, want a read problem wrapping ErrNotExist", problems[0])
	}
	if got := endpointsOf(s.Exports(), "echo"); len(got) != 2 {
		t.Errorf("endpoints while the directory is gone = %v, want both kept", got)
	}

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"echo.yaml": docs(echoService, echoExport, workload3)})
	waitFor(t, updates, "the directory read again", hasEndpoints("echo", "127.0.1.3"))
}

func TestRunTwice(t *testing.T) {
	s := newSource(t, t.TempDir(), nil)
	updates := run(t, s)
	waitFor(t, updates, "the initial update", func([]catalog.Export) bool { return true })
	if err := s.Run(context.Background(), func([]catalog.Export) {}); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run() = %v, want ErrRunning", err)
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	newSource(t, t.TempDir(), func(c *Config) { c.Registerer = reg })
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if f.GetName() == "fedmesh_source_rejected_total" {
			n = len(f.GetMetric())
		}
	}
	if n != len(source.Reasons) {
		t.Errorf("rejected_total series = %d, want one per reason (%d)", n, len(source.Reasons))
	}
	if _, err := New(Config{Dir: t.TempDir(), Cluster: "east-1", Registerer: reg}); err == nil {
		t.Error("New() registering the same metrics twice succeeded, want an error")
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
