package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/testpki"
)

func memberStatus(m *membership.Membership, name string) membership.Status {
	for _, mem := range m.Members() {
		if mem.Name == name {
			return mem.Status
		}
	}
	return ""
}

func TestMembersCommands(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	// memberlist's probe of a peer waits for its ack or its timer, not
	// for Shutdown; it ends on its own within the probe timeout.
	probe := goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode")
	t.Cleanup(func() { goleak.VerifyNone(t, ignore, probe) })
	key := []byte("0123456789abcdef0123456789abcdef")
	root := testpki.NewRoot(t, "fed")
	a, aURL := fedTestControlPlane(t, "a", root, key)
	b, _ := fedTestControlPlane(t, "b", root, key)
	if _, err := b.Join([]string{a.Local().Addr}); err != nil {
		t.Fatal(err)
	}
	waitStatus := func(what string, want membership.Status) {
		t.Helper()
		poll.Until(t, 30*time.Second, what, func() error {
			if got := memberStatus(a, "b"); got != want {
				return fmt.Errorf("a sees b %q, want %q", got, want)
			}
			return nil
		})
	}
	waitStatus("federated", membership.StatusAlive)

	out, stderr, code := runFed(t, "members", "list", "-o", "json", "--admin", aURL)
	if code != 0 {
		t.Fatalf("members list: exit %d: %s", code, stderr)
	}
	var list adminapi.MembersResponse
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("members list -o json: %v\n%s", err, out)
	}
	var got []string
	for _, m := range list.Members {
		got = append(got, m.Name+"/"+m.Status)
	}
	if diff := cmp.Diff([]string{"a/alive", "b/alive"}, got); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{name: "alive member", args: []string{"members", "forget", "b", "--admin", aURL}, code: 1, want: "control plane answered 409"},
		{name: "itself", args: []string{"members", "forget", "a", "--admin", aURL}, code: 1, want: "cannot forget itself"},
		{name: "bad name", args: []string{"members", "forget", "B_1", "--admin", aURL}, code: 2, want: "neither a cluster name"},
		{name: "no name", args: []string{"members", "forget", "--admin", aURL}, code: 2, want: "accepts 1 arg"},
		{name: "bad admin URL", args: []string{"members", "forget", "b", "--admin", "localhost:15014"}, code: 2, want: "not an http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runFed(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.want)
			}
		})
	}

	if err := b.Shutdown(); err != nil { // a crash: no leave
		t.Fatal(err)
	}
	waitStatus("b failed", membership.StatusFailed)
	out, stderr, code = runFed(t, "members", "forget", "b", "--admin", aURL)
	if code != 0 || !strings.Contains(out, "forgot b") {
		t.Fatalf("members forget: exit %d, out %q, err %q", code, out, stderr)
	}
	waitStatus("b forgotten", membership.StatusLeft)
}
