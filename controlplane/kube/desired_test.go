package kube

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/clusterset"
	"github.com/fedmesh/fedmesh/federation/merge"
	"github.com/fedmesh/fedmesh/topology"
)

func vep(cluster, addr, port string, target int32, healthy bool, zone string) catalog.ViewEndpoint {
	return catalog.ViewEndpoint{
		Endpoint: catalog.Endpoint{
			Address: addr, Port: target, PortName: port, Ready: healthy, Serving: true,
			Locality: topology.Locality{Region: "r", Zone: zone, Cluster: cluster},
		},
		Healthy: healthy,
	}
}

func testView() *catalog.View {
	return &catalog.View{
		Local: "east-1",
		Services: []catalog.ImportedService{{
			Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP,
			Ports:    []catalog.Port{{Name: "http", Port: 8080, AppProtocol: "http"}, {Name: "admin", Port: 9090, Protocol: catalog.TCP}},
			Clusters: []string{"east-1", "west-1"},
			Conditions: []catalog.Condition{
				{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonPortConflict, Message: "ports differ from east-1's", Cluster: "west-1"},
				{Type: catalog.ConditionConflict, Status: "True", Reason: catalog.ReasonPortConflict, Message: "conflicts with west-1", Cluster: "east-1"},
			},
			Endpoints: []catalog.ViewEndpoint{
				vep("east-1", "10.0.0.1", "http", 9080, true, "a"),
				vep("east-1", "10.0.0.1", "admin", 9090, true, "a"),
				vep("east-1", "10.0.0.2", "http", 9080, false, ""),
				vep("east-1", "10.0.0.2", "admin", 9090, true, ""),
				vep("west-1", "10.1.0.1", "http", 7000, true, "b"),
				vep("west-1", "fd00::1", "http", 7000, true, "b"),
			},
		}},
	}
}

func TestDesiredImports(t *testing.T) {
	got := DesiredImports(testView(), clusterset.DefaultPrefix)
	if len(got) != 1 {
		t.Fatalf("%d imports, want 1", len(got))
	}
	wantSI := &mcsv1alpha1.ServiceImport{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "demo", Labels: map[string]string{LabelManagedBy: ManagedBy}},
		Spec: mcsv1alpha1.ServiceImportSpec{
			Type: mcsv1alpha1.ClusterSetIP,
			IPs:  []string{clusterset.Allocate(clusterset.DefaultPrefix, []catalog.ServiceKey{{Namespace: "demo", Name: "echo"}})[catalog.ServiceKey{Namespace: "demo", Name: "echo"}].String()},
			Ports: []mcsv1alpha1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, AppProtocol: ptr("http"), Port: 8080},
				{Name: "admin", Protocol: corev1.ProtocolTCP, Port: 9090},
			},
		},
		Status: mcsv1alpha1.ServiceImportStatus{
			Clusters: []mcsv1alpha1.ClusterStatus{{Cluster: "east-1"}, {Cluster: "west-1"}},
			Conditions: []metav1.Condition{{
				Type: "Conflict", Status: metav1.ConditionTrue, Reason: "PortConflict",
				Message: "east-1: conflicts with west-1; west-1: ports differ from east-1's",
			}},
		},
	}
	if d := cmp.Diff(wantSI, got[0].ServiceImport); d != "" {
		t.Errorf("ServiceImport (-want +got):\n%s", d)
	}

	type sliceSummary struct {
		Cluster, Family string
		Ports           []string
		Endpoints       []string
	}
	var gotSlices []sliceSummary
	names := map[string]bool{}
	for _, es := range got[0].Slices {
		if names[es.Name] {
			t.Errorf("slice name %s used twice", es.Name)
		}
		names[es.Name] = true
		if es.Labels[mcsv1alpha1.LabelServiceName] != "echo" || es.Labels[discoveryv1.LabelManagedBy] != SliceManagedBy {
			t.Errorf("slice %s labels %v", es.Name, es.Labels)
		}
		s := sliceSummary{Cluster: es.Labels[mcsv1alpha1.LabelSourceCluster], Family: string(es.AddressType)}
		for _, p := range es.Ports {
			s.Ports = append(s.Ports, *p.Name+"="+string(*p.Protocol)+"/"+itoa(*p.Port))
		}
		for _, e := range es.Endpoints {
			line := e.Addresses[0] + " ready=" + btoa(*e.Conditions.Ready) + " serving=" + btoa(*e.Conditions.Serving) + " terminating=" + btoa(*e.Conditions.Terminating)
			if e.Zone != nil {
				line += " zone=" + *e.Zone
			}
			s.Endpoints = append(s.Endpoints, line)
		}
		gotSlices = append(gotSlices, s)
	}
	want := []sliceSummary{
		{Cluster: "east-1", Family: "IPv4", Ports: []string{"admin=TCP/9090", "http=TCP/9080"}, Endpoints: []string{
			"10.0.0.1 ready=true serving=true terminating=false zone=a",
			// Not ready on http: the address is not ready.
			"10.0.0.2 ready=false serving=true terminating=true",
		}},
		{Cluster: "west-1", Family: "IPv4", Ports: []string{"http=TCP/7000"}, Endpoints: []string{"10.1.0.1 ready=true serving=true terminating=false zone=b"}},
		{Cluster: "west-1", Family: "IPv6", Ports: []string{"http=TCP/7000"}, Endpoints: []string{"fd00::1 ready=true serving=true terminating=false zone=b"}},
	}
	if d := cmp.Diff(want, gotSlices); d != "" {
		t.Errorf("slices (-want +got):\n%s", d)
	}
	// Deterministic: the same view gives the same objects.
	if d := cmp.Diff(got, DesiredImports(testView(), clusterset.DefaultPrefix)); d != "" {
		t.Errorf("not deterministic:\n%s", d)
	}
}

func TestDesiredImportsSplitsLargeSlices(t *testing.T) {
	v := &catalog.View{Services: []catalog.ImportedService{{Namespace: "demo", Name: "big", Type: catalog.Headless, Ports: []catalog.Port{{Name: "http", Port: 80}}}}}
	for i := 0; i < 2500; i++ {
		v.Services[0].Endpoints = append(v.Services[0].Endpoints, vep("c", "10.0."+itoa(int32(i/250))+"."+itoa(int32(i%250)), "http", 80, true, ""))
	}
	got := DesiredImports(v, clusterset.DefaultPrefix)[0].Slices
	var sizes []int
	for _, es := range got {
		sizes = append(sizes, len(es.Endpoints))
	}
	if d := cmp.Diff([]int{1000, 1000, 500}, sizes); d != "" {
		t.Errorf("slice sizes (-want +got):\n%s", d)
	}
}

func TestSliceNamesDoNotCollide(t *testing.T) {
	a := sliceName("a-b", "c", "IPv4", "http=80", 0)
	b := sliceName("a", "b-c", "IPv4", "http=80", 0)
	if a == b {
		t.Fatalf("service a-b of cluster c and service a of cluster b-c share slice name %s", a)
	}
}

func TestExportConditions(t *testing.T) {
	key := catalog.ServiceKey{Namespace: "demo", Name: "echo"}
	valid := &Validity{Valid: true, Reason: ReasonValid}
	noConflictView := testView()
	noConflictView.Services[0].Conditions = nil
	tests := []struct {
		name     string
		view     *catalog.View
		local    string
		validity *Validity
		want     []metav1.Condition
	}{
		{name: "no validity yet, no view", want: nil},
		{
			name: "invalid: no conflict judgement", view: testView(), local: "east-1",
			validity: &Validity{Reason: ReasonNoService, Message: "no Service"},
			want:     []metav1.Condition{{Type: "Valid", Status: metav1.ConditionFalse, Reason: ReasonNoService, Message: "no Service"}},
		},
		{
			name: "conflict of the local export", view: testView(), local: "west-1", validity: valid,
			want: []metav1.Condition{
				{Type: "Valid", Status: metav1.ConditionTrue, Reason: ReasonValid, Message: "the Service is exported"},
				{Type: "Conflict", Status: metav1.ConditionTrue, Reason: catalog.ReasonPortConflict, Message: "ports differ from east-1's"},
			},
		},
		{
			name: "merged without conflict", view: noConflictView, local: "east-1", validity: valid,
			want: []metav1.Condition{
				{Type: "Valid", Status: metav1.ConditionTrue, Reason: ReasonValid, Message: "the Service is exported"},
				{Type: "Conflict", Status: metav1.ConditionFalse, Reason: catalog.ReasonNoConflicts, Message: "no conflicting exports in other clusters"},
			},
		},
		{
			name: "not in the view yet", view: &catalog.View{}, local: "east-1", validity: valid,
			want: []metav1.Condition{{Type: "Valid", Status: metav1.ConditionTrue, Reason: ReasonValid, Message: "the Service is exported"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ExportConditions(tc.view, tc.local, key, tc.validity)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("conditions (-want +got):\n%s", d)
			}
		})
	}
}

// TestExportConditionsPolicyConflict merges two exports of echo whose
// producer policies differ: both ServiceExports get the Conflict
// condition with reason PolicyConflict, naming both clusters and the
// one whose policies are in force.
func TestExportConditionsPolicyConflict(t *testing.T) {
	key := catalog.ServiceKey{Namespace: "demo", Name: "echo"}
	export := func(cluster string, created time.Time, digest string) catalog.Export {
		return catalog.Export{
			Service: catalog.Service{Namespace: "demo", Name: "echo", Type: catalog.ClusterSetIP, Cluster: cluster, ExportCreated: created,
				Ports: []catalog.Port{{Name: "http", Port: 8080}}},
			Policies: &catalog.Policies{Digest: digest, Objects: []json.RawMessage{json.RawMessage(`{}`)}},
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	view := merge.Merge("east-1", nil, map[string][]catalog.Export{
		"east-1": {export("east-1", t0.Add(time.Hour), "b")},
		"west-1": {export("west-1", t0, "a")},
	})
	valid := &Validity{Valid: true, Reason: ReasonValid}
	for cluster, words := range map[string][]string{
		"east-1": {"from east-1 (digest b)", "in force, from west-1"},
		"west-1": {"from west-1, are in force", "conflicting producer policies: east-1"},
	} {
		conds := ExportConditions(&view, cluster, key, valid)
		if len(conds) != 2 || conds[1].Type != catalog.ConditionConflict || conds[1].Status != metav1.ConditionTrue || conds[1].Reason != catalog.ReasonPolicyConflict {
			t.Fatalf("%s: conditions %+v, want Valid and Conflict=True with reason PolicyConflict", cluster, conds)
		}
		for _, w := range words {
			if !strings.Contains(conds[1].Message, w) {
				t.Errorf("%s: message %q lacks %q", cluster, conds[1].Message, w)
			}
		}
	}
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }

func btoa(b bool) string { return strconv.FormatBool(b) }
