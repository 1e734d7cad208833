package filesource

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"

	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/policy"
)

// FuzzParseFile: ParseFile never panics, every problem names the file, and
// every object it returns is valid.
func FuzzParseFile(f *testing.F) {
	for _, seed := range []string{
		docs(echoService, echoExport, echoWorkloads),
		`{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"}, "spec": {"ports": [{"port": 80}]}}`,
		"---\n---\n# only comments\n---\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: echo}\nspec: {ports: [{port: 0}]}\n",
		"apiVersion: v1\nkind: Service\nspec: {portz: 1}\n",
		"a: &a [*a, *a]\n",
		"- 1\n- 2\n",
		"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s, labels: {kubernetes.io/service-name: echo}}\naddressType: IPv4\nendpoints: [{addresses: [1.2.3.4]}]\nports: [{port: 1}]\n",
		"apiVersion: fedmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: w}\nspec: {address: '::1', ports: {'': 1}}\n",
		"key: value\nkey: again\n",
		"--- {apiVersion: v1, kind: Service, metadata: {name: x}}\n",
		docs(canaryRoute, chaosRoute, chaosFault, greeterRoute, echoResilience),
		docs(meshTelemetry, demoTelemetry),
		echoRateLimit,
		"apiVersion: fedmesh.io/v1alpha1\nkind: RateLimitPolicy\nmetadata: {name: r}\nspec: {local: [{name: a, requests: 0, interval: 1ms, key: {type: Header}}]}\n",
		"apiVersion: fedmesh.io/v1alpha1\nkind: TelemetryPolicy\nmetadata: {name: t}\nspec: {tracing: {samplingPercent: 101, customTags: {fedmesh.a: b}}}\n",
		"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{name: echo}], rules: [{backendRefs: [{name: e}]}]}\n",
		"apiVersion: fedmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {action: DENY, rules: [{from: [{source: {principals: ['spiffe://td/ns/a/sa/*']}}], to: [{operation: {ports: ['80'], paths: ['*.css']}}]}]}\n",
	} {
		f.Add("f.yaml", []byte(seed))
	}
	f.Add("f.json", []byte(`{"apiVersion": "v1"}`))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		if name == "" {
			name = "f.yaml"
		}
		file := ParseFile(name, data)
		for _, p := range file.Problems {
			if p.File != name || !strings.HasPrefix(p.Error(), name+": ") {
				t.Errorf("problem %q does not name the file %q", p.Error(), name)
			}
			if p.Reason == "" || p.Err == nil {
				t.Errorf("problem %q has no reason or error", p.Error())
			}
		}
		for _, o := range file.Objects {
			var err error
			switch v := o.Value.(type) {
			case *source.Workload:
				err = source.ValidateWorkload(v)
			case *corev1.Service:
				err = source.ValidateService(v)
			case *discoveryv1.EndpointSlice:
				err = source.ValidateEndpointSlice(v)
			case *mcsv1alpha1.ServiceExport:
				err = source.ValidateServiceExport(v)
			case *policy.AuthorizationPolicy:
				err = policy.Validate(v)
			case *gatewayv1.HTTPRoute, *gatewayv1.GRPCRoute, *policy.ResiliencePolicy, *policy.FaultInjection, *policy.TelemetryPolicy, *policy.RateLimitPolicy:
				err = policy.ValidateObject(v)
			default:
				t.Errorf("object %s has unexpected type %T", o.Ref, v)
			}
			if err != nil {
				t.Errorf("returned object %s is invalid: %v", o.Ref, err)
			}
			if o.Doc < 1 {
				t.Errorf("object %s has document %d, want >= 1", o.Ref, o.Doc)
			}
		}
	})
}
