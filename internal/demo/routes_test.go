package demo

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/controlplane/source/filesource"
	"github.com/fedmesh/fedmesh/policy"
)

// parseTraffic parses every document of a traffic file as the file
// source does, into one set.
func parseTraffic(t *testing.T, name string, data string) policy.Traffic {
	t.Helper()
	var set policy.Traffic
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(data, -1) {
		obj, err := policy.ParseObject([]byte(doc))
		if err != nil {
			t.Fatalf("%s document %d: %v\n%s", name, i, err, doc)
		}
		if err := set.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	return set
}

// TestTrafficFiles parses the demo's traffic files with the parser the
// file source uses and checks that they say what the traffic phases
// judge: the canary weight, the fault shares, the A/B header; and that
// every object is echo's producer side, so it travels with echo's export
// to every cluster.
func TestTrafficFiles(t *testing.T) {
	svc := func(kind, name string, weight int32) gatewayv1.HTTPBackendRef {
		g, k, p := gatewayv1.Group(policy.MCSGroup), gatewayv1.Kind(kind), gatewayv1.PortNumber(8080)
		return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
			Group: &g, Kind: &k, Name: gatewayv1.ObjectName(name), Port: &p}, Weight: ptr(weight)}}
	}
	noWeight := func(r gatewayv1.HTTPBackendRef) gatewayv1.HTTPBackendRef { r.Weight = nil; return r }

	canary := parseTraffic(t, CanaryFile, TrafficYAML(CanaryFile))
	if len(canary.HTTPRoutes) != 1 {
		t.Fatalf("%s: %d routes, want 1", CanaryFile, len(canary.HTTPRoutes))
	}
	rules := canary.HTTPRoutes[0].Spec.Rules
	if len(rules) != 1 {
		t.Fatalf("%s: %d rules, want 1", CanaryFile, len(rules))
	}
	want := []gatewayv1.HTTPBackendRef{svc(policy.KindServiceImport, "echo", 100-CanaryWeight), svc(policy.KindServiceImport, CanaryService, CanaryWeight)}
	if diff := cmp.Diff(want, rules[0].BackendRefs); diff != "" {
		t.Errorf("%s backends (-want +got):\n%s", CanaryFile, diff)
	}

	faults := parseTraffic(t, FaultsFile, TrafficYAML(FaultsFile))
	if len(faults.Faults) != 1 || len(faults.HTTPRoutes) != 1 {
		t.Fatalf("%s: %d FaultInjections and %d routes, want 1 and 1", FaultsFile, len(faults.Faults), len(faults.HTTPRoutes))
	}
	fi := faults.Faults[0].Spec
	if fi.Abort == nil || fi.Abort.HTTPStatus == nil || *fi.Abort.HTTPStatus != 503 || fi.Abort.Percentage != AbortPercent ||
		fi.Delay == nil || fi.Delay.Fixed.Duration != FaultDelay || fi.Delay.Percentage != DelayPercent || len(fi.Headers) != 0 {
		t.Errorf("%s: FaultInjection %+v, want abort 503 at %d%%, delay %v at %d%%, every request", FaultsFile, fi, AbortPercent, FaultDelay, DelayPercent)
	}
	frules := faults.HTTPRoutes[0].Spec.Rules
	if len(frules) != 1 || len(frules[0].Filters) != 1 || frules[0].Filters[0].ExtensionRef == nil ||
		string(frules[0].Filters[0].ExtensionRef.Name) != faults.Faults[0].Name {
		t.Errorf("%s: the route's rules %+v do not use the FaultInjection %s", FaultsFile, frules, faults.Faults[0].Name)
	} else if diff := cmp.Diff([]gatewayv1.HTTPBackendRef{noWeight(svc(policy.KindServiceImport, "echo", 0))}, frules[0].BackendRefs); diff != "" {
		t.Errorf("%s backends (-want +got):\n%s", FaultsFile, diff)
	}

	ab := parseTraffic(t, ABFile, TrafficYAML(ABFile))
	if len(ab.HTTPRoutes) != 1 || len(ab.HTTPRoutes[0].Spec.Rules) != 2 {
		t.Fatalf("%s: want one route with two rules, got %+v", ABFile, ab.HTTPRoutes)
	}
	ar := ab.HTTPRoutes[0].Spec.Rules
	exact := gatewayv1.HeaderMatchExact
	wantMatch := []gatewayv1.HTTPRouteMatch{{Headers: []gatewayv1.HTTPHeaderMatch{{Type: &exact, Name: VariantHeader, Value: VariantB}}}}
	// The parser may default the path match; compare the headers only.
	if len(ar[0].Matches) != 1 || !cmp.Equal(wantMatch[0].Headers, ar[0].Matches[0].Headers) {
		t.Errorf("%s rule 0 matches %+v, want %s: %s", ABFile, ar[0].Matches, VariantHeader, VariantB)
	}
	if diff := cmp.Diff([]gatewayv1.HTTPBackendRef{noWeight(svc(policy.KindServiceImport, CanaryService, 0))}, ar[0].BackendRefs); diff != "" {
		t.Errorf("%s rule 0 backends (-want +got):\n%s", ABFile, diff)
	}
	for _, m := range ar[1].Matches {
		if len(m.Headers) > 0 || len(m.QueryParams) > 0 || m.Method != nil {
			t.Errorf("%s rule 1 match %+v, want every request", ABFile, m)
		}
	}
	if diff := cmp.Diff([]gatewayv1.HTTPBackendRef{noWeight(svc(policy.KindServiceImport, "echo", 0))}, ar[1].BackendRefs); diff != "" {
		t.Errorf("%s rule 1 backends (-want +got):\n%s", ABFile, diff)
	}

	res := parseTraffic(t, ResilienceFile, TrafficYAML(ResilienceFile))
	if len(res.Resilience) != 1 {
		t.Fatalf("%s: %d ResiliencePolicies, want 1", ResilienceFile, len(res.Resilience))
	}

	// What the demo writes into east-1's source for each phase is echo's
	// producer side as a whole: it travels with echo's export.
	for _, file := range []string{CanaryFile, FaultsFile, ABFile} {
		set := parseTraffic(t, TrafficFile+" of "+file, string(trafficObjects(file)))
		if n := len(set.HTTPRoutes) + len(set.Faults) + len(set.Resilience) + len(set.GRPCRoutes); n < 2 {
			t.Errorf("%s of %s: %d objects, want the file's and the ResiliencePolicy", TrafficFile, file, n)
		}
		if diff := cmp.Diff(set, policy.ProducerOf(&set, "demo", "echo")); diff != "" {
			t.Errorf("%s of %s: not all of it is echo's producer side (-all +producer):\n%s", TrafficFile, file, diff)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestREADMEShowsTrafficFiles checks that the README shows the traffic
// files as the demo writes them.
func TestREADMEShowsTrafficFiles(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{CanaryFile, FaultsFile, ABFile, ResilienceFile} {
		if !strings.Contains(string(b), "```yaml\n"+TrafficYAML(name)+"```\n") {
			t.Errorf("README.md does not show internal/demo/traffic/%s as it is, in a yaml block", name)
		}
	}
}

// TestWriteTraffic checks that the traffic file is replaced whole and
// removed, and that no other file the source would read is left.
func TestWriteTraffic(t *testing.T) {
	dir := t.TempDir()
	for _, file := range []string{CanaryFile, FaultsFile} {
		if err := writeTraffic(dir, trafficObjects(file)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, TrafficFile))
		if err != nil || string(got) != string(trafficObjects(file)) {
			t.Fatalf("%s holds %q, %v; want %s's objects", TrafficFile, got, err, file)
		}
	}
	if err := writeTraffic(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := writeTraffic(dir, nil); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s left in the source directory", e.Name())
	}
}

func TestWriteTrafficFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), TrafficDir)
	if err := WriteTrafficFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{CanaryFile, FaultsFile, ABFile, ResilienceFile} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != TrafficYAML(name) {
			t.Errorf("%s: %q, %v; want the embedded file", name, got, err)
		}
	}
}

// TestSourceTraffic writes each phase's traffic file into east-1's
// source directory, as the demo does, and reads it with the file source:
// every object is in force and nothing is refused; removed, none is.
func TestSourceTraffic(t *testing.T) {
	clusters, err := Layout(3)
	if err != nil {
		t.Fatal(err)
	}
	east1 := clusters[0]
	src, err := WriteSource(t.TempDir(), east1, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := filesource.New(filesource.Config{Dir: src, Cluster: east1.Name, Region: east1.Region, Zone: east1.Zone})
	if err != nil {
		t.Fatal(err)
	}
	names := func(tr policy.Traffic) []string {
		var out []string
		for _, r := range tr.HTTPRoutes {
			out = append(out, "HTTPRoute "+r.Namespace+"/"+r.Name)
		}
		for _, f := range tr.Faults {
			out = append(out, "FaultInjection "+f.Key())
		}
		for _, p := range tr.Resilience {
			out = append(out, "ResiliencePolicy "+p.Key())
		}
		return out
	}
	for _, tt := range []struct {
		file string
		want []string
	}{
		{CanaryFile, []string{"HTTPRoute demo/echo-canary", "ResiliencePolicy demo/echo"}},
		{FaultsFile, []string{"HTTPRoute demo/echo-faults", "FaultInjection demo/echo-faults", "ResiliencePolicy demo/echo"}},
		{ABFile, []string{"HTTPRoute demo/echo-ab", "ResiliencePolicy demo/echo"}},
		{"", nil},
	} {
		var data []byte
		if tt.file != "" {
			data = trafficObjects(tt.file)
		}
		if err := writeTraffic(src, data); err != nil {
			t.Fatal(err)
		}
		if _, problems := fs.Load(); len(problems) > 0 {
			t.Errorf("%s: problems %v", tt.file, problems)
		}
		tr, ready, _ := fs.Traffic()
		if diff := cmp.Diff(tt.want, names(tr)); !ready || diff != "" {
			t.Errorf("%s: ready %v, objects in force (-want +got):\n%s", tt.file, ready, diff)
		}
	}
}
