package netns

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var prebuilt = flag.String("fedmesh", "", "run this fedmesh binary instead of building one")

func TestMain(m *testing.M) {
	if probeMain() || upstreamMain() {
		os.Exit(0)
	}
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		// klog's flush daemon starts with the Kubernetes packages (of
		// inject) and never stops.
		if err := goleak.Find(goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1")); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Addresses of the lab, from 198.18.0.0/15 (RFC 2544): the pod, and the
// control plane and the server workload in the peer namespace.
const (
	podIP    = "198.19.14.2"
	cpIP     = "198.19.14.3"
	serverIP = "198.19.14.4"
)

// proxyUID is the uid the pod's sidecar runs as; the capture rules leave
// its own traffic alone (inject's default).
const proxyUID = 1337

// requireTools skips the test with the reason when this process cannot
// build the lab: not root, or a tool missing. Under CI=true, which runs as
// root with scripts/test-deps.sh done, it fails instead.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("network namespace tests need root; CI runs as root")
		}
		t.Skip("skipping: network namespaces and veth need root (run as root, as CI does)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if ci {
				t.Fatalf("%s not found: scripts/test-deps.sh installs it", tool)
			}
			t.Skipf("skipping: %s not found (scripts/test-deps.sh installs it as root)", tool)
		}
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		if ci {
			t.Fatalf("ip netns is unavailable: %v: %s", err, out)
		}
		t.Skipf("skipping: ip netns is unavailable: %v: %s", err, out)
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// fedmeshBin returns the fedmesh binary, building it on first use into a
// directory uid 1337 can read.
func fedmeshBin(t *testing.T) string {
	t.Helper()
	if *prebuilt != "" {
		return *prebuilt
	}
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "fedmesh-netns-bin-"); buildErr != nil {
			return
		}
		if buildErr = os.Chmod(binDir, 0o755); buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "fedmesh"), "github.com/fedmesh/fedmesh/cmd/fedmesh").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building fedmesh: %w: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "fedmesh")
}

// A lab is two network namespaces joined by a veth pair: the pod
// (eth0 podIP/24) and its peer (eth0 with cpIP/24 and serverIP/24). The
// names carry a random tag, so that two runs never meet; cleanup removes
// both namespaces (the veth goes with them) even when the test fails.
type lab struct {
	t         *testing.T
	id        string
	dir       string // readable by proxyUID
	pod, peer string // namespace names
	// namespaces are every namespace cleanup removes.
	namespaces []string

	mu    sync.Mutex // guards procs
	procs []*proc
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := newEmptyLab(t)
	l.pod, l.peer = l.addNamespace("pod"), l.addNamespace("peer")
	l.sh("ip", "-n", l.pod, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", l.peer)
	l.sh("ip", "-n", l.pod, "addr", "add", podIP+"/24", "dev", "eth0")
	l.sh("ip", "-n", l.peer, "addr", "add", cpIP+"/24", "dev", "eth0")
	l.sh("ip", "-n", l.peer, "addr", "add", serverIP+"/24", "dev", "eth0")
	l.sh("ip", "-n", l.pod, "link", "set", "eth0", "up")
	l.sh("ip", "-n", l.peer, "link", "set", "eth0", "up")
	return l
}

// newEmptyLab makes a lab's directory and cleanups, with no namespace
// yet (addNamespace).
func newEmptyLab(t *testing.T) *lab {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	l := &lab{t: t, id: hex.EncodeToString(b)}
	dir, err := os.MkdirTemp("", "fedmesh-netns-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l.dir = dir
	// Cleanups run last first: processes stop, then the namespaces go,
	// then the files (kept, with the logs, when the test failed).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("files and logs of every process are in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	t.Cleanup(l.destroy)
	t.Cleanup(l.stopAll)
	return l
}

// addNamespace makes the lab's namespace NAME (fmns-ID-NAME) with its
// loopback up, removed in cleanup, and returns its full name.
func (l *lab) addNamespace(name string) string {
	l.t.Helper()
	ns := "fmns-" + l.id + "-" + name
	l.sh("ip", "netns", "add", ns)
	l.namespaces = append(l.namespaces, ns)
	l.sh("ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// sh runs a command and fails the test when it fails.
func (l *lab) sh(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// destroy removes the lab's namespaces. Errors are logged, not fatal:
// cleanup goes on.
func (l *lab) destroy() {
	for _, ns := range l.namespaces {
		if exec.Command("ip", "netns", "pids", ns).Run() != nil {
			continue // never made
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Logf("cleanup: ip netns del %s: %v: %s", ns, err, out)
		}
	}
}

// path returns a path in the lab's directory.
func (l *lab) path(parts ...string) string {
	return filepath.Join(append([]string{l.dir}, parts...)...)
}

// proc is one child process of the lab.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set when done is closed
}

// start runs argv in namespace ns, failing t when it cannot; its output
// goes to NAME.log in the lab's directory. With uid non-zero it runs as
// that uid and gid (setpriv drops root after `ip netns exec` has entered
// the namespace; both exec, so the process is argv[0] itself).
func (l *lab) start(t *testing.T, ns, name string, uid int, argv ...string) *proc {
	t.Helper()
	logPath := l.path(name + ".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if uid != 0 {
		argv = append([]string{"setpriv", fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups", "--"}, argv...)
	}
	argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	fmt.Fprintf(f, "=== %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to 10 s, then kills.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stopAll stops every process and, when the test failed, logs the end of
// each one's log.
func (l *lab) stopAll() {
	l.mu.Lock()
	procs := append([]*proc(nil), l.procs...)
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop()
		}()
	}
	wg.Wait()
	if !l.t.Failed() {
		return
	}
	for _, p := range procs {
		b, _ := os.ReadFile(p.log)
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		l.t.Logf("--- end of %s (%v):\n%s", p.name, p.err, b)
	}
}

// eventually polls f every 200ms until it returns nil, and fails the test
// with f's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
