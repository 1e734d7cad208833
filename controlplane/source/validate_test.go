package source

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fedmesh/fedmesh/catalog"
)

func fieldsOf(err error) []string {
	ve, ok := err.(*catalog.ValidationError)
	if !ok {
		return nil
	}
	var out []string
	for _, f := range ve.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestValidateEndpointSlice(t *testing.T) {
	good := func() *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "echo-1",
				Labels: map[string]string{discoveryv1.LabelServiceName: "echo"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr[int32](80)}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}},
		}
	}
	tests := []struct {
		name string
		mod  func(*discoveryv1.EndpointSlice)
		want []string
	}{
		{"good", func(*discoveryv1.EndpointSlice) {}, nil},
		{"no service label", func(s *discoveryv1.EndpointSlice) { s.Labels = nil }, []string{"metadata.labels"}},
		{"FQDN", func(s *discoveryv1.EndpointSlice) { s.AddressType = discoveryv1.AddressTypeFQDN }, []string{"addressType"}},
		{"IPv6 in IPv4 slice", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses[0] = "::1" }, []string{"endpoints[0].addresses[0]"}},
		{"not an address", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses[0] = "echo.local" }, []string{"endpoints[0].addresses[0]"}},
		{"no addresses", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = nil }, []string{"endpoints[0].addresses"}},
		{"no port number", func(s *discoveryv1.EndpointSlice) { s.Ports[0].Port = nil }, []string{"ports[0].port"}},
		{"duplicate port names", func(s *discoveryv1.EndpointSlice) { s.Ports = append(s.Ports, s.Ports[0]) }, []string{"ports[1].name"}},
		{"bad service account", func(s *discoveryv1.EndpointSlice) {
			s.Annotations = map[string]string{AnnotationServiceAccount: "Echo"}
		}, []string{"metadata.annotations[fedmesh.io/service-account]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.mod(s)
			if diff := cmp.Diff(tt.want, fieldsOf(ValidateEndpointSlice(s))); diff != "" {
				t.Errorf("bad fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateServiceClusterIPs(t *testing.T) {
	tests := []struct {
		name string
		ip   string
		ips  []string
		want []string
	}{
		{name: "unallocated"},
		{name: "clusterIP alone", ip: "10.96.0.10"},
		{name: "headless", ip: "None", ips: []string{"None"}},
		{name: "dual stack", ip: "10.96.0.10", ips: []string{"10.96.0.10", "fd00:96::10"}},
		{name: "clusterIP not an address", ip: "ten", want: []string{"spec.clusterIP"}},
		{name: "clusterIPs not an address", ip: "10.96.0.10", ips: []string{"10.96.0.10", "fd00::zz"}, want: []string{"spec.clusterIPs[1]"}},
		{name: "clusterIPs[0] differs", ip: "10.96.0.10", ips: []string{"10.96.0.11"}, want: []string{"spec.clusterIPs[0]"}},
		{name: "one family twice", ips: []string{"10.96.0.10", "10.96.0.11"}, want: []string{"spec.clusterIPs[1]"}},
		{name: "None among addresses", ips: []string{"None", "fd00::1"}, want: []string{"spec.clusterIPs[0]"}},
		{name: "three", ips: []string{"10.96.0.10", "fd00::1", "10.96.0.11"}, want: []string{"spec.clusterIPs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "echo"},
				Spec:       corev1.ServiceSpec{ClusterIP: tt.ip, ClusterIPs: tt.ips, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
			}
			if diff := cmp.Diff(tt.want, fieldsOf(ValidateService(svc))); diff != "" {
				t.Errorf("bad fields (-want +got):\n%s", diff)
			}
		})
	}
}
