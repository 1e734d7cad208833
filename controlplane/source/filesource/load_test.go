package filesource

import (
	"errors"
	"time"

	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
)

func TestLoad(t *testing.T) {
	notReady := labelled(ep("127.0.1.2", 15006, "http", "echo", "echo-2"), "app", "echo", "version", "v2")
	notReady.Ready, notReady.Serving = false, false
	notReady.Locality.Zone = "b"

	sliceEP := func(addr string, port int32, name string) catalog.Endpoint {
		return ep(addr, port, name, "echo", "")
	}
	terminating := sliceEP("10.0.0.1", 8443, "http")
	terminating.Ready, terminating.Serving = false, true
	terminating.Locality.Zone = "c"
	terminating.Workload = "echo-abc"
	terminatingGRPC := terminating
	terminatingGRPC.Port, terminatingGRPC.PortName = 9443, "grpc"

	twoPorts := []catalog.Port{
		{Name: "http", Protocol: catalog.TCP, AppProtocol: "http", Port: 8080},
		{Name: "grpc", Protocol: catalog.TCP, AppProtocol: "grpc", Port: 9090},
	}

	tests := []struct {
		name         string
		files        map[string]string
		want         []catalog.Export
		wantProblems []probe
	}{
		{
			name:  "service, export and workloads",
			files: map[string]string{"echo.yaml": docs(echoService, echoExport, echoWorkloads)},
			want: []catalog.Export{export("echo", exportTime, httpPort,
				labelled(ep("127.0.1.1", 15006, "http", "echo", "echo-1"), "app", "echo"), notReady)},
		},
		{
			name: "objects spread over files",
			files: map[string]string{
				"a-service.yaml":   echoService,
				"b-export.yml":     echoExport,
				"c-workloads.yaml": echoWorkloads,
			},
			want: []catalog.Export{export("echo", exportTime, httpPort,
				labelled(ep("127.0.1.1", 15006, "http", "echo", "echo-1"), "app", "echo"), notReady)},
		},
		{
			name: "endpoint slices",
			files: map[string]string{"echo.yaml": docs(`apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  ports:
    - {name: grpc, port: 9090, appProtocol: grpc, protocol: TCP}
    - {name: http, port: 8080, appProtocol: http}
`, echoExport, `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-abc12
  namespace: demo
  labels: {kubernetes.io/service-name: echo}
  annotations: {fedmesh.io/service-account: echo}
addressType: IPv4
ports:
  - {name: http, port: 8443}
  - {name: grpc, port: 9443, protocol: TCP}
endpoints:
  - addresses: [10.0.0.1]
    zone: c
    conditions: {ready: false, serving: true, terminating: true}
    targetRef: {kind: Pod, name: echo-abc}
  - addresses: [10.0.0.2]
`)},
			want: []catalog.Export{export("echo", exportTime, twoPorts,
				terminatingGRPC, terminating,
				sliceEP("10.0.0.2", 9443, "grpc"), sliceEP("10.0.0.2", 8443, "http"))},
		},
		{
			name: "headless service, slice without service account",
			files: map[string]string{"echo.yaml": docs(`apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  clusterIP: None
  ports: [{name: http, port: 8080, appProtocol: http}]
`, echoExport, `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: demo, labels: {kubernetes.io/service-name: echo}}
addressType: IPv6
ports: [{name: http, port: 8080}]
endpoints: [{addresses: ["fd00::1"]}]
`)},
			want: func() []catalog.Export {
				e := export("echo", exportTime, httpPort, ep("fd00::1", 8080, "http", "default", ""))
				e.Service.Type = catalog.Headless
				return []catalog.Export{e}
			}(),
		},
		{
			name: "workloads serve only the service ports they list",
			files: map[string]string{"echo.yaml": docs(`apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  selector: {app: echo}
  ports:
    - {name: http, port: 8080, appProtocol: http}
    - {name: grpc, port: 9090, appProtocol: grpc}
`, echoExport, `apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-1, namespace: demo, labels: {app: echo}}
spec: {address: 127.0.1.1, ports: {http: 15006, grpc: 15007}}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-2, namespace: demo, labels: {app: echo}}
spec: {address: 127.0.1.2, ports: {http: 15006}}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: other, namespace: demo, labels: {app: other}}
spec: {address: 127.0.1.3, ports: {http: 15006}}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-elsewhere, namespace: prod, labels: {app: echo}}
spec: {address: 127.0.1.4, ports: {http: 15006}}
`)},
			want: []catalog.Export{export("echo", exportTime, twoPorts,
				labelled(ep("127.0.1.1", 15007, "grpc", "default", "echo-1"), "app", "echo"),
				labelled(ep("127.0.1.1", 15006, "http", "default", "echo-1"), "app", "echo"),
				labelled(ep("127.0.1.2", 15006, "http", "default", "echo-2"), "app", "echo"))},
		},
		{
			name: "single unnamed port: key \"\" or the only entry",
			files: map[string]string{"echo.yaml": docs(`apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  selector: {app: echo}
  ports: [{port: 8080}]
`, echoExport, `apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-1, namespace: demo, labels: {app: echo}}
spec: {address: 127.0.1.1, ports: {"": 15006, other: 15007}}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-2, namespace: demo, labels: {app: echo}}
spec: {address: 127.0.1.2, ports: {tcp: 15008}}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-3, namespace: demo, labels: {app: echo}}
spec: {address: 127.0.1.3, ports: {a: 15006, b: 15007}}
`)},
			want: []catalog.Export{export("echo", exportTime, []catalog.Port{{Protocol: catalog.TCP, Port: 8080}},
				labelled(ep("127.0.1.1", 15006, "", "default", "echo-1"), "app", "echo"),
				labelled(ep("127.0.1.2", 15008, "", "default", "echo-2"), "app", "echo"))},
		},
		{
			name:  "no ServiceExport: not exported",
			files: map[string]string{"echo.yaml": docs(echoService, echoWorkloads)},
			want:  []catalog.Export{},
		},
		{
			name:  "creationTimestamp unset: first seen",
			files: map[string]string{"echo.json": `{"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport", "metadata": {"name": "echo", "namespace": "demo"}}`, "svc.yaml": echoService},
			want:  []catalog.Export{export("echo", seen, httpPort)},
		},
		{
			name: "unknown field",
			files: map[string]string{"echo.yaml": docs(echoExport, `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  ports: [{name: http, port: 8080, appProtocl: http}]
`)},
			want:         []catalog.Export{},
			wantProblems: []probe{{File: "echo.yaml", Doc: 2, Object: "Service demo/echo", Reason: source.ReasonParse, Msg: `unknown field "spec.ports[0].appProtocl"`}},
		},
		{
			name:         "bad YAML",
			files:        map[string]string{"echo.yaml": docs(echoService, echoExport, "spec: [unclosed\n")},
			want:         []catalog.Export{},
			wantProblems: []probe{{File: "echo.yaml", Doc: 3, Reason: source.ReasonParse, Msg: "yaml: line"}},
		},
		{
			name: "invalid port number",
			files: map[string]string{
				"export.yaml": echoExport,
				"svc.yaml": `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec: {ports: [{name: http, port: 70000}]}
`},
			want: []catalog.Export{},
			wantProblems: []probe{
				{File: "svc.yaml", Doc: 1, Object: "Service demo/echo", Reason: source.ReasonInvalid, Msg: `spec.ports[0].port "70000": must be between 1 and 65535`},
				{File: "export.yaml", Doc: 1, Object: "ServiceExport demo/echo", Reason: source.ReasonUnmatched, Msg: "no Service"},
			},
		},
		{
			name: "duplicate port names",
			files: map[string]string{"svc.yaml": `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec: {ports: [{name: http, port: 8080}, {name: http, port: 8081}]}
`},
			want:         []catalog.Export{},
			wantProblems: []probe{{File: "svc.yaml", Doc: 1, Object: "Service demo/echo", Reason: source.ReasonInvalid, Msg: `spec.ports[1].name "http": duplicate port name`}},
		},
		{
			name: "workload labels reach its endpoints, empty values left out",
			files: map[string]string{"echo.yaml": docs(echoService, echoExport, `apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata:
  name: echo-1
  namespace: demo
  labels: {app: echo, topology.fedmesh.io/rack: r7, tier: gold, canary: ""}
spec: {address: 127.0.1.1, ports: {http: 15006}, serviceAccount: echo}
`)},
			want: []catalog.Export{export("echo", exportTime, httpPort,
				labelled(ep("127.0.1.1", 15006, "http", "echo", "echo-1"), "app", "echo", "topology.fedmesh.io/rack", "r7", "tier", "gold"))},
		},
		{
			name: "workload with a bad label: refused, named",
			files: map[string]string{"echo.yaml": docs(echoService, echoExport), "w.yaml": `apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-1, namespace: demo, labels: {app: echo, tier: "gold plated"}}
spec: {address: 127.0.1.1, ports: {http: 15006}}
`},
			want: []catalog.Export{export("echo", exportTime, httpPort)},
			wantProblems: []probe{{File: "w.yaml", Doc: 1, Object: "Workload demo/echo-1", Reason: source.ReasonInvalid,
				Msg: `metadata.labels "tier": value "gold plated" of key "tier"`}},
		},
		{
			name: "invalid workload",
			files: map[string]string{"w.yaml": `apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-1, namespace: demo}
spec: {address: not-an-ip, ports: {HTTP: 0}, serviceAccount: Echo}
`},
			want: []catalog.Export{},
			wantProblems: []probe{{File: "w.yaml", Doc: 1, Object: "Workload demo/echo-1", Reason: source.ReasonInvalid,
				Msg: `spec.address "not-an-ip": must be an IPv4 or IPv6 address; spec.ports "HTTP": key must be a DNS-1123 label`}},
		},
		{
			name: "duplicate objects: first file wins",
			files: map[string]string{
				"a.yaml": docs(echoService, echoExport),
				"b.yaml": `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec: {ports: [{name: http, port: 9999}]}
`},
			want: []catalog.Export{export("echo", exportTime, httpPort)},
			wantProblems: []probe{{File: "b.yaml", Doc: 1, Object: "Service demo/echo", Reason: source.ReasonDuplicate,
				Msg: "already defined in a.yaml document 1"}},
		},
		{
			name: "unknown kinds are skipped, the rest is used",
			files: map[string]string{"echo.yaml": docs(`apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: demo}
`, `apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata: {name: old, namespace: demo}
`, `apiVersion: v1
kind: Namespace
metadata: {name: demo}
`, echoService, echoExport)},
			want: []catalog.Export{export("echo", exportTime, httpPort)},
			wantProblems: []probe{
				{File: "echo.yaml", Doc: 1, Object: "ConfigMap demo/settings", Reason: source.ReasonUnknownKind, Msg: "kind ConfigMap"},
				{File: "echo.yaml", Doc: 2, Object: "EndpointSlice demo/old", Reason: source.ReasonUnknownKind, Msg: `apiVersion "discovery.k8s.io/v1beta1" of kind EndpointSlice is not supported`},
			},
		},
		{
			name: "slice port naming no service port",
			files: map[string]string{"echo.yaml": docs(echoService, echoExport, `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: demo, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: admin, port: 9000}]
endpoints: [{addresses: [10.0.0.1]}]
`)},
			want: []catalog.Export{export("echo", exportTime, httpPort)},
			wantProblems: []probe{{File: "echo.yaml", Doc: 3, Object: "EndpointSlice demo/echo-1", Reason: source.ReasonUnmatched,
				Msg: `ports[0].name "admin" names no port of Service demo/echo`}},
		},
		{
			name: "ExternalName cannot be exported",
			files: map[string]string{"echo.yaml": docs(`apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec: {type: ExternalName, externalName: echo.example.com}
`, echoExport)},
			want:         []catalog.Export{},
			wantProblems: []probe{{File: "echo.yaml", Doc: 2, Object: "ServiceExport demo/echo", Reason: source.ReasonInvalid, Msg: "ExternalName"}},
		},
		{
			name: "hidden, backup and other files are ignored",
			files: map[string]string{
				"echo.yaml":       docs(echoService, echoExport),
				".echo.yaml.swp":  "garbage: [",
				".hidden.yaml":    "garbage: [",
				"echo.yaml~":      "garbage: [",
				"#echo.yaml#":     "garbage: [",
				"notes.txt":       "garbage: [",
				"4913":            "",
				"README.md":       "# notes",
				"echo.yaml.dpkg~": "garbage: [",
			},
			want: []catalog.Export{export("echo", exportTime, httpPort)},
		},
		{
			name:  "empty directory",
			files: map[string]string{},
			want:  []catalog.Export{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			s := newSource(t, dir, nil)
			got, problems := s.Load()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("exports (-want +got):\n%s", diff)
			}
			checkProblems(t, tt.wantProblems, problems)
			for i := range got {
				if err := got[i].Validate(); err != nil {
					t.Errorf("export %d does not validate: %v", i, err)
				}
			}
		})
	}
}

func TestLoadIsStable(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"export.yaml": `apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: echo, namespace: demo}
`, "svc.yaml": echoService})
	now := seen
	s := newSource(t, dir, func(c *Config) { c.Now = func() time.Time { return now } })
	first, _ := s.Load()
	now = now.Add(time.Hour)
	writeFiles(t, dir, map[string]string{"svc.yaml": echoService + "  type: ClusterIP\n"})
	second, _ := s.Load()
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("re-read changed the exports (-first +second):\n%s", diff)
	}
	if got := second[0].Service.ExportCreated; !got.Equal(seen) {
		t.Errorf("export time = %v, want the first sight %v", got, seen)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{Cluster: "east-1"}},
		{"missing dir", Config{Dir: dir + "/nope", Cluster: "east-1"}},
		{"no cluster", Config{Dir: dir}},
		{"bad cluster", Config{Dir: dir, Cluster: "East_1"}},
		{"negative debounce", Config{Dir: dir, Cluster: "east-1", Debounce: -1}},
		{"negative rescan", Config{Dir: dir, Cluster: "east-1", Rescan: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, ErrConfig) {
				t.Errorf("New() error = %v, want ErrConfig", err)
			}
		})
	}
}
