package demo

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fedmesh/fedmesh/controlplane/source/filesource"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/sidecar/audit"
)

// TestSourcePolicies reads the policies WriteSourceDir writes with the
// parser the file source uses, and decides the demo's requests with them.
func TestSourcePolicies(t *testing.T) {
	dir := t.TempDir()
	if err := WriteSourceDir(dir, Source{Cluster: "east-1", Index: 1, Zone: "a", ClientIP: "127.0.1.100",
		Replicas: []Replica{{N: 1, IP: "127.0.1.1"}}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, PolicyFile))
	if err != nil {
		t.Fatal(err)
	}
	var ps []policy.AuthorizationPolicy
	for _, doc := range strings.Split(string(b), "\n---\n") {
		p, err := policy.Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v\n%s", PolicyFile, err, doc)
		}
		ps = append(ps, *p)
	}
	zero := 0
	tests := []struct {
		name      string
		principal string
		path      string
		want      policy.Decision
	}{
		{name: "the client reads", principal: ClientID, path: "/",
			want: policy.Decision{Allowed: true, Action: policy.ActionAllow, Policy: AllowPolicy, Rule: &zero, Reason: policy.ReasonAllowed}},
		{name: "the client on /admin", principal: ClientID, path: DeniedPath,
			want: policy.Decision{Action: policy.ActionDeny, Policy: DenyPolicy, Rule: &zero, Reason: policy.ReasonDenied}},
		{name: "the client below /admin", principal: ClientID, path: DeniedPath + "/users?x=1",
			want: policy.Decision{Action: policy.ActionDeny, Policy: DenyPolicy, Rule: &zero, Reason: policy.ReasonDenied}},
		{name: "the client on /administrator", principal: ClientID, path: DeniedPath + "istrator",
			want: policy.Decision{Allowed: true, Action: policy.ActionAllow, Policy: AllowPolicy, Rule: &zero, Reason: policy.ReasonAllowed}},
		{name: "another caller", principal: "spiffe://" + TrustDomain + "/ns/demo/sa/other", path: "/",
			want: policy.Decision{Action: policy.ActionAllow, Reason: policy.ReasonNoAllow}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.Evaluate(ps, policy.Request{Principal: tt.principal, Cluster: "east-2", Namespace: "demo", Service: "echo",
				Port: 8080, Method: "GET", Path: tt.path})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
	// The client, the one caller the ALLOW policy admits, is not another
	// service's account.
	if !strings.HasSuffix(ClientID, "/sa/client") {
		t.Errorf("ClientID %s is not the client's service account", ClientID)
	}
}

func TestFindRecord(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.log")
	lines := `{"time":"2026-03-01T12:00:00Z","decision":"deny","path":"/admin","source_principal":"a"}
{"time":"2026-03-01T12:00:01Z","decision":"deny","path":"/admin","source_principal":"b"}
{"time":"2026-03-01T12:00:02Z","decis`
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	line, rec, err := findRecord(file, func(r *audit.Record) bool { return r.SourcePrincipal == "b" })
	if err != nil || rec == nil || line != strings.Split(lines, "\n")[1] {
		t.Fatalf("findRecord = %q, %+v, %v; want the second line", line, rec, err)
	}
	if _, rec, err := findRecord(file, func(r *audit.Record) bool { return r.SourcePrincipal == "c" }); rec != nil || err != nil {
		t.Errorf("findRecord of no match = %+v, %v; want nil, nil", rec, err)
	}
	if _, rec, err := findRecord(file+".none", func(*audit.Record) bool { return true }); rec != nil || err != nil {
		t.Errorf("findRecord of a missing file = %+v, %v; want nil, nil", rec, err)
	}
}

// TestSourceCanary reads the source directories WriteSource writes with
// the file source: the canary cluster exports echo-v2 beside echo, the
// others echo alone, and nothing is refused.
func TestSourceCanary(t *testing.T) {
	clusters, err := Layout(3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, c := range clusters {
		canary := 0
		if i == 2 {
			canary = 1
		}
		src, err := WriteSource(dir, c, 2, canary)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := filesource.New(filesource.Config{Dir: src, Cluster: c.Name, Region: c.Region, Zone: c.Zone})
		if err != nil {
			t.Fatal(err)
		}
		exports, problems := fs.Load()
		if len(problems) > 0 {
			t.Errorf("%s: problems %v", c.Name, problems)
		}
		got := map[string][]string{}
		for _, e := range exports {
			for _, ep := range e.Endpoints {
				k := e.Service.Namespace + "/" + e.Service.Name
				got[k] = append(got[k], ep.Address)
			}
		}
		want := map[string][]string{"demo/echo": {c.WorkloadIP(1), c.WorkloadIP(2)}}
		if canary > 0 {
			want["demo/"+CanaryService] = []string{c.CanaryIP(1)}
		}
		if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
			t.Errorf("%s exports (-want +got):\n%s", c.Name, diff)
		}
	}
}

// TestLayoutAt places clusters and workloads from the base address: the
// default keeps the demo's historical addresses, another base moves all
// of them, and bases that cannot hold the clusters are refused.
func TestLayoutAt(t *testing.T) {
	type addrs struct{ IP, CIDR, Echo2, Client, Canary1 string }
	get := func(cs []Cluster) []addrs {
		var out []addrs
		for _, c := range cs {
			out = append(out, addrs{c.IP, c.CIDR(), c.WorkloadIP(2), c.ClientIP(), c.CanaryIP(1)})
		}
		return out
	}
	tests := []struct {
		name    string
		base    string
		want    []addrs
		wantErr string
	}{
		{name: "default", base: "127.0.0.11", want: []addrs{
			{"127.0.0.11", "127.0.1.0/24", "127.0.1.2", "127.0.1.100", "127.0.1.201"},
			{"127.0.0.12", "127.0.2.0/24", "127.0.2.2", "127.0.2.100", "127.0.2.201"},
			{"127.0.0.13", "127.0.3.0/24", "127.0.3.2", "127.0.3.100", "127.0.3.201"},
		}},
		{name: "moved", base: "127.42.8.1", want: []addrs{
			{"127.42.8.1", "127.42.9.0/24", "127.42.9.2", "127.42.9.100", "127.42.9.201"},
			{"127.42.8.2", "127.42.10.0/24", "127.42.10.2", "127.42.10.100", "127.42.10.201"},
			{"127.42.8.3", "127.42.11.0/24", "127.42.11.2", "127.42.11.100", "127.42.11.201"},
		}},
		{name: "not loopback", base: "10.0.0.11", wantErr: "loopback"},
		{name: "ipv6", base: "::1", wantErr: "IPv4 loopback"},
		{name: "last octet overflows", base: "127.0.0.253", wantErr: "last octet"},
		{name: "workload ranges overflow", base: "127.0.253.11", wantErr: "third octet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := LayoutAt(3, netip.MustParseAddr(tt.base))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LayoutAt(%s) = %v, want an error about %q", tt.base, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, get(cs)); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFederationArgs: the demo's timings by default, the control plane's
// own when a Federation leaves them zero.
func TestFederationArgs(t *testing.T) {
	var none *Federation
	tests := []struct {
		name string
		f    *Federation
		want []string
	}{
		{name: "nil is the demo's", f: none, want: []string{"--gossip-profile", "local", "--fence-period", "5s"}},
		{name: "defaults pass nothing", f: &DefaultFederation, want: nil},
		{name: "profile alone", f: &Federation{GossipProfile: "lan"}, want: []string{"--gossip-profile", "lan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.f.args()); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}
