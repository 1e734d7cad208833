package inject

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestProbesRewritten: each kind of probe the kubelet makes over the
// network (httpGet over HTTP and HTTPS, tcpSocket, grpc), as liveness,
// readiness or startup probe, by port number or name, becomes an HTTP GET
// of the sidecar's ready port, and the sidecar is told the original;
// probes of another host, of an undeclared named port and exec probes
// are left alone.
func TestProbesRewritten(t *testing.T) {
	svc := "shop.v1.Cart"
	httpGet := func(port intstr.IntOrString, scheme corev1.URIScheme) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: port, Scheme: scheme,
			HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "1"}}}}
	}
	tcp := func(port intstr.IntOrString, host string) corev1.ProbeHandler {
		return corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: port, Host: host}}
	}
	for _, tc := range []struct {
		name    string
		slot    string // livez, readyz or startupz
		handler corev1.ProbeHandler
		timeout int32
		want    *AppProbe // nil: left alone
	}{
		{name: "http by number", slot: "readyz", handler: httpGet(intstr.FromInt32(8080), ""),
			want: &AppProbe{Port: 8080, Path: "/healthz", Headers: map[string]string{"X-Probe": "1"}}},
		{name: "http by name", slot: "livez", handler: httpGet(intstr.FromString("http"), corev1.URISchemeHTTP), timeout: 3,
			want: &AppProbe{Port: 8080, Path: "/healthz", Headers: map[string]string{"X-Probe": "1"}, TimeoutSeconds: 3}},
		{name: "https by number", slot: "startupz", handler: httpGet(intstr.FromInt32(8443), corev1.URISchemeHTTPS),
			want: &AppProbe{Port: 8443, Scheme: "HTTPS", Path: "/healthz", Headers: map[string]string{"X-Probe": "1"}}},
		{name: "https by name", slot: "readyz", handler: httpGet(intstr.FromString("https"), corev1.URISchemeHTTPS),
			want: &AppProbe{Port: 8443, Scheme: "HTTPS", Path: "/healthz", Headers: map[string]string{"X-Probe": "1"}}},
		{name: "tcp by number", slot: "livez", handler: tcp(intstr.FromInt32(5432), ""), want: &AppProbe{Kind: ProbeTCP, Port: 5432}},
		{name: "tcp by name", slot: "startupz", handler: tcp(intstr.FromString("db"), ""), timeout: 5,
			want: &AppProbe{Kind: ProbeTCP, Port: 5432, TimeoutSeconds: 5}},
		{name: "grpc with a service", slot: "readyz", handler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090, Service: &svc}},
			want: &AppProbe{Kind: ProbeGRPC, Port: 9090, Service: svc}},
		{name: "grpc without a service", slot: "livez", handler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090}},
			want: &AppProbe{Kind: ProbeGRPC, Port: 9090}},
		{name: "http of another host", slot: "readyz", handler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Host: "198.18.0.9", Port: intstr.FromInt32(80)}}},
		{name: "tcp of another host", slot: "readyz", handler: tcp(intstr.FromInt32(80), "198.18.0.9")},
		{name: "undeclared named port", slot: "livez", handler: tcp(intstr.FromString("nope"), "")},
		{name: "grpc port out of range", slot: "livez", handler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 70000}}},
		{name: "exec", slot: "startupz", handler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInjector(t)
			p := appPod(map[string]string{AnnotationInboundMode: ModeStrict})
			app := &p.Spec.Containers[0]
			app.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "https", ContainerPort: 8443}, {Name: "db", ContainerPort: 5432}}
			probe := &corev1.Probe{ProbeHandler: *tc.handler.DeepCopy(), TimeoutSeconds: tc.timeout, PeriodSeconds: 7}
			slots := map[string]**corev1.Probe{"livez": &app.LivenessProbe, "readyz": &app.ReadinessProbe, "startupz": &app.StartupProbe}
			*slots[tc.slot] = probe
			if ok, err := in.Inject(&p.ObjectMeta, &p.Spec); !ok || err != nil {
				t.Fatalf("Inject = %t, %v", ok, err)
			}
			got := *slots[tc.slot]
			var probes map[string]AppProbe
			if arg := argOf(p.Spec.InitContainers[1].Args, "--app-probes"); arg != "" {
				if err := json.Unmarshal([]byte(arg), &probes); err != nil {
					t.Fatal(err)
				}
			}
			if tc.want == nil {
				if d := cmp.Diff(tc.handler, got.ProbeHandler); d != "" {
					t.Errorf("the probe changed (-want +got):\n%s", d)
				}
				if len(probes) != 0 {
					t.Errorf("--app-probes %v, want none", probes)
				}
				return
			}
			path := AppHealthPrefix + "app/" + tc.slot
			wantHandler := corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(DefaultReadyPort)}}
			if d := cmp.Diff(wantHandler, got.ProbeHandler); d != "" {
				t.Errorf("the rewritten probe (-want +got):\n%s", d)
			}
			if got.TimeoutSeconds != tc.timeout || got.PeriodSeconds != 7 {
				t.Errorf("timeout %d and period %d, want the pod's %d and 7", got.TimeoutSeconds, got.PeriodSeconds, tc.timeout)
			}
			if d := cmp.Diff(map[string]AppProbe{path: *tc.want}, probes); d != "" {
				t.Errorf("--app-probes (-want +got):\n%s", d)
			}
		})
	}
}

// TestProbesOfEveryContainer: the three probes of two containers are
// rewritten each to a path of its own, which the sidecar is told.
func TestProbesOfEveryContainer(t *testing.T) {
	in := testInjector(t)
	p := appPod(nil)
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "db", Image: "db:1"})
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(1000 + i))}}}
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/r", Port: intstr.FromInt32(int32(2000 + i))}}}
		c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(3000 + i)}}}
	}
	if ok, err := in.Inject(&p.ObjectMeta, &p.Spec); !ok || err != nil {
		t.Fatalf("Inject = %t, %v", ok, err)
	}
	var got map[string]AppProbe
	if err := json.Unmarshal([]byte(argOf(p.Spec.InitContainers[1].Args, "--app-probes")), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]AppProbe{
		"/app-health/app/livez":    {Kind: ProbeTCP, Port: 1000},
		"/app-health/app/readyz":   {Port: 2000, Path: "/r"},
		"/app-health/app/startupz": {Kind: ProbeGRPC, Port: 3000},
		"/app-health/db/livez":     {Kind: ProbeTCP, Port: 1001},
		"/app-health/db/readyz":    {Port: 2001, Path: "/r"},
		"/app-health/db/startupz":  {Kind: ProbeGRPC, Port: 3001},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("--app-probes (-want +got):\n%s", d)
	}
	for _, c := range p.Spec.Containers {
		for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if pr.HTTPGet == nil || pr.TCPSocket != nil || pr.GRPC != nil || pr.HTTPGet.Port.IntValue() != DefaultReadyPort {
				t.Errorf("container %s: probe %+v, want an HTTP GET of the ready port alone", c.Name, pr.ProbeHandler)
			}
		}
	}
}

// TestProbeJSONCompatible: an HTTP probe's JSON is what it was before the
// other kinds, so a sidecar of the version before reads it alike.
func TestProbeJSONCompatible(t *testing.T) {
	b, err := json.Marshal(AppProbe{Port: 8080, Path: "/ready", Headers: map[string]string{"X-Probe": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"port":8080,"path":"/ready","headers":{"X-Probe":"1"}}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
}
