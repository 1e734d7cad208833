package controlplane

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/internal/poll"
)

const denyAdminYAML = `apiVersion: fedmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: demo}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
`

// TestPoliciesReachXDS runs a federation member whose file source holds
// an AuthorizationPolicy beside echo: /debug/authz on the admin port
// decides from it; a bad edit keeps it in force; a good edit replaces it.
func TestPoliciesReachXDS(t *testing.T) {
	m := startMember(t, memberOptions{files: map[string]string{"echo.yaml": echoYAML, "authz.yaml": denyAdminYAML}})
	write := func(name, content string) { t.Helper(); m.write(t, name, content) }
	src := m.src
	check := func(path string) (*xds.AuthzCheck, error) {
		q := url.Values{"from": {"spiffe://fedmesh.test/ns/demo/sa/client"}, "to": {"demo/echo"}, "path": {path}}
		var res xds.AuthzCheck
		if err := m.operatorGet(xds.DebugAuthzPath+"?"+q.Encode(), &res); err != nil {
			return nil, err
		}
		return &res, nil
	}
	poll.Until(t, 60*time.Second, "/admin denied by demo/deny-admin", func() error {
		res, err := check("/admin/x")
		if err != nil {
			return err
		}
		if res.Decision.Allowed || res.Decision.Policy != "demo/deny-admin" {
			return fmt.Errorf("decision %+v", res.Decision)
		}
		return nil
	})

	// A bad edit is refused; what was in force stays. The source reports
	// it once it has read the file.
	write("authz.yaml", denyAdminYAML+"  selector: {}\n")
	poll.Until(t, 30*time.Second, "the bad file reported", func() error {
		if len(src.Problems()) == 0 {
			return fmt.Errorf("no problem reported yet")
		}
		return nil
	})
	if res, err := check("/admin/x"); err != nil || res.Decision.Allowed {
		t.Fatalf("after a bad edit: %+v, %v; want still denied", res, err)
	}

	// A good edit replaces the policy: now only /secret is denied.
	write("authz.yaml", denyAdminYAML[:len(denyAdminYAML)-len(`  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]`+"\n")]+`  rules: [{to: [{operation: {paths: ["/secret"]}}]}]`+"\n")
	poll.Until(t, 30*time.Second, "/admin allowed after the edit", func() error {
		res, err := check("/admin/x")
		if err != nil {
			return err
		}
		if !res.Decision.Allowed {
			return fmt.Errorf("decision %+v", res.Decision)
		}
		return nil
	})
	if res, err := check("/secret"); err != nil || res.Decision.Allowed || res.Decision.Policy != "demo/deny-admin" {
		t.Errorf("/secret: %+v, %v; want denied by demo/deny-admin", res, err)
	}
}
