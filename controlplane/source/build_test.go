package source

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/topology"
)

var (
	local     = topology.Locality{Region: "us-west", Zone: "a", Cluster: "west-1"}
	created   = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	firstSeen = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
)

func ptr[T any](v T) *T { return &v }

func service(name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports},
	}
}

// withClusterIPs sets spec.clusterIP, and spec.clusterIPs when there are
// several, as a Service read from a file may.
func withClusterIPs(svc *corev1.Service, ips ...string) *corev1.Service {
	svc.Spec.ClusterIP = ips[0]
	if len(ips) > 1 {
		svc.Spec.ClusterIPs = ips
	}
	return svc
}

func serviceExport(name string, at time.Time) *mcsv1alpha1.ServiceExport {
	return &mcsv1alpha1.ServiceExport{ObjectMeta: metav1.ObjectMeta{
		Namespace: "demo", Name: name, CreationTimestamp: metav1.NewTime(at),
	}}
}

func workload(name, addr string, labels map[string]string, ports map[string]int32) *Workload {
	return &Workload{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name, Labels: labels},
		Spec:       WorkloadSpec{Address: addr, Ports: ports},
	}
}

func endpoint(addr string, port int32, portName, sa, workload string) catalog.Endpoint {
	return catalog.Endpoint{Address: addr, Port: port, PortName: portName, Locality: local,
		Ready: true, Serving: true, ServiceAccount: sa, Workload: workload}
}

func TestBuild(t *testing.T) {
	http := corev1.ServicePort{Name: "http", Port: 8080, AppProtocol: ptr("http")}
	udp := corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}
	echoSel := map[string]string{"app": "echo"}
	httpPort := catalog.Port{Name: "http", Protocol: catalog.TCP, AppProtocol: "http", Port: 8080}
	dnsPort := catalog.Port{Name: "dns", Protocol: catalog.UDP, Port: 53}

	exp := func(name string, at time.Time, typ catalog.ServiceType, ports []catalog.Port, eps ...catalog.Endpoint) catalog.Export {
		return catalog.Export{Service: catalog.Service{Namespace: "demo", Name: name, Type: typ, Ports: ports,
			ExportCreated: at, Cluster: local.Cluster}, Endpoints: eps}
	}
	labelled := func(e catalog.Endpoint, labels map[string]string) catalog.Endpoint {
		e.Labels = labels
		return e
	}
	zoned := func(e catalog.Endpoint, zone string, ready, serving bool) catalog.Endpoint {
		e.Locality.Zone, e.Ready, e.Serving = zone, ready, serving
		return e
	}

	withIPs := func(e catalog.Export, ips ...string) catalog.Export {
		e.Service.ClusterIPs = ips
		return e
	}

	tests := []struct {
		name         string
		objs         Objects
		want         []catalog.Export
		wantProblems []Problem
	}{
		{
			name: "only exported services, sorted",
			objs: Objects{
				Services:       []*corev1.Service{service("zeta", nil, http), service("alpha", nil, http), service("hidden", nil, http)},
				ServiceExports: []*mcsv1alpha1.ServiceExport{serviceExport("zeta", created), serviceExport("alpha", time.Time{})},
			},
			want: []catalog.Export{
				exp("alpha", firstSeen, catalog.ClusterSetIP, []catalog.Port{httpPort}),
				exp("zeta", created, catalog.ClusterSetIP, []catalog.Port{httpPort}),
			},
		},
		{
			name: "cluster IPs: clusterIPs, or clusterIP alone, canonical; none when headless",
			objs: Objects{
				Services: []*corev1.Service{
					withClusterIPs(service("dual", nil, http), "10.96.0.10", "fd00:96:0::10"),
					withClusterIPs(service("one", nil, http), "10.96.0.11"),
					withClusterIPs(service("headless", nil, http), "None"),
				},
				ServiceExports: []*mcsv1alpha1.ServiceExport{serviceExport("dual", created), serviceExport("one", created), serviceExport("headless", created)},
			},
			want: []catalog.Export{
				withIPs(exp("dual", created, catalog.ClusterSetIP, []catalog.Port{httpPort}), "10.96.0.10", "fd00:96::10"),
				exp("headless", created, catalog.Headless, []catalog.Port{httpPort}),
				withIPs(exp("one", created, catalog.ClusterSetIP, []catalog.Port{httpPort}), "10.96.0.11"),
			},
		},
		{
			name: "workloads by selector, ports by name, defaults",
			objs: Objects{
				Services:       []*corev1.Service{service("echo", echoSel, http, udp)},
				ServiceExports: []*mcsv1alpha1.ServiceExport{serviceExport("echo", created)},
				Workloads: []*Workload{
					workload("echo-2", "127.0.3.2", map[string]string{"app": "echo", "v": "2"}, map[string]int32{"http": 15006}),
					workload("echo-1", "127.0.3.1", echoSel, map[string]int32{"http": 15006, "dns": 15053}),
					workload("web", "127.0.3.9", map[string]string{"app": "web"}, map[string]int32{"http": 15006}),
				},
			},
			want: []catalog.Export{exp("echo", created, catalog.ClusterSetIP, []catalog.Port{dnsPort, httpPort},
				labelled(endpoint("127.0.3.1", 15053, "dns", "default", "echo-1"), echoSel),
				labelled(endpoint("127.0.3.1", 15006, "http", "default", "echo-1"), echoSel),
				labelled(endpoint("127.0.3.2", 15006, "http", "default", "echo-2"), map[string]string{"app": "echo", "v": "2"}),
			)},
		},
		{
			name: "no selector selects no workload",
			objs: Objects{
				Services:       []*corev1.Service{service("echo", nil, http)},
				ServiceExports: []*mcsv1alpha1.ServiceExport{serviceExport("echo", created)},
				Workloads:      []*Workload{workload("echo-1", "127.0.3.1", echoSel, map[string]int32{"http": 15006})},
			},
			want: []catalog.Export{exp("echo", created, catalog.ClusterSetIP, []catalog.Port{httpPort})},
		},
		{
			name: "endpoint slice conditions and zones, headless",
			objs: Objects{
				Services: []*corev1.Service{func() *corev1.Service {
					s := service("echo", nil, http)
					s.Spec.ClusterIP = corev1.ClusterIPNone
					return s
				}()},
				ServiceExports: []*mcsv1alpha1.ServiceExport{serviceExport("echo", created)},
				EndpointSlices: []*discoveryv1.EndpointSlice{{
					ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "echo-x",
						Labels:      map[string]string{discoveryv1.LabelServiceName: "echo"},
						Annotations: map[string]string{AnnotationServiceAccount: "echo"}},
					AddressType: discoveryv1.AddressTypeIPv4,
					Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr[int32](8080)}},
					Endpoints: []discoveryv1.Endpoint{
						{Addresses: []string{"10.0.0.2"}, Zone: ptr("b"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}},
						{Addresses: []string{"10.0.0.1", "10.0.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true)}},
					},
				}},
			},
			want: []catalog.Export{exp("echo", created, catalog.Headless, []catalog.Port{httpPort},
				zoned(endpoint("10.0.0.1", 8080, "http", "echo", ""), "a", false, true),
				zoned(endpoint("10.0.0.2", 8080, "http", "echo", ""), "b", false, false),
				zoned(endpoint("10.0.0.3", 8080, "http", "echo", ""), "a", false, true),
			)},
		},
		{
			name: "same address from a slice and a workload is kept once",
			objs: Objects{
				Services:       []*corev1.Service{service("echo", echoSel, http)},
				ServiceExports: []*mcsv1alpha1.ServiceExport{serviceExport("echo", created)},
				Workloads:      []*Workload{workload("echo-1", "10.0.0.1", echoSel, map[string]int32{"http": 15006})},
				EndpointSlices: []*discoveryv1.EndpointSlice{{
					ObjectMeta:  metav1.ObjectMeta{Namespace: "demo", Name: "echo-x", Labels: map[string]string{discoveryv1.LabelServiceName: "echo"}},
					AddressType: discoveryv1.AddressTypeIPv4,
					Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr[int32](8080)}},
					Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}},
				}},
			},
			want: []catalog.Export{exp("echo", created, catalog.ClusterSetIP, []catalog.Port{httpPort},
				endpoint("10.0.0.1", 8080, "http", "default", ""))},
			wantProblems: []Problem{{Object: "Workload demo/echo-1", Reason: ReasonDuplicate}},
		},
		{
			name: "export without service, service without ports",
			objs: Objects{
				Services:       []*corev1.Service{service("empty", nil)},
				ServiceExports: []*mcsv1alpha1.ServiceExport{serviceExport("empty", created), serviceExport("ghost", created)},
			},
			want: []catalog.Export{},
			wantProblems: []Problem{
				{Object: "Service demo/empty", Reason: ReasonInvalid},
				{Object: "ServiceExport demo/ghost", Reason: ReasonUnmatched, Err: ErrNoService},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems := Build(&tt.objs, local, func(catalog.ServiceKey) time.Time { return firstSeen })
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("exports (-want +got):\n%s", diff)
			}
			// Compare problems without their messages; check sentinels.
			strip := make([]Problem, len(problems))
			for i, p := range problems {
				strip[i] = Problem{File: p.File, Doc: p.Doc, Object: p.Object, Reason: p.Reason}
				if i < len(tt.wantProblems) && tt.wantProblems[i].Err != nil {
					if !errors.Is(p, tt.wantProblems[i].Err) {
						t.Errorf("problem %d = %v, want it to wrap %v", i, p, tt.wantProblems[i].Err)
					}
				}
			}
			want := make([]Problem, len(tt.wantProblems))
			for i, p := range tt.wantProblems {
				p.Err = nil
				want[i] = p
			}
			if diff := cmp.Diff(want, strip, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			for i := range got {
				if err := got[i].Validate(); err != nil {
					t.Errorf("export %d invalid: %v", i, err)
				}
			}
		})
	}
}

func TestWorkloadPort(t *testing.T) {
	tests := []struct {
		name         string
		ports        map[string]int32
		portName     string
		servicePorts int
		want         int32
		wantOK       bool
	}{
		{"named port listed", map[string]int32{"http": 15006, "grpc": 15007}, "grpc", 2, 15007, true},
		{"named port not listed", map[string]int32{"http": 15006}, "grpc", 2, 0, false},
		{"named single port, other key", map[string]int32{"web": 15006}, "http", 1, 0, false},
		{"unnamed port, empty key", map[string]int32{"": 15006, "x": 1}, "", 1, 15006, true},
		{"unnamed port, only entry", map[string]int32{"x": 15008}, "", 1, 15008, true},
		{"unnamed port, two entries", map[string]int32{"x": 1, "y": 2}, "", 1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Workload{Spec: WorkloadSpec{Ports: tt.ports}}
			got, ok := WorkloadPort(w, tt.portName, tt.servicePorts)
			if diff := cmp.Diff([]any{tt.want, tt.wantOK}, []any{got, ok}); diff != "" {
				t.Errorf("WorkloadPort (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProblemError(t *testing.T) {
	ve := &catalog.ValidationError{Object: "Service demo/echo", Fields: []*catalog.FieldError{{Field: "spec.ports[0].port", Value: "0", Reason: "must be between 1 and 65535"}}}
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{"everything", Problem{File: "a.yaml", Doc: 2, Object: "Service demo/echo", Reason: ReasonInvalid, Err: ve},
			`a.yaml: document 2: Service demo/echo: invalid: spec.ports[0].port "0": must be between 1 and 65535`},
		{"catalog validation error, named once", Problem{Object: "Service demo/echo", Reason: ReasonInvalid,
			Err: &catalog.ValidationError{Object: "service demo/echo", Fields: []*catalog.FieldError{{Field: "ports", Reason: "must have at least one port"}}}},
			"Service demo/echo: invalid: ports: must have at least one port"},
		{"whole file", Problem{File: "a.yaml", Reason: ReasonRead, Err: errors.New("permission denied")},
			"a.yaml: read: permission denied"},
		{"no file", Problem{Object: "ServiceExport demo/x", Reason: ReasonUnmatched, Err: ErrNoService},
			"ServiceExport demo/x: unmatched: no Service of that namespace and name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.p.Error()); diff != "" {
				t.Errorf("Error() (-want +got):\n%s", diff)
			}
		})
	}
	b, err := Problem{File: "a.yaml", Doc: 1, Reason: ReasonParse, Err: errors.New("bad")}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(`{"file":"a.yaml","doc":1,"reason":"parse","message":"bad"}`, string(b)); diff != "" {
		t.Errorf("MarshalJSON (-want +got):\n%s", diff)
	}
}
