package netns

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fedmesh/fedmesh/controlplane/inject"
	"github.com/fedmesh/fedmesh/internal/demo"
	"github.com/fedmesh/fedmesh/internal/echo"
)

const (
	trustDomain = "fedmesh.local"
	cluster     = "east-1"
	echoURL     = "http://echo.demo.svc.clusterset.local:8080/"
	// clientID is the pod's identity: whoever gets a request through its
	// sidecar is presented with it.
	clientID = "spiffe://" + trustDomain + "/ns/demo/sa/client"
)

// TestOtherPodsCannotUseTheSidecar runs a pod (app and sidecar, started
// with the container arguments and iptables script that injection
// generates) and, in the peer namespace, a control plane, an echo server
// behind its sidecar, and an attacker: a process of another pod that tries
// the pod's outbound proxy (15001), to be presented to the echo server
// with the pod's identity, and its admin pages (15000).
//
// Four configurations, each checked from both sides:
//  1. injected arguments, no rules: the outbound and admin listeners are on
//     loopback, so the attacker's connections are refused;
//  2. the arguments injection made before (0.0.0.0), no rules: the
//     attacker's request is served with the pod's identity. This is the
//     open door of issue 14, reproduced, so the probes are known to see it;
//  3. the old arguments with the capture rules: the rules alone keep the
//     attacker off (its connections land on the inbound mTLS listener);
//  4. what injection makes now, arguments and rules together.
//
// In every one the pod's app still gets its requests served with its
// identity, through the proxy on 127.0.0.1:15001, and with the rules also
// by plain requests that the rules redirect to the sidecar.
func TestOtherPodsCannotUseTheSidecar(t *testing.T) {
	requireTools(t, "ip", "setpriv")
	haveIPTables := true
	if _, err := exec.LookPath("iptables"); err != nil {
		haveIPTables = false
	}
	bin := fedmeshBin(t)
	l := newLab(t)
	fm := fedmeshRunner(t, bin)

	// The cluster: CA, control plane, echo-1 and its sidecar, in the peer.
	cp := startLabCluster(t, l, bin, fm)
	xds := net.JoinHostPort(cpIP, "15010")
	echoDir := workloadDir(t, l, fm, "echo", "echo-1")
	l.start(t, l.peer, "echo-1-app", 0, bin, "echo", "--listen", net.JoinHostPort(serverIP, "8080"), "--cluster", cluster, "--workload", "echo-1")
	l.start(t, l.peer, "echo-1-sidecar", 0, bin, "sidecar", "--cluster", cluster, "--namespace", "demo", "--service-account", "echo",
		"--workload", "echo-1", "--address", serverIP, "--xds-address", xds, "--trust-domain", trustDomain,
		"--workload-dir", echoDir, "--dns", "none", "--service-ip", "none")

	// The pod, as injection makes it.
	script, args := injected(t, xds)
	clientDir := workloadDir(t, l, fm, "client", "client")
	for _, f := range []string{"token", "bundle.crt"} {
		if err := os.Chown(l.path("workloads", "client", f), proxyUID, proxyUID); err != nil {
			t.Fatal(err)
		}
	}
	args = append(args, "--token-file="+clientDir+"/token", "--root-bundle="+clientDir+"/bundle.crt")
	// What injection made before issue 14: every listener on 0.0.0.0.
	// (Without the IPv6 outbound listener, which 0.0.0.0, a dual-stack
	// wildcard, would clash with.)
	oldArgs := append(append([]string(nil), args...), "--outbound=0.0.0.0:15001", "--admin=0.0.0.0:15000", "--outbound-ipv6=")

	pod := podSidecar{l: l, bin: bin, deps: []*proc{cp}}
	podAddr := func(port string) string { return net.JoinHostPort(podIP, port) }
	attacker := func(t *testing.T, p probe) outcome { return mustProbe(t, l.peer, p) }
	app := func(t *testing.T, p probe) outcome { return mustProbe(t, l.pod, p) }

	// appServed: the app's request through its sidecar reaches echo-1
	// with the pod's identity.
	appServed := func(t *testing.T, how string, p probe) {
		t.Helper()
		o := app(t, p)
		if rep, ok := echoReply(o); !ok || rep.ClientID != clientID {
			t.Errorf("the app's request %s: %v, want an echo reply for %s", how, o, clientID)
		}
	}
	appChecks := func(t *testing.T) {
		t.Helper()
		appServed(t, "through its proxy", probe{URL: echoURL, Proxy: "127.0.0.1:15001"})
		if o := app(t, probe{URL: "http://127.0.0.1:15000/config_dump"}); o.Status != http.StatusOK {
			t.Errorf("the app's admin page: %v, want 200", o)
		}
	}
	// The attacker reaches the pod at all: the kubelet's probe port.
	attackerReachesPod := func(t *testing.T) {
		t.Helper()
		if o := attacker(t, probe{URL: "http://" + podAddr("15021") + "/ready"}); o.Status != http.StatusOK || o.Body != "ready\n" {
			t.Errorf("another pod's GET of the ready port: %v, want 200 ready", o)
		}
	}
	// attackerKeptOff: no request through the pod's proxy is served,
	// with its identity or at all, and no admin page is shown.
	attackerKeptOff := func(t *testing.T) {
		t.Helper()
		for _, p := range []probe{
			{URL: echoURL, Proxy: podAddr("15001")},
			{URL: "http://" + podAddr("15001") + "/"},
			{URL: echoURL, Via: podAddr("15001")},
		} {
			o := attacker(t, p)
			t.Logf("another pod's request %+v through the pod's sidecar: %v", p, o)
			if _, ok := echoReply(o); ok || strings.Contains(o.Body, clientID) || (o.Err == "" && o.Status < 400) {
				t.Errorf("another pod's request %+v through the pod's sidecar: %v, want no answer or an error status", p, o)
			}
		}
		for _, page := range []string{"/config_dump", "/endpoints", "/stats/prometheus", "/ready"} {
			o := attacker(t, probe{URL: "http://" + podAddr("15000") + page})
			t.Logf("another pod's GET of the admin page %s: %v", page, o)
			if o.Err == "" && o.Status < 400 {
				t.Errorf("another pod's GET of the admin page %s: %v, want no answer or an error status", page, o)
			}
		}
	}

	t.Run("loopback listeners", func(t *testing.T) {
		pod.run(t, args, false)
		appChecks(t)
		attackerReachesPod(t)
		for _, port := range []string{"15001", "15000"} {
			o := attacker(t, probe{Dial: podAddr(port)})
			if !strings.Contains(o.Err, "connection refused") {
				t.Errorf("another pod's connection to %s: %v, want connection refused", podAddr(port), o)
			}
		}
		attackerKeptOff(t)
	})
	if t.Failed() {
		return
	}

	t.Run("old listeners on 0.0.0.0 are the open door", func(t *testing.T) {
		pod.run(t, oldArgs, false)
		o := attacker(t, probe{URL: echoURL, Proxy: podAddr("15001")})
		if rep, ok := echoReply(o); !ok || rep.ClientID != clientID {
			t.Errorf("another pod's request through the old sidecar: %v, want it served as %s (the bug this test must see)", o, clientID)
		}
		if o := attacker(t, probe{URL: "http://" + podAddr("15000") + "/config_dump"}); o.Status != http.StatusOK {
			t.Errorf("another pod's GET of the old admin page: %v, want 200 (the bug this test must see)", o)
		}
	})

	if !haveIPTables {
		if os.Getenv("CI") == "true" {
			t.Fatal("iptables not found: scripts/test-deps.sh installs it")
		}
		t.Skip("skipping the capture rules: iptables not found (scripts/test-deps.sh installs it as root)")
	}
	l.sh("ip", "netns", "exec", l.pod, "sh", "-c", script)

	t.Run("capture rules alone, old listeners", func(t *testing.T) {
		pod.run(t, oldArgs, true)
		appChecks(t)
		attackerReachesPod(t)
		attackerKeptOff(t)
	})

	t.Run("as injected: loopback listeners and capture rules", func(t *testing.T) {
		pod.run(t, args, true)
		appChecks(t)
		// A plain request to the server's address, as an app that knows
		// nothing of the mesh makes it: the rules send it to the sidecar.
		appServed(t, "redirected by the rules", probe{URL: echoURL, Via: net.JoinHostPort(serverIP, "8080")})
		attackerReachesPod(t)
		attackerKeptOff(t)
	})
}

// podSidecar (re)starts the pod's sidecar, as uid 1337 in the pod.
type podSidecar struct {
	l    *lab
	bin  string
	deps []*proc // fail fast when one of these exits
	cur  *proc
}

// run stops the running sidecar, if any, starts one with args, and waits
// until the app gets a request served through it (captured: by a plain
// request that the rules redirect; else through the proxy).
func (s *podSidecar) run(t *testing.T, args []string, captured bool) {
	t.Helper()
	if s.cur != nil {
		s.cur.stop()
	}
	s.cur = s.l.start(t, s.l.pod, "client-sidecar", proxyUID, append([]string{s.bin}, args...)...)
	p := probe{URL: echoURL, Proxy: "127.0.0.1:15001"}
	if captured {
		p = probe{URL: echoURL, Via: net.JoinHostPort(serverIP, "8080")}
	}
	eventually(t, 60*time.Second, "the pod's sidecar serves the app", func() error {
		for _, d := range append([]*proc{s.cur}, s.deps...) {
			if d.exited() {
				t.Fatalf("%s exited: %v", d.name, d.err)
			}
		}
		o, err := probeIn(s.l.pod, p)
		if err != nil {
			return err
		}
		if rep, ok := echoReply(o); !ok || rep.ClientID != clientID {
			return fmt.Errorf("%v", o)
		}
		return nil
	})
}

// workloadDir writes a workload's bootstrap token and the federation
// bundle to LAB/workloads/WORKLOAD, readable by the sidecar's uid.
func workloadDir(t *testing.T, l *lab, fm func(...string) string, sa, workload string) string {
	t.Helper()
	dir := l.path("workloads", workload)
	fm("ca", "bootstrap-token", "--ca-dir", l.path("ca"), "--namespace", "demo", "--service-account", sa, "--workload", workload, "--out", dir)
	bundle, err := os.ReadFile(l.path("ca", "bundle.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/bundle.crt", bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{l.path("workloads"), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// injected injects a pod named client (service account client, in demo)
// and returns the init container's iptables script and the sidecar's
// arguments, with the pod's fields ($(POD_IP) and the like) filled in as
// the kubelet would.
func injected(t *testing.T, xds string) (script string, args []string) {
	t.Helper()
	in, err := inject.New(inject.Config{SidecarImage: "fedmesh:dev", InitImage: "fedmesh-init:dev",
		TrustDomain: trustDomain, Cluster: cluster, XDSAddress: xds})
	if err != nil {
		t.Fatal(err)
	}
	meta := metav1.ObjectMeta{Name: "client", Namespace: "demo"}
	spec := corev1.PodSpec{ServiceAccountName: "client", Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}
	if ok, err := in.Inject(&meta, &spec); !ok || err != nil {
		t.Fatalf("inject: %t, %v", ok, err)
	}
	var sidecar, initc *corev1.Container
	for i, c := range spec.InitContainers {
		switch c.Name {
		case inject.SidecarName:
			sidecar = &spec.InitContainers[i]
		case inject.InitName:
			initc = &spec.InitContainers[i]
		}
	}
	if sidecar == nil || initc == nil || len(initc.Command) != 3 {
		t.Fatalf("injected init containers: %+v", spec.InitContainers)
	}
	fields := map[string]string{"POD_NAME": meta.Name, "POD_NAMESPACE": meta.Namespace, "POD_IP": podIP, "SERVICE_ACCOUNT": spec.ServiceAccountName}
	ref := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	for _, a := range sidecar.Args {
		args = append(args, ref.ReplaceAllStringFunc(a, func(m string) string {
			v, ok := fields[m[2:len(m)-1]]
			if !ok {
				t.Fatalf("sidecar argument %q refers to an unknown field", a)
			}
			return v
		}))
	}
	return initc.Command[2], args
}

// mustProbe runs p in namespace ns and fails the test when the probe
// could not run.
func mustProbe(t *testing.T, ns string, p probe) outcome {
	t.Helper()
	o, err := probeIn(ns, p)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// echoReply reports whether o is an echo server's answer, and decodes it.
func echoReply(o outcome) (echo.Reply, bool) {
	var rep echo.Reply
	if o.Err != "" || o.Status != http.StatusOK || json.Unmarshal([]byte(o.Body), &rep) != nil || rep.Workload == "" {
		return echo.Reply{}, false
	}
	return rep, true
}

// fedmeshRunner returns a runner of the fedmesh binary bin that fails t
// when a command fails, and returns its output.
func fedmeshRunner(t *testing.T, bin string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("fedmesh %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
}

// startLabCluster makes the lab's cluster: its CA from a new root, a
// source with one echo replica at serverIP and the client at podIP, and
// its control plane in the peer namespace.
func startLabCluster(t *testing.T, l *lab, bin string, fm func(args ...string) string) *proc {
	t.Helper()
	fm("ca", "init", "--trust-domain", trustDomain, "--dir", l.path("root"))
	fm("ca", "issue-cluster", "--root-dir", l.path("root"), "--cluster", cluster, "--dir", l.path("ca"))
	src := demo.Source{Cluster: cluster, Index: 1, Zone: "a", ClientIP: podIP, Replicas: []demo.Replica{{N: 1, IP: serverIP}}}
	if err := demo.WriteSourceDir(l.path("source"), src); err != nil {
		t.Fatal(err)
	}
	return l.start(t, l.peer, "controlplane", 0, bin, "controlplane", "--cluster", cluster, "--region", "us-east", "--zone", "a",
		"--bind-address", cpIP, "--data-dir", l.path("data"), "--source", "file:"+l.path("source"),
		"--ca-dir", l.path("ca"), "--gossip-profile", "local")
}
