package filesource

import (
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/policy"
)

const denyAdmin = `apiVersion: fedmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: demo}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
`

const defaultDeny = `apiVersion: fedmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: fedmesh-system}
spec: {}
`

func policyKeys(ps []policy.AuthorizationPolicy) string {
	var keys []string
	for i := range ps {
		keys = append(keys, ps[i].Key()+":"+string(ps[i].Spec.EffectiveAction()))
	}
	return strings.Join(keys, ",")
}

// TestAuthorizationPolicies reads policies beside Services, keeps them
// out of the exports, and keeps the last good set when a file turns bad.
func TestAuthorizationPolicies(t *testing.T) {
	dir := t.TempDir()
	s := newSource(t, dir, nil)
	if ps, ready, _ := s.AuthorizationPolicies(); ready || len(ps) != 0 {
		t.Fatalf("before any read: ready %v, %d policies; want not ready, none", ready, len(ps))
	}
	_, _, ch0 := s.AuthorizationPolicies()
	writeFiles(t, dir, map[string]string{"echo.yaml": echoService + "---\n" + echoExport, "authz.yaml": denyAdmin + "---\n" + defaultDeny})
	exports, problems := s.Load()
	checkProblems(t, nil, problems)
	if len(exports) != 1 {
		t.Fatalf("exports: %d, want 1 (policies are not exported)", len(exports))
	}
	ps, ready, ch1 := s.AuthorizationPolicies()
	if !ready || policyKeys(ps) != "demo/deny-admin:DENY,fedmesh-system/deny-all:ALLOW" {
		t.Fatalf("after the first read: ready %v, policies %q", ready, policyKeys(ps))
	}
	select {
	case <-ch0:
	default:
		t.Error("the change channel taken before the read is not closed")
	}

	// A bad glob makes the whole file bad: its problem names the file,
	// the document, the object and the field; it is counted; the file's
	// last good policies stay.
	bad := strings.Replace(denyAdmin, `"/admin*"`, `"/a*b"`, 1)
	writeFiles(t, dir, map[string]string{"authz.yaml": bad + "---\n" + defaultDeny})
	_, problems = s.Load()
	checkProblems(t, []probe{{File: "authz.yaml", Doc: 1, Object: "AuthorizationPolicy demo/deny-admin", Reason: source.ReasonInvalid,
		Msg: `spec.rules[0].to[0].operation.paths[0] "/a*b": "*" may only stand alone or at the start or end`}}, problems)
	if got := counterValue(t, s.rejected.WithLabelValues(string(source.ReasonInvalid))); got != 1 {
		t.Errorf("rejected{reason=invalid} = %v, want 1", got)
	}
	if ps, _, _ := s.AuthorizationPolicies(); policyKeys(ps) != "demo/deny-admin:DENY,fedmesh-system/deny-all:ALLOW" {
		t.Errorf("after a bad file: %q, want the last good set", policyKeys(ps))
	}
	select {
	case <-ch1:
		t.Error("the change channel closed though the policies in force did not change")
	default:
	}

	// An unknown field is a parse problem, also naming the field.
	writeFiles(t, dir, map[string]string{"authz.yaml": strings.Replace(denyAdmin, "action: DENY", "action: DENY\n  selector: {}", 1)})
	_, problems = s.Load()
	checkProblems(t, []probe{{File: "authz.yaml", Doc: 1, Object: "AuthorizationPolicy demo/deny-admin", Reason: source.ReasonParse, Msg: `unknown field "spec.selector"`}}, problems)

	// A good change replaces the set and closes the channel.
	writeFiles(t, dir, map[string]string{"authz.yaml": defaultDeny})
	_, problems = s.Load()
	checkProblems(t, nil, problems)
	ps, _, _ = s.AuthorizationPolicies()
	if policyKeys(ps) != "fedmesh-system/deny-all:ALLOW" {
		t.Errorf("after the fix: %q", policyKeys(ps))
	}
	select {
	case <-ch1:
	default:
		t.Error("the change channel is not closed after the set changed")
	}
	var m dto.Metric
	if err := s.policyN.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetGauge().GetValue(); got != 1 {
		t.Errorf("fedmesh_source_authorization_policies = %v, want 1", got)
	}
}

// TestAuthorizationPolicyDuplicate keeps the first of two policies with
// one namespace and name.
func TestAuthorizationPolicyDuplicate(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": denyAdmin, "b.yaml": strings.Replace(denyAdmin, "DENY", "AUDIT", 1)})
	s := newSource(t, dir, nil)
	_, problems := s.Load()
	checkProblems(t, []probe{{File: "b.yaml", Doc: 1, Object: "AuthorizationPolicy demo/deny-admin", Reason: source.ReasonDuplicate, Msg: "already defined in a.yaml document 1"}}, problems)
	if ps, _, _ := s.AuthorizationPolicies(); policyKeys(ps) != "demo/deny-admin:DENY" {
		t.Errorf("policies %q, want the first", policyKeys(ps))
	}
}
