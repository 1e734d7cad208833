package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/poll"
)

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestControlPlaneServesSampleCluster runs `fedmesh controlplane` on the
// east-1 sample, checks readiness and the exports under their documented
// etcd keys, then adds a bad file: it is reported, the good state stays,
// and SIGTERM stops the process cleanly.
func TestControlPlaneServesSampleCluster(t *testing.T) {
	e := newEnv(t)
	src := copyDir(t, "../../examples/local/east-1")
	ip := fmt.Sprintf("127.%d.0.1", reserveBlock(t))
	admin := "http://" + ip + ":15014"
	cp := e.start("controlplane-east-1", "controlplane",
		"--cluster", "east-1", "--region", "us-east", "--zone", "a",
		"--bind-address", ip, "--data-dir", t.TempDir(),
		"--source", "file:"+src)
	waitReady(t, cp, admin)

	type exportsOut struct {
		Items []struct {
			Key string `json:"key"`
		} `json:"items"`
	}
	keys := func() ([]string, error) {
		out, stderr, code := e.run("debug", "exports", "--admin", admin, "-o", "json")
		if code != 0 {
			return nil, errors.New(stderr)
		}
		var page exportsOut
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			return nil, err
		}
		var ks []string
		for _, it := range page.Items {
			ks = append(ks, it.Key)
		}
		return ks, nil
	}
	got, err := keys()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "/fedmesh/v1/clusters/east-1/exports/demo/echo" {
		t.Fatalf("exports keys = %v, want the documented key of demo/echo", got)
	}

	if err := os.WriteFile(filepath.Join(src, "zz-bad.yaml"), []byte("kind: Service\napiVersion: v1\nmetadata: {name: x, namespace: demo}\nspec: {ports: [{port: 0}]}\n: :\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "bad file reported", func() error {
		var page struct {
			Problems []struct {
				File string `json:"file"`
			} `json:"problems"`
		}
		if err := getJSON(admin+"/debug/source", &page); err != nil {
			return err
		}
		for _, p := range page.Problems {
			if p.File == "zz-bad.yaml" {
				return nil
			}
		}
		return errors.New("not reported yet")
	})
	if got2, err := keys(); err != nil || strings.Join(got2, ",") != strings.Join(got, ",") {
		t.Fatalf("exports after a bad file = %v (%v), want %v kept", got2, err, got)
	}
	if code, _, _ := httpGet(admin + "/readyz"); code != 200 {
		t.Errorf("/readyz = %d after a bad file, want 200", code)
	}
	_, metrics, _ := httpGet(admin + "/metrics")
	if !strings.Contains(metrics, "fedmesh_source_rejected_total") {
		t.Errorf("/metrics lacks fedmesh_source_rejected_total")
	}

	if err := cp.stop(); err != nil {
		t.Errorf("control plane did not stop cleanly on SIGTERM: %v", err)
	}
}

func TestVersionAndUsageErrors(t *testing.T) {
	e := newEnv(t)
	out, _, code := e.run("version")
	if code != 0 || !strings.HasPrefix(out, "fedmesh ") || !strings.Contains(out, "go1.") {
		t.Errorf("fedmesh version = %d %q", code, out)
	}
	_, stderr, code := e.run("controlplane", "--no-such-flag")
	if code != 2 || !strings.Contains(stderr, "unknown flag") {
		t.Errorf("bad flag: exit %d, stderr %q; want 2 and the reason", code, stderr)
	}
	_, stderr, code = e.run("controlplane", "--cluster", "east-1", "--source", "nfs:/x", "--data-dir", t.TempDir())
	if code != 2 || !strings.Contains(stderr, "unknown kind") {
		t.Errorf("bad source: exit %d, stderr %q; want 2 and the reason", code, stderr)
	}
}
