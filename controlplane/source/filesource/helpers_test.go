package filesource

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/topology"
)

// The locality of the tests' cluster.
var testLocality = topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"}

// seen is the clock of tests: when the source first saw an export.
var seen = time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newSource(t *testing.T, dir string, mod func(*Config)) *FileSource {
	t.Helper()
	cfg := Config{
		Dir: dir, Cluster: testLocality.Cluster, Region: testLocality.Region, Zone: testLocality.Zone,
		Now: func() time.Time { return seen },
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// probe is the part of a Problem a test checks; Msg is a substring of the
// problem's error.
type probe struct {
	File   string
	Doc    int
	Object string
	Reason source.Reason
	Msg    string
}

func checkProblems(t *testing.T, want []probe, got []source.Problem) {
	t.Helper()
	gotp := make([]probe, len(got))
	for i, p := range got {
		gotp[i] = probe{File: p.File, Doc: p.Doc, Object: p.Object, Reason: p.Reason}
		if i < len(want) && want[i].Msg != "" && strings.Contains(p.Error(), want[i].Msg) {
			gotp[i].Msg = want[i].Msg
		} else if i < len(want) && want[i].Msg != "" {
			gotp[i].Msg = p.Error()
		}
	}
	if diff := cmp.Diff(want, gotp, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	for _, p := range got {
		if p.File != "" && !strings.HasPrefix(p.Error(), p.File+": ") {
			t.Errorf("problem %q does not start with its file %q", p.Error(), p.File)
		}
	}
}

// ep is an endpoint of the tests' cluster.
func ep(addr string, port int32, portName, sa, workload string) catalog.Endpoint {
	return catalog.Endpoint{
		Address: addr, Port: port, PortName: portName, Locality: testLocality,
		Ready: true, Serving: true, ServiceAccount: sa, Workload: workload,
	}
}

// labelled is ep with labels.
func labelled(ep catalog.Endpoint, kv ...string) catalog.Endpoint {
	ep.Labels = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		ep.Labels[kv[i]] = kv[i+1]
	}
	return ep
}

// export is a ClusterSetIP export of demo/NAME by the tests' cluster.
func export(name string, created time.Time, ports []catalog.Port, eps ...catalog.Endpoint) catalog.Export {
	return catalog.Export{
		Service: catalog.Service{
			Namespace: "demo", Name: name, Type: catalog.ClusterSetIP, Ports: ports,
			ExportCreated: created, Cluster: testLocality.Cluster,
		},
		Endpoints: eps,
	}
}

var httpPort = []catalog.Port{{Name: "http", Protocol: catalog.TCP, AppProtocol: "http", Port: 8080}}

// YAML building blocks.
const (
	echoService = `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  selector: {app: echo}
  ports:
    - {name: http, port: 8080, appProtocol: http}
`
	echoExport = `apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: echo, namespace: demo, creationTimestamp: "2026-01-05T09:00:00Z"}
`
	echoWorkloads = `apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-1, namespace: demo, labels: {app: echo}}
spec: {address: 127.0.1.1, ports: {http: 15006}, serviceAccount: echo}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-2, namespace: demo, labels: {app: echo, version: v2}}
spec: {address: 127.0.1.2, ports: {http: 15006}, serviceAccount: echo, zone: b, ready: false}
`
)

var exportTime = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func docs(parts ...string) string { return strings.Join(parts, "---\n") }

// waitFor receives updates until one satisfies ok, failing the test at the
// deadline.
func waitFor(t *testing.T, updates <-chan []catalog.Export, what string, ok func([]catalog.Export) bool) []catalog.Export {
	t.Helper()
	deadline := time.After(20 * time.Second)
	var last []catalog.Export
	for {
		select {
		case u := <-updates:
			if ok(u) {
				return u
			}
			last = u
		case <-deadline:
			t.Fatalf("timed out waiting for %s; last update: %+v", what, last)
		}
	}
}

// waitProblems polls the source's problems until ok, failing at the
// deadline.
func waitProblems(t *testing.T, s *FileSource, what string, ok func([]source.Problem) bool) []source.Problem {
	t.Helper()
	var p []source.Problem
	poll.Until(t, 20*time.Second, what, func() error {
		if p = s.Problems(); !ok(p) {
			return fmt.Errorf("problems: %v", p)
		}
		return nil
	})
	return p
}
