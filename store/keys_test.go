package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/store"
)

func TestKeyBuilders(t *testing.T) {
	echo := catalog.ServiceKey{Namespace: "demo", Name: "echo"}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"cluster prefix", store.ClusterPrefix("east-1"), "/fedmesh/v1/clusters/east-1/"},
		{"exports prefix", store.ExportsPrefix("east-1"), "/fedmesh/v1/clusters/east-1/exports/"},
		{"export", store.ExportKey("east-1", echo), "/fedmesh/v1/clusters/east-1/exports/demo/echo"},
		{"imports prefix", store.ImportsPrefix("east-1"), "/fedmesh/v1/clusters/east-1/imports/"},
		{"peer imports prefix", store.PeerImportsPrefix("east-1", "west-1"), "/fedmesh/v1/clusters/east-1/imports/west-1/"},
		{"import", store.ImportKey("east-1", "west-1", echo), "/fedmesh/v1/clusters/east-1/imports/west-1/demo/echo"},
		{"import generations prefix", store.ImportGenerationsPrefix("east-1"), "/fedmesh/v1/clusters/east-1/importgen/"},
		{"peer import generations prefix", store.PeerImportGenerationsPrefix("east-1", "west-1"), "/fedmesh/v1/clusters/east-1/importgen/west-1/"},
		{"import generation prefix", store.ImportGenerationPrefix("east-1", "west-1", 12), "/fedmesh/v1/clusters/east-1/importgen/west-1/12/"},
		{"import generation key", store.ImportGenerationKey("east-1", "west-1", 12, echo), "/fedmesh/v1/clusters/east-1/importgen/west-1/12/demo/echo"},
		{"import state prefix", store.ImportStatePrefix("east-1"), "/fedmesh/v1/clusters/east-1/importstate/"},
		{"import state", store.ImportStateKey("east-1", "west-1"), "/fedmesh/v1/clusters/east-1/importstate/west-1"},
		{"members prefix", store.MembersPrefix("east-1"), "/fedmesh/v1/clusters/east-1/members/"},
		{"member", store.MemberKey("east-1", "west-1"), "/fedmesh/v1/clusters/east-1/members/west-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, tc.got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	// Prefixes of one cluster never cover another's ("east-1" vs "east-10").
	if strings.HasPrefix(store.ExportKey("east-10", echo), store.ExportsPrefix("east-1")) {
		t.Errorf("exports prefix of east-1 covers east-10")
	}
}

func TestParseExportKey(t *testing.T) {
	for _, tc := range []struct {
		name        string
		key         string
		wantCluster string
		wantKey     catalog.ServiceKey
		wantErr     string
	}{
		{name: "ok", key: "/fedmesh/v1/clusters/east-1/exports/demo/echo", wantCluster: "east-1", wantKey: catalog.ServiceKey{Namespace: "demo", Name: "echo"}},
		{name: "other root", key: "/other/v1/clusters/east-1/exports/demo/echo", wantErr: "does not start with"},
		{name: "other version", key: "/fedmesh/v2/clusters/east-1/exports/demo/echo", wantErr: "does not start with"},
		{name: "import key", key: "/fedmesh/v1/clusters/east-1/imports/west-1/demo/echo", wantErr: "want 4 segments"},
		{name: "wrong kind", key: "/fedmesh/v1/clusters/east-1/members/demo/echo", wantErr: `kind "members" is not "exports"`},
		{name: "too short", key: "/fedmesh/v1/clusters/east-1/exports/demo", wantErr: "want 4 segments"},
		{name: "trailing slash", key: "/fedmesh/v1/clusters/east-1/exports/demo/echo/", wantErr: "want 4 segments"},
		{name: "empty cluster", key: "/fedmesh/v1/clusters//exports/demo/echo", wantErr: "cluster"},
		{name: "bad namespace", key: "/fedmesh/v1/clusters/east-1/exports/De mo/echo", wantErr: "namespace"},
		{name: "name starts with a digit", key: "/fedmesh/v1/clusters/east-1/exports/demo/1echo", wantErr: "name"},
		{name: "empty", key: "", wantErr: "does not start with"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster, key, err := store.ParseExportKey(tc.key)
			if tc.wantErr != "" {
				if !errors.Is(err, store.ErrBadKey) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseExportKey(%q) = %v, want ErrBadKey containing %q", tc.key, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.wantCluster, cluster); d != "" {
				t.Errorf("cluster (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantKey, key); d != "" {
				t.Errorf("key (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseOtherKeys(t *testing.T) {
	echo := catalog.ServiceKey{Namespace: "demo", Name: "echo"}
	c, p, k, err := store.ParseImportKey(store.ImportKey("east-1", "west-1", echo))
	if d := cmp.Diff([]any{"east-1", "west-1", echo, nil}, []any{c, p, k, err}); d != "" {
		t.Errorf("ParseImportKey (-want +got):\n%s", d)
	}
	c, p, g, k, err := store.ParseImportGenerationKey(store.ImportGenerationKey("east-1", "west-1", 7, echo))
	if d := cmp.Diff([]any{"east-1", "west-1", uint64(7), echo, nil}, []any{c, p, g, k, err}); d != "" {
		t.Errorf("ParseImportGenerationKey (-want +got):\n%s", d)
	}
	c, p, err = store.ParseImportStateKey(store.ImportStateKey("east-1", "west-1"))
	if d := cmp.Diff([]any{"east-1", "west-1", nil}, []any{c, p, err}); d != "" {
		t.Errorf("ParseImportStateKey (-want +got):\n%s", d)
	}
	c, p, err = store.ParseMemberKey(store.MemberKey("east-1", "west-1"))
	if d := cmp.Diff([]any{"east-1", "west-1", nil}, []any{c, p, err}); d != "" {
		t.Errorf("ParseMemberKey (-want +got):\n%s", d)
	}
	for _, tc := range []struct {
		name  string
		parse func() error
	}{
		{"import with bad peer", func() error {
			_, _, _, err := store.ParseImportKey("/fedmesh/v1/clusters/east-1/imports/West/demo/echo")
			return err
		}},
		{"generation zero", func() error {
			_, _, _, _, err := store.ParseImportGenerationKey("/fedmesh/v1/clusters/east-1/importgen/west-1/0/demo/echo")
			return err
		}},
		{"generation with a leading zero", func() error {
			_, _, _, _, err := store.ParseImportGenerationKey("/fedmesh/v1/clusters/east-1/importgen/west-1/07/demo/echo")
			return err
		}},
		{"generation not a number", func() error {
			_, _, _, _, err := store.ParseImportGenerationKey("/fedmesh/v1/clusters/east-1/importgen/west-1/demo/echo/x")
			return err
		}},
		{"generation of a legacy import key", func() error {
			_, _, _, _, err := store.ParseImportGenerationKey("/fedmesh/v1/clusters/east-1/imports/west-1/demo/echo")
			return err
		}},
		{"import state with sub-key", func() error {
			_, _, err := store.ParseImportStateKey("/fedmesh/v1/clusters/east-1/importstate/west-1/x")
			return err
		}},
		{"member with empty name", func() error {
			_, _, err := store.ParseMemberKey("/fedmesh/v1/clusters/east-1/members/")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.parse(); !errors.Is(err, store.ErrBadKey) {
				t.Errorf("got %v, want ErrBadKey", err)
			}
		})
	}
}

func TestDecodeExport(t *testing.T) {
	good := export("west-1", "demo", "echo", "127.0.3.2", "127.0.3.1")
	goodValue := mustEncode(t, good)
	key := store.ExportKey("west-1", good.Service.Key())
	for _, tc := range []struct {
		name    string
		key     string
		value   string
		wantErr error
	}{
		{"ok", key, goodValue, nil},
		{"not json", key, "{", store.ErrBadValue},
		{"invalid export", key, `{"service":{"namespace":"demo","name":"echo","cluster":"west-1"}}`, catalog.ErrInvalid},
		{"names another service", store.ExportKey("west-1", catalog.ServiceKey{Namespace: "demo", Name: "api"}), goodValue, store.ErrBadValue},
		{"names another cluster", store.ExportKey("east-9", good.Service.Key()), goodValue, store.ErrBadValue},
		{"oversized", key, `"` + strings.Repeat("x", store.MaxValueBytes) + `"`, store.ErrBadValue},
		{"bad key", "/fedmesh/v1/x", goodValue, store.ErrBadKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := store.DecodeExportKV(tc.key, []byte(tc.value))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("DecodeExportKV = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := good
			want.Sort()
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestEncodeExportIsCanonicalAndKeepsInput(t *testing.T) {
	a := export("east-1", "demo", "echo", "127.0.1.2", "127.0.1.1")
	b := export("east-1", "demo", "echo", "127.0.1.1", "127.0.1.2")
	if d := cmp.Diff(mustEncode(t, a), mustEncode(t, b)); d != "" {
		t.Errorf("equal exports in another order encode differently (-a +b):\n%s", d)
	}
	if a.Endpoints[0].Address != "127.0.1.2" {
		t.Errorf("EncodeExport sorted its input")
	}
}

func FuzzParseExportKey(f *testing.F) {
	for _, s := range []string{
		"/fedmesh/v1/clusters/east-1/exports/demo/echo",
		"/fedmesh/v1/clusters/east-1/exports/demo/echo/",
		"/fedmesh/v1/clusters//exports//",
		"/fedmesh/v1/clusters/east-1/imports/west-1/demo/echo",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		cluster, key, err := store.ParseExportKey(k)
		if err != nil {
			if !errors.Is(err, store.ErrBadKey) {
				t.Fatalf("error %v does not wrap ErrBadKey", err)
			}
			return
		}
		if back := store.ExportKey(cluster, key); back != k {
			t.Fatalf("ParseExportKey(%q) gives %q, %v, which builds %q", k, cluster, key, back)
		}
	})
}

func FuzzParseImportKey(f *testing.F) {
	for _, s := range []string{
		"/fedmesh/v1/clusters/east-1/imports/west-1/demo/echo",
		"/fedmesh/v1/clusters/east-1/imports/west-1/demo",
		"/fedmesh/v1/clusters/east-1/importstate/west-1",
		"/fedmesh/v1/clusters/east-1/members/west-1",
		"/fedmesh/v1/clusters/east-1/importgen/west-1/3/demo/echo",
		"/fedmesh/v1/clusters/east-1/importgen/west-1/+3/demo/echo",
		"/fedmesh/v1/clusters/east-1/importgen/west-1/18446744073709551616/demo/echo",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if cluster, peer, key, err := store.ParseImportKey(k); err == nil {
			if back := store.ImportKey(cluster, peer, key); back != k {
				t.Fatalf("ParseImportKey(%q) builds back %q", k, back)
			}
		} else if !errors.Is(err, store.ErrBadKey) {
			t.Fatalf("error %v does not wrap ErrBadKey", err)
		}
		if cluster, peer, err := store.ParseImportStateKey(k); err == nil {
			if back := store.ImportStateKey(cluster, peer); back != k {
				t.Fatalf("ParseImportStateKey(%q) builds back %q", k, back)
			}
		}
		if cluster, peer, gen, key, err := store.ParseImportGenerationKey(k); err == nil {
			if back := store.ImportGenerationKey(cluster, peer, gen, key); back != k {
				t.Fatalf("ParseImportGenerationKey(%q) builds back %q", k, back)
			}
		} else if !errors.Is(err, store.ErrBadKey) {
			t.Fatalf("error %v does not wrap ErrBadKey", err)
		}
		if cluster, m, err := store.ParseMemberKey(k); err == nil {
			if back := store.MemberKey(cluster, m); back != k {
				t.Fatalf("ParseMemberKey(%q) builds back %q", k, back)
			}
		}
	})
}

func FuzzDecodeExport(f *testing.F) {
	good := export("west-1", "demo", "echo", "127.0.3.1")
	v, err := store.EncodeExport(good)
	if err != nil {
		f.Fatal(err)
	}
	key := store.ExportKey("west-1", good.Service.Key())
	f.Add(key, v)
	f.Add(key, []byte("{}"))
	f.Add(key, []byte(`{"service":{"namespace":"demo","name":"echo","cluster":"west-1","type":"Headless","ports":[{"port":1}]},"endpoints":null}`))
	f.Add("/fedmesh/v1/clusters/west-1/exports/demo/api", v)
	f.Add(key, []byte(`{"service":{"namespace":"demo","name":"echo","cluster":"west-1","type":"ClusterSetIP","ports":[{"port":1}]},"endpoints":[],`+
		`"quotas":[{"quota":"demo/limits/shared","requests":600,"interval":60000000000,"admitted":10,"refused":2,"share":300}]}`))
	f.Fuzz(func(t *testing.T, k string, value []byte) {
		e, err := store.DecodeExportKV(k, value)
		if err != nil {
			if !errors.Is(err, store.ErrBadValue) && !errors.Is(err, store.ErrBadKey) {
				t.Fatalf("error %v wraps neither ErrBadValue nor ErrBadKey", err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded an invalid export: %v", err)
		}
		if store.ExportKey(e.Service.Cluster, e.Service.Key()) != k {
			t.Fatalf("decoded export %s of %s does not match key %q", e.Service.Key(), e.Service.Cluster, k)
		}
	})
}
