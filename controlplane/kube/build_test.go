package kube

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/topology"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func svc(name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo"}, Spec: corev1.ServiceSpec{Ports: ports}}
}

func httpPort(port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: "http", Port: port, Protocol: corev1.ProtocolTCP}
}

func export(name string) *mcsv1alpha1.ServiceExport {
	return &mcsv1alpha1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo", CreationTimestamp: metav1.NewTime(t0)}}
}

type sliceEP struct {
	addr, zone, node, pod string
	ready                 bool
}

func slice(service string, target int32, eps ...sliceEP) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: service + "-abc", Namespace: "demo",
			Labels: map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(target)}},
	}
	for _, e := range eps {
		ep := discoveryv1.Endpoint{Addresses: []string{e.addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(e.ready)}}
		if e.zone != "" {
			ep.Zone = ptr(e.zone)
		}
		if e.node != "" {
			ep.NodeName = ptr(e.node)
		}
		if e.pod != "" {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "demo", Name: e.pod}
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
	return es
}

func pod(name, sa, node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo"}, Spec: corev1.PodSpec{ServiceAccountName: sa, NodeName: node}}
}

func node(name, region, zone string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		corev1.LabelTopologyRegion: region, corev1.LabelTopologyZone: zone,
	}}}
}

func lookups(pods []*corev1.Pod, nodes []*corev1.Node) (func(string, string) (*corev1.Pod, bool), func(string) (*corev1.Node, bool)) {
	return func(ns, name string) (*corev1.Pod, bool) {
			for _, p := range pods {
				if p.Namespace == ns && p.Name == name {
					return p, true
				}
			}
			return nil, false
		}, func(name string) (*corev1.Node, bool) {
			for _, n := range nodes {
				if n.Name == name {
					return n, true
				}
			}
			return nil, false
		}
}

// endpointLine renders what a test compares of an endpoint.
func endpointLine(ep catalog.Endpoint) string {
	line := fmt.Sprintf("%s:%d %s sa=%s ready=%t %s", ep.Address, ep.Port, ep.PortName, ep.ServiceAccount, ep.Ready, ep.Locality)
	if len(ep.Labels) > 0 {
		line += fmt.Sprintf(" labels=%v", ep.Labels) // fmt prints maps sorted
	}
	return line
}

// labelled is p with labels.
func labelled(p *corev1.Pod, labels map[string]string) *corev1.Pod {
	p.Labels = labels
	return p
}

func TestBuild(t *testing.T) {
	local := topology.Locality{Region: "us-east", Zone: "default-zone", Cluster: "east-1"}
	tests := []struct {
		name          string
		in            Input
		pods          []*corev1.Pod
		nodes         []*corev1.Node
		wantEndpoints map[string][]string
		wantValidity  map[string]Validity
		wantProblems  []string
	}{
		{
			name: "zone from slice, else node, else default; region from node; service account and labels from pod",
			in: Input{
				Services: []*corev1.Service{svc("echo", httpPort(8080))},
				EndpointSlices: []*discoveryv1.EndpointSlice{slice("echo", 9080,
					sliceEP{addr: "10.0.0.1", zone: "slice-zone", node: "n1", pod: "echo-1", ready: true},
					sliceEP{addr: "10.0.0.2", node: "n1", pod: "echo-2", ready: true},
					sliceEP{addr: "10.0.0.3", pod: "echo-3", ready: false},
					sliceEP{addr: "10.0.0.4", ready: true},
				)},
				ServiceExports: []*mcsv1alpha1.ServiceExport{export("echo")},
			},
			pods: []*corev1.Pod{
				labelled(pod("echo-1", "echo", "n1"), map[string]string{"app": "echo", "fedmesh.io/tier": "gold", "canary": "", "bad key": "x"}),
				pod("echo-2", "echo", "n1"), pod("echo-3", "other", "n2"),
			},
			nodes: []*corev1.Node{node("n1", "us-west", "us-west-1a"), node("n2", "eu", "eu-1b")},
			wantEndpoints: map[string][]string{"demo/echo": {
				"10.0.0.1:9080 http sa=echo ready=true us-west/slice-zone/east-1 labels=map[app:echo fedmesh.io/tier:gold]",
				"10.0.0.2:9080 http sa=echo ready=true us-west/us-west-1a/east-1",
				"10.0.0.3:9080 http sa=other ready=false eu/eu-1b/east-1",
				"10.0.0.4:9080 http sa=default ready=true us-east/default-zone/east-1",
			}},
			wantValidity: map[string]Validity{"demo/echo": {Valid: true, Reason: ReasonValid}},
		},
		{
			name: "export without a service, of an ExternalName, of a bad name, of a bad service",
			in: Input{
				Services: []*corev1.Service{
					{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "demo"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}},
					svc("noports"),
					svc("dup", httpPort(80), httpPort(81)),
				},
				ServiceExports: []*mcsv1alpha1.ServiceExport{export("orphan"), export("ext"), export("bad.name"), export("noports"), export("dup")},
			},
			wantEndpoints: map[string][]string{},
			wantValidity: map[string]Validity{
				"demo/orphan":   {Reason: ReasonNoService, Message: "no Service demo/orphan in this cluster"},
				"demo/ext":      {Reason: ReasonInvalidServiceType, Message: "Service demo/ext is of type ExternalName, which cannot be exported"},
				"demo/bad.name": {Reason: ReasonInvalidServiceExport, Message: `ServiceExport demo/bad.name: metadata.name "bad.name": must be a DNS-1123 label: lower case alphanumeric characters or '-', starting and ending with an alphanumeric character`},
				"demo/noports":  {Reason: ReasonInvalidService, Message: "service demo/noports: ports: must have at least one port"},
				"demo/dup":      {Reason: ReasonInvalidService, Message: `Service demo/dup: spec.ports[1].name "http": duplicate port name (also ports[0])`},
			},
			wantProblems: []string{
				`Service demo/dup: invalid: spec.ports[1].name "http": duplicate port name (also ports[0])`,
				"Service demo/noports: invalid: ports: must have at least one port",
				`ServiceExport demo/bad.name: invalid: metadata.name "bad.name": must be a DNS-1123 label: lower case alphanumeric characters or '-', starting and ending with an alphanumeric character`,
				"ServiceExport demo/ext: invalid: service cannot be exported: Service demo/ext is of type ExternalName",
				"ServiceExport demo/orphan: unmatched: no Service of that namespace and name",
			},
		},
		{
			name: "slices without the service-name label are ignored; bad slices reported",
			in: Input{
				Services: []*corev1.Service{svc("echo", httpPort(8080))},
				EndpointSlices: []*discoveryv1.EndpointSlice{
					{ObjectMeta: metav1.ObjectMeta{Name: "imported", Namespace: "demo", Labels: map[string]string{mcsv1alpha1.LabelServiceName: "echo"}},
						AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.9.9.9"}}}},
					slice("echo", 9080, sliceEP{addr: "not-an-ip", ready: true}),
				},
				ServiceExports: []*mcsv1alpha1.ServiceExport{export("echo")},
			},
			wantEndpoints: map[string][]string{"demo/echo": nil},
			wantValidity:  map[string]Validity{"demo/echo": {Valid: true, Reason: ReasonValid}},
			wantProblems:  []string{`EndpointSlice demo/echo-abc: invalid: endpoints[0].addresses[0] "not-an-ip": must be an IP address`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Pod, tc.in.Node = lookups(tc.pods, tc.nodes)
			res := Build(&tc.in, local, func(catalog.ServiceKey) time.Time { return t0 })
			gotEps := map[string][]string{}
			for _, e := range res.Exports {
				if err := e.Validate(); err != nil {
					t.Errorf("invalid export: %v", err)
				}
				var lines []string
				for _, ep := range e.Endpoints {
					lines = append(lines, endpointLine(ep))
				}
				gotEps[e.Service.Key().String()] = lines
			}
			if d := cmp.Diff(tc.wantEndpoints, gotEps); d != "" {
				t.Errorf("endpoints (-want +got):\n%s", d)
			}
			gotV := map[string]Validity{}
			for k, v := range res.Validity {
				gotV[k.String()] = v
			}
			if d := cmp.Diff(tc.wantValidity, gotV); d != "" {
				t.Errorf("validity (-want +got):\n%s", d)
			}
			var gotP []string
			for _, p := range res.Problems {
				gotP = append(gotP, p.Error())
			}
			if d := cmp.Diff(tc.wantProblems, gotP); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

// TestBuildDoesNotModifyInput checks that filling zones works on copies.
func TestBuildDoesNotModifyInput(t *testing.T) {
	es := slice("echo", 9080, sliceEP{addr: "10.0.0.2", node: "n1", ready: true})
	in := Input{Services: []*corev1.Service{svc("echo", httpPort(8080))}, EndpointSlices: []*discoveryv1.EndpointSlice{es},
		ServiceExports: []*mcsv1alpha1.ServiceExport{export("echo")}}
	in.Pod, in.Node = lookups(nil, []*corev1.Node{node("n1", "r", "z")})
	before := es.DeepCopy()
	Build(&in, topology.Locality{Cluster: "c"}, nil)
	if d := cmp.Diff(before, es); d != "" {
		t.Errorf("Build changed its input (-before +after):\n%s", d)
	}
}
