package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/federation"
	"github.com/fedmesh/fedmesh/internal/demo"
)

// demoBase is the --base-address of a demo in the loopback block b
// (reserveBlock): clusters on 127.b.0.11-13, workloads on 127.b.1-3.0/24.
func demoBase(b int) string { return fmt.Sprintf("127.%d.0.11", b) }

// TestDemoAddressInUse starts `fedmesh demo` where something already
// listens on its first control plane's admin address, as a demo already
// running there would: the demo fails at once, names the address, and
// neither connects to the occupant nor starts a process of its own.
func TestDemoAddressInUse(t *testing.T) {
	e := newEnv(t)
	base := demoBase(reserveBlock(t))
	occupied := net.JoinHostPort(base, "15014")
	l, err := net.Listen("tcp", occupied)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	defer func() { l.Close(); <-done }()

	dir := filepath.Join(e.logDir, "demo")
	stdout, stderr, code := e.run("demo", "--base-address", base, "--dir", dir)
	if code == 0 {
		t.Fatalf("demo beside a listener on %s exited 0:\n%s\n%s", occupied, stdout, stderr)
	}
	if !strings.Contains(stderr, occupied+"/tcp (control plane east-1 admin)") || !strings.Contains(stderr, "address in use") {
		t.Errorf("stderr does not name %s in use:\n%s", occupied, stderr)
	}
	if strings.Contains(stdout, "federated") {
		t.Errorf("the demo reported a federation:\n%s", stdout)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the demo connected %d times to the listener it does not own", n)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	if len(logs) != 0 {
		t.Errorf("the demo started processes: %v", logs)
	}
}

// TestDemoChildExits starts `fedmesh demo` in a directory where one
// control plane cannot create its data directory: that child exits at
// once, and the demo stops everything, shows the child's last log lines
// with the cause and exits non-zero without reporting a federation.
func TestDemoChildExits(t *testing.T) {
	e := newEnv(t)
	block := reserveBlock(t)
	base := demoBase(block)
	dir := filepath.Join(e.logDir, "demo")
	// east-2's data directory is a file.
	if err := os.MkdirAll(filepath.Join(dir, "east-2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "east-2", "data"), []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := e.run("demo", "--base-address", base, "--dir", dir)
	if code == 0 {
		t.Fatalf("demo with a failing control plane exited 0:\n%s\n%s", stdout, stderr)
	}
	if !strings.Contains(stderr, "controlplane-east-2 exited unexpectedly (exit status") {
		t.Errorf("stderr does not name the control plane that exited:\n%s", stderr)
	}
	if !strings.Contains(stdout, "controlplane-east-2 exited before the demo stopped it; its last log lines") ||
		!strings.Contains(stdout, filepath.Join(dir, "east-2", "data")) {
		t.Errorf("stdout does not show the control plane's last log lines with the data directory:\n%s", stdout)
	}
	if strings.Contains(stdout, "federated") {
		t.Errorf("the demo reported a federation:\n%s", stdout)
	}
	// Everything was stopped: east-1's and west-1's control planes no
	// longer hold their admin addresses.
	for _, host := range []string{base, fmt.Sprintf("127.%d.0.13", block)} {
		addr := net.JoinHostPort(host, "15014")
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still taken after the demo ended: %v", addr, err)
			continue
		}
		l.Close()
	}
}

// TestDemoTwice runs two whole demos on one machine: while the first
// (its scenario over, every process still running) waits, the second runs
// its scenario on another base address and passes; the first's
// federation saw nothing of it: the same three members on its own
// addresses, alive, connected and trusted, no stranger among its gossip
// members, the same view.
func TestDemoTwice(t *testing.T) {
	e := newEnv(t)
	baseA := netip.MustParseAddr(demoBase(reserveBlock(t)))
	baseB := netip.MustParseAddr(demoBase(reserveBlock(t)))
	dirA, dirB := filepath.Join(e.logDir, "first"), filepath.Join(e.logDir, "second")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	tm := demoTestTimings

	var (
		outA, outB    = &syncBuffer{}, &syncBuffer{}
		sumB          *demo.Summary
		errB          error
		before, after federation.Status
		viewBefore    catalog.View
		viewAfter     catalog.View
		errBefore     error
		errAfter      error
		clustersA     []demo.Cluster
	)
	inspect := func(clusters []demo.Cluster) {
		clustersA = clusters
		op := operatorClient(t, filepath.Join(dirA, "operator"))
		errBefore = errors.Join(op.Get(clusters[0].Admin(), federation.StatusPath, &before), op.Get(clusters[0].Admin(), federation.ViewPath, &viewBefore))
		sumB, errB = demo.Run(ctx, demo.Config{Binary: fedmeshBin, Dir: dirB, Clusters: 3, BaseAddress: baseB, Out: outB, Timings: &tm})
		errAfter = errors.Join(op.Get(clusters[0].Admin(), federation.StatusPath, &after), op.Get(clusters[0].Admin(), federation.ViewPath, &viewAfter))
	}
	sumA, errA := demo.Run(ctx, demo.Config{Binary: fedmeshBin, Dir: dirA, Clusters: 3, BaseAddress: baseA, Out: outA, Timings: &tm, Inspect: inspect})
	if errA != nil || !sumA.OK {
		t.Fatalf("first demo: %v %s\n%s", errA, sumA.Reason, outA)
	}
	if errB != nil || sumB == nil || !sumB.OK {
		reason := ""
		if sumB != nil {
			reason = sumB.Reason
		}
		t.Fatalf("second demo, beside the first: %v %s\n%s", errB, reason, outB)
	}
	for i, c := range sumB.Clusters {
		if c.IP == clustersA[i].IP {
			t.Errorf("both demos ran %s on %s", c.Name, c.IP)
		}
	}
	if errBefore != nil || errAfter != nil {
		t.Fatalf("first demo's status: %v, %v", errBefore, errAfter)
	}
	own := map[string]bool{}
	for _, c := range clustersA {
		own[c.IP] = true
	}
	if len(after.Members) != 3 || len(after.Untrusted) != 0 || len(after.Fenced) != 0 {
		t.Errorf("first demo after the second: members %+v, untrusted %+v, fenced %+v; want its three clusters alone",
			after.Members, after.Untrusted, after.Fenced)
	}
	for _, m := range after.Members {
		if m.Local {
			continue
		}
		u, err := url.Parse(m.CatalogAddress)
		if err != nil || !own[u.Hostname()] || m.State != "alive" || !m.Connected || m.Fenced {
			t.Errorf("first demo's member %s after the second: %s, catalog %s, connected %v, fenced %v", m.Name, m.State, m.CatalogAddress, m.Connected, m.Fenced)
		}
	}
	// The same services, exports and endpoints. The quota records on them
	// change on their own while the first demo's quota demand decays
	// after its quota phase, so they are left out of the comparison.
	if a, b := withoutQuotas(viewBefore), withoutQuotas(viewAfter); !reflect.DeepEqual(a, b) {
		t.Errorf("first demo's services changed while the second ran:\nbefore %+v\nafter  %+v", a, b)
	}
}

// withoutQuotas returns v's services without their quota records.
func withoutQuotas(v catalog.View) []catalog.ImportedService {
	out := slices.Clone(v.Services)
	for i := range out {
		out[i].Quotas = nil
	}
	return out
}
