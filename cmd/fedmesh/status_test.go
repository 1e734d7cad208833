package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/federation"
)

func TestStatusCmd(t *testing.T) {
	want := federation.Status{
		Cluster: "east-1", ViewRevision: 7, ViewHash: "0123456789abcdef", Services: 2,
		Members: []federation.MemberStatus{
			{Name: "east-1", Local: true, State: "alive", Region: "us-east", Zone: "a", Connected: true, CatalogRevision: 12, Exports: 2},
			{Name: "west-1", State: "failed", Region: "us-west", RTT: federation.Duration(40 * time.Millisecond),
				CatalogRevision: 9, ImportLag: federation.Duration(20 * time.Second), Exports: 1,
				Fenced: true, FenceReason: "serf reports the control plane failed"},
		},
		Fenced: []federation.FencedPeer{{Name: "west-1", Reason: "serf reports the control plane failed"}},
		Conflicts: []federation.Conflict{{Service: "demo/echo", Cluster: "west-1", Reason: "PortConflict",
			Message: "export from west-1 conflicts with the oldest export, from east-1: ports [http:81/TCP], not [http:80/TCP]"}},
		RefusedPolicies: []federation.RefusedPolicies{{Service: "demo/shop", Cluster: "west-1", Digest: "abc",
			Error: "producer policies refused: service demo/shop: 1 of 1 HTTPRoute objects are not producer policies of the service"}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != federation.StatusPath {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(want)
	}))
	defer srv.Close()

	run := func(args ...string) (string, error) {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append([]string{"status", "--admin", srv.URL}, args...))
		err := root.Execute()
		return out.String(), err
	}

	tests := []struct {
		name     string
		args     []string
		contains []string
	}{
		{name: "table", contains: []string{
			"Cluster east-1: view revision 7, 2 services",
			"east-1 (local)  alive",
			"west-1          failed  us-west  -     40ms",
			"west-1  serf reports the control plane failed",
			"demo/echo  west-1   PortConflict",
			"demo/shop  west-1   producer policies refused: service demo/shop: 1 of 1 HTTPRoute",
		}},
		{name: "yaml", args: []string{"-o", "yaml"}, contains: []string{"cluster: east-1", "importLag: 20s", "reason: PortConflict"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}

	t.Run("json round trip", func(t *testing.T) {
		out, err := run("-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var got federation.Status
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
	})
	t.Run("bad format is a usage error", func(t *testing.T) {
		_, err := run("-o", "xml")
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("err = %v, want exit code 2", err)
		}
	})
}
