package policy

import (
	"errors"
	"testing"

	"github.com/fedmesh/fedmesh/catalog"
)

// FuzzParse feeds Parse arbitrary documents: it must never panic, must
// either return a valid policy or a parse or validation error, and a
// policy it returns must evaluate without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("apiVersion: fedmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {action: DENY, rules: [{}]}"))
	f.Add([]byte(`{"apiVersion":"fedmesh.io/v1alpha1","kind":"AuthorizationPolicy","metadata":{"name":"a"},"spec":{"rules":[{"when":[{"key":"request.headers[a]","notValues":["*"]}]}]}}`))
	f.Add([]byte("spec: {rules: [{to: [{operation: {ports: [\"99999999999\"]}}]}]}"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := Parse(doc)
		if err != nil {
			if !errors.Is(err, ErrParse) && !errors.Is(err, catalog.ErrInvalid) {
				t.Fatalf("error wraps neither ErrParse nor catalog.ErrInvalid: %v", err)
			}
			return
		}
		if err := Validate(p); err != nil {
			t.Fatalf("Parse returned an invalid policy: %v", err)
		}
		for _, tcp := range []bool{false, true} {
			d := Evaluate([]AuthorizationPolicy{*p}, Request{Principal: "spiffe://td/ns/demo/sa/a", Namespace: p.Namespace, Service: "svc", Port: 80, TCP: tcp, Method: "GET", Path: "/x"})
			if d.Reason == "" {
				t.Fatal("decision without a reason")
			}
		}
	})
}
