package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/echo"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/sidecar/audit"
)

// TestAuthorization proves the demo's AuthorizationPolicies (every
// cluster: echo admits only the client; nobody on /admin) through the real
// control planes and sidecars: the client's GET / is served, its GET
// /admin is refused with 403 by the sidecar of the echo replica that
// received it, in the client's cluster and, once east-1's echo is gone, in
// east-2 behind its gateway; that sidecar writes the audit record of the
// denial; `fedmesh authz check` against the control plane of the cluster
// that denied gives the same decision; and when east-2's policy file
// drops the DENY policy, east-2 serves /admin.
func TestAuthorization(t *testing.T) {
	m := startMesh(t, meshSpec{})
	east1, east2 := m.cluster("east-1"), m.cluster("east-2")

	// Allowed: the client may read, by the ALLOW policy.
	code, rep, body := m.get(t, "/")
	if code != http.StatusOK || rep.Cluster != east1.Name || rep.ClientID != demo.ClientID {
		t.Fatalf("GET /: %d %s; want 200 from east-1's echo, called as %s", code, body, demo.ClientID)
	}
	m.wantCheck(t, east1, "/", check{Allowed: true, Action: "ALLOW", Policy: demo.AllowPolicy, Rule: 0, Reason: policy.ReasonAllowed})

	// Denied in the client's own cluster.
	denied := check{Action: "DENY", Policy: demo.DenyPolicy, Rule: 0, Reason: policy.ReasonDenied}
	m.wantDenied(t, east1, denied)

	// Denied across a cluster boundary: without east-1's echo, east-2's
	// replicas serve, through east-2's gateway, and enforce east-2's copy
	// of the policy on the client from east-1.
	m.killEcho(east1)
	poll.Until(t, 30*time.Second, "the client's requests served by east-2", func() error {
		if code, rep, body := m.get(t, "/"); code != http.StatusOK || rep.Cluster != east2.Name {
			return fmt.Errorf("GET /: %d %s", code, body)
		}
		return nil
	})
	if n := metric(scrape(t, east2.IP+":15021/stats/prometheus"), "fedmesh_gateway_connections_total"); n == 0 {
		t.Errorf("east-2's gateway accepted no connection; the requests did not cross it")
	}
	m.wantDenied(t, east2, denied)

	// Policies are each cluster's own: east-2's operator drops the DENY
	// policy from east-2's file, and east-2's sidecars serve /admin, while
	// east-1 still denies it.
	file := filepath.Join(m.path(east2.Name, "source"), demo.PolicyFile)
	m.dropPolicy(t, file, demo.DenyPolicy)
	poll.Until(t, 30*time.Second, "GET "+demo.DeniedPath+" served by east-2 after the DENY policy is gone", func() error {
		code, rep, body := m.get(t, demo.DeniedPath)
		if code != http.StatusOK || rep.Cluster != east2.Name || rep.Path != demo.DeniedPath {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	m.wantCheck(t, east2, demo.DeniedPath, check{Allowed: true, Action: "ALLOW", Policy: demo.AllowPolicy, Rule: 0, Reason: policy.ReasonAllowed})
	m.wantCheck(t, east1, demo.DeniedPath, denied)
}

// get sends GET path to echo through the client's sidecar and returns the
// status, echo's reply (zero when the body is not one) and the body.
func (m *mesh) get(t *testing.T, path string) (int, echo.Reply, string) {
	t.Helper()
	c := m.client()
	defer c.CloseIdleConnections()
	resp, err := c.Get(strings.TrimSuffix(echoURL, "/") + path)
	if err != nil {
		return 0, echo.Reply{}, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, echo.Reply{}, err.Error()
	}
	var rep echo.Reply
	json.Unmarshal(b, &rep)
	return resp.StatusCode, rep, strings.TrimSpace(string(b))
}

// wantDenied sends GET /admin through the client's sidecar and checks
// that it is refused with 403 and the sidecar's own body, that exactly one
// echo sidecar, one of cluster c's, writes the audit record of the
// denial, with every field, and that `fedmesh authz check` against c's
// control plane decides the same.
func (m *mesh) wantDenied(t *testing.T, c demo.Cluster, want check) {
	t.Helper()
	sent := time.Now()
	code, _, body := m.get(t, demo.DeniedPath)
	if code != http.StatusForbidden || body != "RBAC: access denied" {
		t.Fatalf("GET %s: %d %q; want 403 \"RBAC: access denied\"", demo.DeniedPath, code, body)
	}
	var recs map[string][]audit.Record // by file
	poll.Until(t, 10*time.Second, "the audit record of GET "+demo.DeniedPath, func() error {
		recs = m.auditRecords(t, sent, demo.DeniedPath)
		if len(recs) == 0 {
			return errors.New("no echo sidecar wrote one")
		}
		return nil
	})
	var files []string
	for f := range recs {
		files = append(files, f)
	}
	if len(files) != 1 || len(recs[files[0]]) != 1 || !strings.HasPrefix(files[0], m.path(c.Name)+string(filepath.Separator)) {
		t.Fatalf("audit records of the denied request: %v; want one, by a sidecar of %s", recs, c.Name)
	}
	got := recs[files[0]][0]
	rule := want.Rule
	wantRec := audit.Record{Decision: audit.DecisionDeny, Policy: want.Policy, Rule: &rule, Reason: want.Reason,
		SourcePrincipal: demo.ClientID, SourceCluster: "east-1", DestinationService: "demo/echo", DestinationPort: 8080,
		Method: http.MethodGet, Path: demo.DeniedPath, Protocol: "http"}
	if diff := cmp.Diff(wantRec, got, cmpopts.IgnoreFields(audit.Record{}, "Time")); diff != "" {
		t.Errorf("audit record in %s (-want +got):\n%s", files[0], diff)
	}
	t.Logf("GET %s: 403; %s", demo.DeniedPath, files[0])
	// The control plane of the cluster that denied gives the same answer,
	// naming the policy and rule of the audit record.
	m.wantCheck(t, c, demo.DeniedPath, check{Allowed: false, Action: want.Action, Policy: got.Policy, Rule: *got.Rule, Reason: got.Reason})
}

// auditRecords returns the audit records of the client's GET path made at
// or after since, in every echo sidecar's audit log, by file.
func (m *mesh) auditRecords(t *testing.T, since time.Time, path string) map[string][]audit.Record {
	t.Helper()
	out := map[string][]audit.Record{}
	for _, c := range m.clusters {
		for r := 1; r <= m.spec.replicas; r++ {
			file := m.auditLog(c, r)
			b, err := os.ReadFile(file)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				var rec audit.Record
				if line == "" || json.Unmarshal([]byte(line), &rec) != nil {
					continue // a line being written
				}
				if !rec.Time.Before(since) && rec.SourcePrincipal == demo.ClientID && rec.Path == path {
					out[file] = append(out[file], rec)
				}
			}
		}
	}
	return out
}

// check is the part of `fedmesh authz check -o json` the test compares.
type check struct {
	Allowed bool
	Action  string
	Policy  string
	Rule    int
	Reason  string
}

// wantCheck runs `fedmesh authz check` for the client's GET path to
// demo/echo against c's control plane, as an operator, and compares its
// decision and exit code with want.
func (m *mesh) wantCheck(t *testing.T, c demo.Cluster, path string, want check) {
	t.Helper()
	out, stderr, code := m.e.run("authz", "check", "--admin", c.Admin(), "--operator-dir", m.path("operator"),
		"--from", demo.ClientID, "--from-cluster", "east-1", "--to", "demo/echo", "--method", "GET", "--path", path, "-o", "json")
	wantCode := 1
	if want.Allowed {
		wantCode = 0
	}
	if code != wantCode {
		t.Fatalf("fedmesh authz check --admin %s --path %s: exit %d, want %d: %s%s", c.Admin(), path, code, wantCode, out, stderr)
	}
	var res struct {
		Cluster  string `json:"cluster"`
		Decision struct {
			Allowed bool   `json:"allowed"`
			Action  string `json:"action"`
			Policy  string `json:"policy"`
			Rule    *int   `json:"rule"`
			Reason  string `json:"reason"`
		} `json:"decision"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("fedmesh authz check -o json: %v: %s", err, out)
	}
	d := res.Decision
	got := check{Allowed: d.Allowed, Action: d.Action, Policy: d.Policy, Rule: -1, Reason: d.Reason}
	if d.Rule != nil {
		got.Rule = *d.Rule
	}
	if diff := cmp.Diff(want, got); diff != "" || res.Cluster != c.Name {
		t.Errorf("fedmesh authz check in %s (answered by %s) of GET %s (-want +got):\n%s", c.Name, res.Cluster, path, diff)
	}
}

// dropPolicy rewrites a source directory's policy file without the policy
// named key (NAMESPACE/NAME), in one rename, so that the control plane
// never reads half a file.
func (m *mesh) dropPolicy(t *testing.T, file, key string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, doc := range strings.Split(string(b), "\n---\n") {
		p, err := policy.Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if p.Key() != key {
			keep = append(keep, doc)
		}
	}
	if len(keep) == len(strings.Split(string(b), "\n---\n")) {
		t.Fatalf("%s holds no policy %s", file, key)
	}
	tmp := m.path("policy.tmp")
	if err := os.WriteFile(tmp, []byte(strings.Join(keep, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}
