package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/internal/poll"
)

// fedmeshBin is the binary TestMain built; proxyBin is the lean
// data-plane binary, fedmesh-proxy, which sidecars and gateways run.
var fedmeshBin, proxyBin string

var prebuilt = flag.String("fedmesh", "", "run this fedmesh binary instead of building one (and fedmesh-proxy from its directory, when there)")

var keepLogs = flag.Bool("keep-logs", false, "keep and print every test's log directory, even when it passes")

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if *prebuilt != "" {
		fedmeshBin, proxyBin = *prebuilt, *prebuilt
		if p := filepath.Join(filepath.Dir(*prebuilt), "fedmesh-proxy"); fileExists(p) {
			proxyBin = p
		}
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "fedmesh-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	fedmeshBin, proxyBin = filepath.Join(dir, "fedmesh"), filepath.Join(dir, "fedmesh-proxy")
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/fedmesh/fedmesh/cmd/fedmesh", "github.com/fedmesh/fedmesh/cmd/fedmesh-proxy")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building fedmesh:", err)
		return 1
	}
	return m.Run()
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// binaryFor is the binary that runs a command line: fedmesh-proxy for the
// sidecar and the gateway, as in the demo and in pods, fedmesh otherwise.
func binaryFor(args []string) string {
	if len(args) > 0 && (args[0] == "sidecar" || args[0] == "gateway") {
		return proxyBin
	}
	return fedmeshBin
}

// env is one test's set of processes and their logs.
type env struct {
	t      *testing.T
	logDir string

	mu    sync.Mutex // guards procs
	procs []*proc
}

// newEnv returns an environment whose processes are stopped at cleanup.
// When the test fails, the log directory is kept and its path printed.
func newEnv(t *testing.T) *env {
	t.Helper()
	logDir, err := os.MkdirTemp("", "fedmesh-e2e-logs-"+sanitize(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, logDir: logDir}
	t.Cleanup(func() {
		e.stopAll()
		if t.Failed() || *keepLogs {
			t.Logf("logs of every process are in %s", logDir)
			return
		}
		os.RemoveAll(logDir)
	})
	return e
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// proc is one running fedmesh process.
type proc struct {
	name string
	args []string
	// netns is the network namespace it runs in; empty for this one.
	netns string
	cmd   *exec.Cmd
	log   *os.File
	done  chan struct{}
	err   error // set when done is closed
}

// start runs fedmesh (or fedmesh-proxy, binaryFor) with args; its output goes to LOGDIR/NAME.log.
func (e *env) start(name string, args ...string) *proc {
	e.t.Helper()
	return e.startIn("", name, args...)
}

// startIn runs fedmesh with args in the network namespace netns (through
// `ip netns exec`, which execs, so the process is the binary itself), or in
// this one when netns is empty. A process of the same name appends to the
// same log.
func (e *env) startIn(netns, name string, args ...string) *proc {
	e.t.Helper()
	f, err := os.OpenFile(filepath.Join(e.logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	argv := append([]string{binaryFor(args)}, args...)
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	fmt.Fprintf(f, "=== %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		e.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, args: args, netns: netns, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

// stop sends SIGTERM and waits up to 15 s, then kills.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within 15s of SIGTERM", p.name)
	}
}

// restart starts an exited process again with the same arguments, in the
// same network namespace, logging to the same file.
func (e *env) restart(p *proc) *proc {
	e.t.Helper()
	if !p.exited() {
		e.t.Fatalf("restart %s: still running", p.name)
	}
	return e.startIn(p.netns, p.name, p.args...)
}

// kill ends the process at once, as a crash would.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (e *env) stopAll() {
	e.mu.Lock()
	procs := append([]*proc(nil), e.procs...)
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop()
		}()
	}
	wg.Wait()
}

// run runs fedmesh to completion and returns its stdout, stderr and exit
// code.
func (e *env) run(args ...string) (string, string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, fedmeshBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("fedmesh %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), code
}

// httpClient reads open pages: sidecars' and gateways' admin, and the
// control planes' /readyz and /metrics, which a control plane with a CA
// serves over TLS to anyone. Like kubelet probes it does not verify the
// server; the admin API itself is called with an operator (operatorClient).
var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
}}

// httpGet returns the status code and body of url.
func httpGet(url string) (int, string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func getJSON(url string, v any) error {
	code, body, err := httpGet(url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: %d %s", url, code, body)
	}
	return json.Unmarshal([]byte(body), v)
}

// waitReady waits until a control plane's /readyz answers 200.
func waitReady(t *testing.T, p *proc, admin string) {
	t.Helper()
	poll.Until(t, 60*time.Second, p.name+" ready", func() error {
		if p.exited() {
			t.Fatalf("%s exited: %v", p.name, p.err)
		}
		code, body, err := httpGet(admin + "/readyz?verbose")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%d: %s", code, body)
		}
		return nil
	})
}
