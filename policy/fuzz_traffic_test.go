package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
)

// trafficSeeds are good documents of all six kinds, in YAML and JSON,
// and a few bad ones.
func trafficSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, doc := range []string{goodHTTPRoute, goodGRPCRoute, goodResilience, goodFault, goodTelemetry, goodRateLimit} {
		seeds = append(seeds, []byte(doc), toJSON(f, []byte(doc)))
	}
	for _, doc := range exampleDocs(f) {
		seeds = append(seeds, doc, toJSON(f, doc))
	}
	return append(seeds,
		[]byte("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{name: echo}], rules: [{}]}\n"),
		[]byte(`{"apiVersion":"gateway.networking.k8s.io/v1","kind":"HTTPRoute","metadata":{"name":"r"},"spec":{"parentRefs":[{"group":"","kind":"Service","name":"e"}],"rules":[{"matches":[{"path":{"type":"RegularExpression","value":"(a"}}]}]}}`),
		[]byte("apiVersion: fedmesh.io/v1alpha1\nkind: FaultInjection\nmetadata: {name: f}\nspec: {abort: {httpStatus: 503, percentage: 1e309}}\n"),
		[]byte("apiVersion: fedmesh.io/v1alpha1\nkind: ResiliencePolicy\nmetadata: {name: p}\nspec: {targetRefs: [{kind: Service, name: a}], loadBalancer: {algorithm: RingHash, hashKey: {}}}\n"),
		[]byte("apiVersion: fedmesh.io/v1alpha1\nkind: TelemetryPolicy\nmetadata: {name: t, namespace: fedmesh-system}\nspec: {tracing: {samplingPercent: 1}}\n"),
		[]byte("apiVersion: fedmesh.io/v1alpha1\nkind: TelemetryPolicy\nmetadata: {name: t}\nspec: {accessLog: {enabled: false}}\n"),
		[]byte("apiVersion: fedmesh.io/v1alpha1\nkind: TelemetryPolicy\nmetadata: {name: t}\nspec: {tracing: {samplingPercent: 1e309, customTags: {fedmesh.x: a, \"\": b}}, accessLog: {filter: some}}\n"),
		[]byte(`{"apiVersion":"fedmesh.io/v1alpha1","kind":"TelemetryPolicy","metadata":{"name":"t"},"spec":{"targetRefs":[{"kind":"ServiceImport","group":"multicluster.x-k8s.io","name":"e"}],"tracing":{"customTags":{"k":"v\u0000"}}}}`),
		[]byte("apiVersion: fedmesh.io/v1alpha1\nkind: RateLimitPolicy\nmetadata: {name: r}\nspec: {local: [{name: a, requests: 1, interval: 1ms, key: {type: Header}}]}\n"),
		[]byte("apiVersion: fedmesh.io/v1alpha1\nkind: RateLimitPolicy\nmetadata: {name: r}\nspec: {quotas: [{name: q, requests: 9999999999, interval: 1h, principals: [\"spiffe://td/*\"]}], tcp: {ports: [\"80\"], connectionsPerSecond: 1}}\n"),
		[]byte(`{"apiVersion":"fedmesh.io/v1alpha1","kind":"RateLimitPolicy","metadata":{"name":"r"},"spec":{"local":[{"name":"a","requests":1,"interval":"1s","match":{"headers":[{"name":":path"}],"grpc":{"service":"a.B"}}}]}}`),
		[]byte("a: &a [*a, *a]\n"),
	)
}

// FuzzParseObject feeds ParseObject arbitrary YAML and JSON: it never
// panics; an error is a parse error or a validation error; an object it
// returns validates, has a namespace, resolves or not without panicking,
// and survives EncodePolicies/DecodePolicies unchanged.
func FuzzParseObject(f *testing.F) {
	for _, s := range trafficSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		obj, err := ParseObject(doc)
		if err != nil {
			if !errors.Is(err, ErrParseTraffic) && !errors.Is(err, catalog.ErrInvalid) {
				t.Fatalf("error wraps neither ErrParseTraffic nor catalog.ErrInvalid: %v", err)
			}
			var ve *catalog.ValidationError
			if errors.As(err, &ve) && (ve.Object == "" || len(ve.Fields) == 0) {
				t.Fatalf("validation error without an object or fields: %v", err)
			}
			return
		}
		if err := ValidateObject(obj); err != nil {
			t.Fatalf("ParseObject returned an invalid object: %v", err)
		}
		var tr Traffic
		if err := tr.Add(obj); err != nil {
			t.Fatal(err)
		}
		for _, r := range tr.HTTPRoutes {
			if r.Namespace == "" {
				t.Fatal("no namespace")
			}
		}
		_ = tr.Resolve()
		roundTrip(t, tr)
	})
}

// FuzzDecodePolicies: for valid inputs, Encode(Decode(x)) == x, where x
// is what EncodePolicies made of the objects ParseObject accepted from
// the fuzzed documents; and DecodePolicies of the raw documents as they
// are either fails or decodes to a set that round-trips.
func FuzzDecodePolicies(f *testing.F) {
	seeds := trafficSeeds(f)
	for i, s := range seeds {
		f.Add(s, seeds[(i+3)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var tr Traffic
		for _, doc := range [][]byte{a, b} {
			if obj, err := ParseObject(doc); err == nil {
				if err := tr.Add(obj); err != nil {
					t.Fatal(err)
				}
			}
		}
		roundTrip(t, tr)

		if dec, err := DecodePolicies(&catalog.Policies{Objects: []json.RawMessage{a, b}}); err == nil {
			roundTrip(t, dec)
		}
	})
}

// roundTrip checks that tr encodes, decodes to the same objects, and
// encodes again to the same bytes and digest. TelemetryPolicies never
// travel: they are left out.
func roundTrip(t *testing.T, tr Traffic) {
	t.Helper()
	tr.Telemetry, tr.RateLimits = nil, nil
	x, err := EncodePolicies(tr)
	if err != nil {
		t.Fatalf("EncodePolicies: %v", err)
	}
	if tr.Empty() {
		if x != nil {
			t.Fatalf("an empty set encodes to %+v, want nil", x)
		}
		return
	}
	dec, err := DecodePolicies(x)
	if err != nil {
		t.Fatalf("DecodePolicies of what EncodePolicies made: %v", err)
	}
	y, err := EncodePolicies(dec)
	if err != nil {
		t.Fatalf("EncodePolicies of the decoded set: %v", err)
	}
	if x.Digest != y.Digest || len(x.Objects) != len(y.Objects) {
		t.Fatalf("Encode(Decode(x)) != x: digest %s vs %s, %d vs %d objects", x.Digest, y.Digest, len(x.Objects), len(y.Objects))
	}
	for i := range x.Objects {
		if !bytes.Equal(x.Objects[i], y.Objects[i]) {
			t.Fatalf("object %d changed:\n%s\n%s", i, x.Objects[i], y.Objects[i])
		}
	}
	// The specs travel unchanged (metadata keeps only name and namespace).
	SortTraffic(&tr)
	SortTraffic(&dec)
	ignore := cmpopts.IgnoreFields(gatewayv1.HTTPRoute{}, "TypeMeta", "ObjectMeta", "Status")
	ignoreG := cmpopts.IgnoreFields(gatewayv1.GRPCRoute{}, "TypeMeta", "ObjectMeta", "Status")
	ignoreR := cmpopts.IgnoreFields(ResiliencePolicy{}, "TypeMeta", "ObjectMeta")
	ignoreF := cmpopts.IgnoreFields(FaultInjection{}, "TypeMeta", "ObjectMeta")
	if diff := cmp.Diff(tr, dec, ignore, ignoreG, ignoreR, ignoreF, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("decoded set differs (-encoded +decoded):\n%s", diff)
	}
}
