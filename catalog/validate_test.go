package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/topology"
)

func goodExport() Export {
	return Export{
		Service: Service{
			Namespace:     "demo",
			Name:          "echo",
			Type:          ClusterSetIP,
			Ports:         []Port{{Name: "http", Protocol: TCP, AppProtocol: AppHTTP, Port: 8080}},
			ExportCreated: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			Cluster:       "east-1",
		},
		Endpoints: []Endpoint{{
			Address:        "127.0.1.1",
			Port:           15006,
			PortName:       "http",
			Locality:       topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"},
			Ready:          true,
			Serving:        true,
			ServiceAccount: "echo",
		}},
	}
}

func TestExportValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Export)
		// want lists the field paths that must be reported, in order.
		want []string
	}{
		{name: "good", mutate: func(*Export) {}},
		{name: "namespace upper case", mutate: func(e *Export) { e.Service.Namespace = "Demo" }, want: []string{"namespace"}},
		{name: "name starts with digit", mutate: func(e *Export) { e.Service.Name = "1echo" }, want: []string{"name"}},
		{name: "name too long", mutate: func(e *Export) { e.Service.Name = strings.Repeat("a", 64) }, want: []string{"name"}},
		{name: "empty cluster", mutate: func(e *Export) { e.Service.Cluster = ""; e.Endpoints = nil }, want: []string{"cluster"}},
		{name: "bad type", mutate: func(e *Export) { e.Service.Type = "LoadBalancer" }, want: []string{"type"}},
		{name: "no ports", mutate: func(e *Export) { e.Service.Ports = nil; e.Endpoints = nil }, want: []string{"ports"}},
		{name: "port zero", mutate: func(e *Export) { e.Service.Ports[0].Port = 0 }, want: []string{"ports[0].port"}},
		{name: "port too big", mutate: func(e *Export) { e.Service.Ports[0].Port = 70000 }, want: []string{"ports[0].port"}},
		{name: "bad protocol", mutate: func(e *Export) { e.Service.Ports[0].Protocol = "QUIC" }, want: []string{"ports[0].protocol"}},
		{name: "bad app protocol", mutate: func(e *Export) { e.Service.Ports[0].AppProtocol = "smtp" }, want: []string{"ports[0].appProtocol"}},
		{
			name: "duplicate port names",
			mutate: func(e *Export) {
				e.Service.Ports = append(e.Service.Ports, Port{Name: "http", Port: 9090})
			},
			want: []string{"ports[1].name"},
		},
		{
			name: "unnamed port among several",
			mutate: func(e *Export) {
				e.Service.Ports = append(e.Service.Ports, Port{Port: 9090})
			},
			want: []string{"ports[1].name"},
		},
		{
			name: "duplicate port number",
			mutate: func(e *Export) {
				e.Service.Ports = append(e.Service.Ports, Port{Name: "other", Port: 8080})
			},
			want: []string{"ports[1].port"},
		},
		{name: "cluster IPs, both families", mutate: func(e *Export) { e.Service.ClusterIPs = []string{"10.96.0.10", "fd00:96::10"} }},
		{name: "cluster IP not an address", mutate: func(e *Export) { e.Service.ClusterIPs = []string{"None"} }, want: []string{"clusterIPs[0]"}},
		{name: "cluster IP not canonical", mutate: func(e *Export) { e.Service.ClusterIPs = []string{"fd00:96:0::10"} }, want: []string{"clusterIPs[0]"}},
		{name: "cluster IP v4-mapped", mutate: func(e *Export) { e.Service.ClusterIPs = []string{"::ffff:10.96.0.10"} }, want: []string{"clusterIPs[0]"}},
		{name: "cluster IPs of one family", mutate: func(e *Export) { e.Service.ClusterIPs = []string{"10.96.0.10", "10.96.0.11"} }, want: []string{"clusterIPs[1]"}},
		{name: "too many cluster IPs", mutate: func(e *Export) { e.Service.ClusterIPs = []string{"10.96.0.10", "fd00::1", "10.96.0.11"} }, want: []string{"clusterIPs"}},
		{name: "cluster IP of a headless service", mutate: func(e *Export) {
			e.Service.Type = Headless
			e.Service.ClusterIPs = []string{"10.96.0.10"}
		}, want: []string{"clusterIPs"}},
		{name: "empty address", mutate: func(e *Export) { e.Endpoints[0].Address = "" }, want: []string{"endpoints[0].address"}},
		{name: "host name address", mutate: func(e *Export) { e.Endpoints[0].Address = "echo.local" }, want: []string{"endpoints[0].address"}},
		{name: "endpoint port", mutate: func(e *Export) { e.Endpoints[0].Port = -1 }, want: []string{"endpoints[0].port"}},
		{name: "unknown port name", mutate: func(e *Export) { e.Endpoints[0].PortName = "grpc" }, want: []string{"endpoints[0].portName"}},
		{name: "endpoint of another cluster", mutate: func(e *Export) { e.Endpoints[0].Locality.Cluster = "west-1" }, want: []string{"endpoints[0].locality.cluster"}},
		{name: "bad service account", mutate: func(e *Export) { e.Endpoints[0].ServiceAccount = "Echo_SA" }, want: []string{"endpoints[0].serviceAccount"}},
		{name: "ipv6 endpoint", mutate: func(e *Export) { e.Endpoints[0].Address = "::1" }},
		{name: "labels", mutate: func(e *Export) {
			e.Endpoints[0].Labels = map[string]string{"app": "echo", "topology.fedmesh.io/rack": "r1"}
		}},
		{name: "label key bad", mutate: func(e *Export) { e.Endpoints[0].Labels = map[string]string{"-app": "echo"} }, want: []string{"endpoints[0].labels"}},
		{name: "label value bad", mutate: func(e *Export) { e.Endpoints[0].Labels = map[string]string{"app": "a b"} }, want: []string{"endpoints[0].labels"}},
		{name: "label value empty", mutate: func(e *Export) { e.Endpoints[0].Labels = map[string]string{"app": ""} }, want: []string{"endpoints[0].labels[app]"}},
		{name: "too many labels", mutate: func(e *Export) {
			e.Endpoints[0].Labels = map[string]string{}
			for i := range MaxEndpointLabels + 1 {
				e.Endpoints[0].Labels[fmt.Sprintf("k%d", i)] = "v"
			}
		}, want: []string{"endpoints[0].labels"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := goodExport()
			tt.mutate(&e)
			err := e.Validate()
			var got []string
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v does not wrap ErrInvalid", err)
				}
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("error %T is not a *ValidationError", err)
				}
				for _, f := range ve.Fields {
					got = append(got, f.Field)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("fields reported (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

func TestValidationErrorNamesObjectAndReason(t *testing.T) {
	e := goodExport()
	e.Service.Ports = append(e.Service.Ports, Port{Name: "http", Port: 9090})
	err := e.Validate()
	want := `service demo/echo: ports[1].name "http": duplicate port name (also ports[0])`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

func TestExportSortIsCanonical(t *testing.T) {
	e := goodExport()
	e.Service.Ports = []Port{{Name: "b", Port: 9090}, {Name: "a", Port: 80}}
	e.Endpoints = []Endpoint{{Address: "127.0.0.2", PortName: "a"}, {Address: "127.0.0.1", PortName: "b"}, {Address: "127.0.0.1", PortName: "a"}}
	e.Sort()
	gotPorts := []int32{e.Service.Ports[0].Port, e.Service.Ports[1].Port}
	if diff := cmp.Diff([]int32{80, 9090}, gotPorts); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	var got []string
	for _, ep := range e.Endpoints {
		got = append(got, ep.Address+"/"+ep.PortName)
	}
	if diff := cmp.Diff([]string{"127.0.0.1/a", "127.0.0.1/b", "127.0.0.2/a"}, got); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
}

func FuzzServiceValidate(f *testing.F) {
	f.Add("demo", "echo", "http", int32(8080), "TCP", "http", "127.0.0.1")
	f.Add("", "", "", int32(0), "", "", "")
	f.Add("a-b", "x", "grpc", int32(65535), "UDP", "grpc", "::1")
	f.Fuzz(func(t *testing.T, ns, name, portName string, port int32, proto, app, addr string) {
		e := Export{
			Service: Service{Namespace: ns, Name: name, Type: ClusterSetIP, Cluster: "c",
				Ports: []Port{{Name: portName, Port: port, Protocol: Protocol(proto), AppProtocol: app}}},
			Endpoints: []Endpoint{{Address: addr, Port: port, PortName: portName, Locality: topology.Locality{Cluster: "c"}}},
		}
		err := e.Validate()
		if err == nil {
			// Whatever passes must be usable as a DNS name and a port.
			if IsDNS1123Label(ns) != "" || IsServiceName(name) != "" || port < 1 || port > 65535 {
				t.Fatalf("accepted bad export %+v", e)
			}
			return
		}
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "service ") {
			t.Fatalf("unexpected error form: %v", err)
		}
	})
}

func TestEndpointLabels(t *testing.T) {
	many := map[string]string{}
	for i := range MaxEndpointLabels + 10 {
		many[fmt.Sprintf("k%03d", i)] = "v"
	}
	tests := []struct {
		name string
		in   map[string]string
		want map[string]string
	}{
		{name: "nil", in: nil, want: nil},
		{name: "kept", in: map[string]string{"app": "echo", "fedmesh.io/tier": "gold"}, want: map[string]string{"app": "echo", "fedmesh.io/tier": "gold"}},
		{name: "empty value dropped", in: map[string]string{"app": "echo", "canary": ""}, want: map[string]string{"app": "echo"}},
		{name: "invalid dropped", in: map[string]string{"app": "echo", "bad key": "x", "v": "no spaces"}, want: map[string]string{"app": "echo"}},
		{name: "only empty", in: map[string]string{"canary": ""}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, EndpointLabels(tt.in)); diff != "" {
				t.Errorf("EndpointLabels (-want +got):\n%s", diff)
			}
		})
	}
	got := EndpointLabels(many)
	if len(got) != MaxEndpointLabels || got["k000"] != "v" || got[fmt.Sprintf("k%03d", MaxEndpointLabels)] != "" {
		t.Errorf("EndpointLabels of %d labels kept %d, want the first %d keys", len(many), len(got), MaxEndpointLabels)
	}
}

func TestExportWithLabelsEncodesCanonically(t *testing.T) {
	e := goodExport()
	e.Endpoints[0].Labels = map[string]string{"zz": "1", "aa": "2", "mm": "3"}
	first, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(first) {
			t.Fatalf("encodings differ:\n%s\n%s", first, again)
		}
	}
	if !strings.Contains(string(first), `"labels":{"aa":"2","mm":"3","zz":"1"}`) {
		t.Errorf("encoding %s does not hold the labels sorted by key", first)
	}
}

// FuzzClusterIPs: whatever ClusterIPs pass are canonical addresses, one
// per family.
func FuzzClusterIPs(f *testing.F) {
	f.Add("10.96.0.10", "fd00::10")
	f.Add("10.96.0.10", "10.96.0.11")
	f.Add("None", "")
	f.Add("::ffff:1.2.3.4", "fe80::1%eth0")
	f.Fuzz(func(t *testing.T, a, b string) {
		e := goodExport()
		e.Service.ClusterIPs = []string{a, b}
		if b == "" {
			e.Service.ClusterIPs = []string{a}
		}
		if err := e.Validate(); err != nil {
			return
		}
		fams := map[bool]bool{}
		for _, s := range e.Service.ClusterIPs {
			ip, err := netip.ParseAddr(s)
			if err != nil || ip.String() != s || ip.Zone() != "" || ip.Is4In6() || fams[ip.Is4()] {
				t.Fatalf("accepted cluster IPs %q", e.Service.ClusterIPs)
			}
			fams[ip.Is4()] = true
		}
	})
}
