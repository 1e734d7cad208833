package inject

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/out from what injection makes now")

// TestGolden injects every testdata/in/NAME.yaml offline and compares the
// result with testdata/out/NAME.yaml: the diff in review shows exactly what
// a change does to injected pods (container arguments, iptables script).
// -update rewrites the expected files.
func TestGolden(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	in := testInjector(t)
	for _, path := range ins {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := in.InjectYAML(bytes.NewReader(src), &got); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join("testdata", "out", name)
			if *update {
				if err := os.WriteFile(out, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if d := cmp.Diff(string(want), got.String()); d != "" {
				t.Errorf("%s (-want +got):\n%s", out, d)
			}
		})
	}
}

// TestSidecarListeners checks what the golden files show, as properties:
// what only the app may use listens on loopback, the kubelet probes a port
// it can reach, and the capture rules let no other pod reach the outbound
// or admin port.
func TestSidecarListeners(t *testing.T) {
	in := testInjector(t)
	p := appPod(map[string]string{AnnotationExcludeInboundPorts: "22"})
	if _, err := in.Inject(&p.ObjectMeta, &p.Spec); err != nil {
		t.Fatal(err)
	}
	sc := p.Spec.InitContainers[1]
	if !slices.Equal(sc.Command, []string{ProxyCommand}) || sc.Args[0] != "sidecar" {
		t.Errorf("sidecar runs %q %q..., want %s sidecar", sc.Command, sc.Args[0], ProxyCommand)
	}
	args := map[string]string{}
	for _, a := range sc.Args {
		if k, v, ok := strings.Cut(a, "="); ok {
			args[k] = v
		}
	}
	for _, flag := range []string{"--outbound", "--admin"} {
		ap, err := netip.ParseAddrPort(args[flag])
		if err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("%s=%q, want a loopback address (%v)", flag, args[flag], err)
		}
	}
	for flag, want := range map[string]string{"--outbound": "15001", "--admin": "15000", "--inbound": "15006", "--ready": "15021"} {
		if !strings.HasSuffix(args[flag], ":"+want) {
			t.Errorf("%s=%q, want port %s", flag, args[flag], want)
		}
	}
	if got := sc.StartupProbe.HTTPGet.Port.IntValue(); got != DefaultReadyPort {
		t.Errorf("startup probe on port %d, want the ready port %d", got, DefaultReadyPort)
	}
	for _, cp := range sc.Ports {
		if cp.ContainerPort == DefaultOutboundPort || cp.ContainerPort == DefaultAdminPort {
			t.Errorf("container port %+v is on loopback, not reachable from outside the pod", cp)
		}
	}

	// The inbound chain lets through exactly the inbound, ready and
	// excluded ports; everything else from outside is redirected to the
	// inbound listener.
	var passed []string
	c, _, err := in.capture(&p.ObjectMeta)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Rules(IPv4) {
		if slices.Contains(r, chainInbound) && slices.Contains(r, "RETURN") {
			passed = append(passed, r[slices.Index(r, "--dport")+1])
		}
	}
	if d := cmp.Diff([]string{"15006", "15021", "22"}, passed); d != "" {
		t.Errorf("ports let through from outside the pod (-want +got):\n%s", d)
	}
}
