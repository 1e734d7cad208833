package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source/filesource"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/topology"
)

const echoYAML = `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: echo, namespace: demo, creationTimestamp: "2026-01-01T00:00:00Z"}
---
apiVersion: fedmesh.io/v1alpha1
kind: Workload
metadata: {name: echo-1, namespace: demo, labels: {app: echo}}
spec: {address: 127.0.1.1, ports: {http: 15006}, serviceAccount: echo}
`

// startServer runs a control plane on 127.0.0.1 with a file source over dir
// and returns it once it answers /readyz.
func startServer(t *testing.T, dir string) (*Server, string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := filesource.New(filesource.Config{Dir: dir, Cluster: "east-1", Region: "us-east", Zone: "a", Logger: log, Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{
		Cluster:      "east-1",
		Locality:     topology.Locality{Region: "us-east", Zone: "a"},
		BindAddress:  "127.0.0.1",
		AdminAddress: "127.0.0.1:0",
		DataDir:      t.TempDir(),
		Source:       src,
		Store:        store.Config{ListenClientURLs: []string{"http://127.0.0.1:0"}},
		Logger:       log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	var base string
	poll.Until(t, 30*time.Second, "control plane ready", func() error {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		if srv.AdminAddr() == "" {
			return errors.New("admin not listening")
		}
		base = "http://" + srv.AdminAddr()
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return errors.New(resp.Status)
		}
		return nil
	})
	return srv, base
}

func storedExports(t *testing.T, srv *Server) []catalog.Export {
	t.Helper()
	exports, _, err := srv.Store().ListExports(context.Background(), "east-1")
	if err != nil {
		t.Fatal(err)
	}
	return exports
}

func TestServerWritesExportsAndKeepsGoodStateOnBadFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "echo.yaml"), []byte(echoYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, base := startServer(t, dir)

	exports := storedExports(t, srv)
	if len(exports) != 1 || exports[0].Service.Key().String() != "demo/echo" || len(exports[0].Endpoints) != 1 {
		t.Fatalf("stored exports = %+v, want demo/echo with one endpoint", exports)
	}
	good := exports

	// The documented key, readable with any etcd client.
	resp, err := srv.Store().Client().Get(context.Background(), "/fedmesh/v1/clusters/east-1/exports/demo/echo")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get documented key: %v, %d kvs", err, len(resp.Kvs))
	}

	// A bad file is reported by name and reason; the stored exports stay.
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("apiVersion: v1\nkind: Service\nmetadata: {name: Bad_Name, namespace: demo}\nspec: {ports: [{port: 99999}]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "bad file reported on /debug/source", func() error {
		var raw struct {
			Problems []struct {
				File, Reason, Message string
			} `json:"problems"`
		}
		if err := getJSON(base+"/debug/source", &raw); err != nil {
			return err
		}
		for _, p := range raw.Problems {
			if p.File == "bad.yaml" {
				return nil
			}
		}
		return errors.New("bad.yaml not reported yet")
	})
	if diff := cmp.Diff(good, storedExports(t, srv)); diff != "" {
		t.Errorf("stored exports changed by a bad file (-want +got):\n%s", diff)
	}
	if code, _ := getStatus(base + "/readyz"); code != 200 {
		t.Errorf("/readyz = %d after a bad file, want 200 (the good state is served)", code)
	}

	// /debug/exports shows the keys.
	var ex exportsPage
	if err := getJSON(base+"/debug/exports", &ex); err != nil {
		t.Fatal(err)
	}
	if len(ex.Items) != 1 || ex.Items[0].Key != "/fedmesh/v1/clusters/east-1/exports/demo/echo" {
		t.Errorf("/debug/exports items = %+v", ex.Items)
	}

	// Removing the export's files removes the export.
	os.Remove(filepath.Join(dir, "echo.yaml"))
	poll.Until(t, 10*time.Second, "export removed from etcd", func() error {
		if n := len(storedExports(t, srv)); n != 0 {
			return errors.New("still stored")
		}
		return nil
	})
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConfigErrors(t *testing.T) {
	src, err := filesource.New(filesource.Config{Dir: t.TempDir(), Cluster: "east-1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "bad cluster", cfg: Config{Cluster: "East_1", Source: src, DataDir: "x"}, want: `cluster name "East_1"`},
		{name: "no source", cfg: Config{Cluster: "east-1", DataDir: "x"}, want: "no source"},
		{name: "no data dir", cfg: Config{Cluster: "east-1", Source: src}, want: "data dir is required"},
		{name: "bad bind address", cfg: Config{Cluster: "east-1", Source: src, DataDir: "x", BindAddress: "localhost"}, want: "not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func getStatus(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
