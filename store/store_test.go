package store_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/store/storetest"
)

func TestSetAndListExports(t *testing.T) {
	ctx := testCtx(t)
	s := storetest.Open(t, "east-1")
	a := export("east-1", "demo", "echo", "127.0.1.2", "127.0.1.1")
	b := export("east-1", "demo", "api", "127.0.1.3")
	rev1, err := s.SetExports(ctx, []catalog.Export{a, b})
	if err != nil {
		t.Fatal(err)
	}
	got, rev, err := s.ListExports(ctx, "east-1")
	if err != nil {
		t.Fatal(err)
	}
	if rev != rev1 {
		t.Errorf("list revision %d, want the write's %d", rev, rev1)
	}
	a.Sort()
	want := []catalog.Export{b, a}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ListExports (-want +got):\n%s", d)
	}
	// The same set again writes nothing: no new revision.
	rev2, err := s.SetExports(ctx, []catalog.Export{b, a})
	if err != nil {
		t.Fatal(err)
	}
	if rev2 != rev1 {
		t.Errorf("unchanged SetExports moved the revision from %d to %d", rev1, rev2)
	}
	// Drop one.
	if _, err := s.SetExports(ctx, []catalog.Export{b}); err != nil {
		t.Fatal(err)
	}
	got, _, err = s.ListExports(ctx, "east-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]catalog.Export{b}, got); d != "" {
		t.Errorf("after removing echo (-want +got):\n%s", d)
	}
	if s.ClientURL() == "" || s.Client() == nil {
		t.Errorf("ClientURL %q, Client %v", s.ClientURL(), s.Client())
	}
	_ = store.Root
}
