package kube

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// fakeTools are the commands scripts/kind-demo.sh runs besides kubectl,
// played by shell scripts that append what they were asked to $FAKE_LOG
// (one line per call: the command and its arguments). kubectl is
// testdata/kind-demo/kubectl: it records its calls too, keeps what the
// script applies in $FAKE_STATE, and plays the clusters' echo, echo-v2
// and the sidecars as the local demo's mesh answers (see its comment).
var fakeTools = map[string]string{
	"docker": `case "$1" in
inspect) echo 198.18.0.10 ;;
esac`,
	"kind": `case "$1 $2" in
"get clusters") cat "$FAKE_STATE/kind-clusters" 2>/dev/null || true ;;
"create cluster") sed -n 's/^name: *//p' "$4" >>"$FAKE_STATE/kind-clusters" ;;
esac`,
	"curl": `exit 0`,
	// fedmesh refuses what the demo must not need any more: the admin
	// API through a port-forward, with an operator certificate.
	"fedmesh": `case "$*" in
*--admin* | "token "* | "ca issue-"*) echo "fake fedmesh: not expected: $*" >&2; exit 2 ;;
esac`,
}

// kindDemoRun is one run of scripts/kind-demo.sh with the fakes.
type kindDemoRun struct {
	err    error
	stderr string
	calls  []string
	// state is the fakes' $FAKE_STATE: applied-NNN-CLUSTER.yaml holds
	// what the NNNth `kubectl apply` sent to CLUSTER.
	state string
}

// runKindDemo runs scripts/kind-demo.sh with the fakes on PATH and env
// added to its environment.
func runKindDemo(t *testing.T, env ...string) kindDemoRun {
	t.Helper()
	bin := t.TempDir()
	for name, body := range fakeTools {
		script := "#!/usr/bin/env bash\nset -eu\necho \"" + name + " $*\" >>\"$FAKE_LOG\"\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	kubectl, err := os.ReadFile(filepath.Join("testdata", "kind-demo", "kubectl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "kubectl"), kubectl, 0o755); err != nil {
		t.Fatal(err)
	}
	state, logFile := t.TempDir(), filepath.Join(t.TempDir(), "calls.log")
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts", "kind-demo.sh"))
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FEDMESH_BIN="+filepath.Join(bin, "fedmesh"),
		"FAKE_LOG="+logFile, "FAKE_STATE="+state, "TMPDIR="+t.TempDir(), "KEEP=0", "TRUST_DOMAIN=", "FAKE_BREAK=")
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r := kindDemoRun{err: cmd.Run(), stderr: stderr.String(), state: state}
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	r.calls = strings.Split(strings.TrimSpace(string(raw)), "\n")
	return r
}

var (
	callCluster = regexp.MustCompile(`^kubectl --context kind-fedmesh-(\S+) `)
	curlCount   = regexp.MustCompile(`\?n=\[1-(\d+)\]$`)
)

// clustersOf returns the clusters of kubectl calls.
func clustersOf(calls []string) []string {
	var out []string
	for _, c := range calls {
		if m := callCluster.FindStringSubmatch(c); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// events are the calls of the scenario's phases, from the first client
// request on, one line each: "CLUSTER curl n=N[ x-variant: b][ --rate
// R]" for the requests of CLUSTER's client, "east-1 GET /admin" for the
// policy probe, "CLUSTER audit log" for a look at CLUSTER's echo
// sidecars' logs, "CLUSTER scale echo=N", and "CLUSTER apply|delete
// FILE..." for the files applied or deleted. The quota parts run both
// clients at once: the calls of each pair of them are sorted.
func events(calls []string) []string {
	var out []string
	started := false
	for _, c := range calls {
		m := callCluster.FindStringSubmatch(c)
		if m == nil {
			continue
		}
		cl, f := m[1], strings.Fields(c)
		switch {
		case strings.Contains(c, " exec client "):
			started = true
			if strings.HasSuffix(c, ":8080/admin") {
				out = append(out, cl+" GET /admin")
				continue
			}
			e := cl + " curl n="
			if n := curlCount.FindStringSubmatch(c); n != nil {
				e += n[1]
			}
			if strings.Contains(c, " -H x-variant: b ") {
				e += " x-variant: b"
			}
			if i := slices.Index(f, "--rate"); i > 0 {
				e += " --rate " + f[i+1]
			}
			out = append(out, e)
		case !started:
		case strings.Contains(c, " logs "):
			out = append(out, cl+" audit log")
		case strings.Contains(c, " scale deployment/echo "):
			out = append(out, cl+" scale echo="+strings.TrimPrefix(f[len(f)-1], "--replicas="))
		case f[3] == "apply" || f[3] == "delete":
			e := cl + " " + f[3]
			for i := 4; i+1 < len(f); i += 2 {
				e += " " + filepath.Base(f[i+1])
			}
			out = append(out, e)
		}
	}
	// Sort the concurrent pairs: two --rate requests in a row, of two
	// clients, from the second pair on (the first is the quota's settling,
	// one client after the other).
	var pairs int
	for i := 0; i+1 < len(out); i++ {
		a, b := out[i], out[i+1]
		if strings.Contains(a, " --rate ") && strings.Contains(b, " --rate ") {
			if pairs++; pairs > 1 && a > b {
				out[i], out[i+1] = b, a
			}
			i++
		}
	}
	return out
}

// TestKindDemoScript runs scripts/kind-demo.sh as far as it goes without
// Docker and kind, with fakes of docker, kind, kubectl, curl and fedmesh
// on PATH, and checks what it asked them: the three clusters created from
// kind-configs/ and loaded with the images, fedmesh installed ('fedmesh
// install --root-dir' then the kind overlay) and joined through the API
// servers ('fedmesh join --from-context'), then every phase of the local
// demo in its order, with plain clients in east-1 and west-1 calling the
// clusterset name with no proxy: the failover phases (the replicas
// scaled, each phase's GET /admin denied and its audit record looked up
// in the serving cluster), the traffic phases (the local demo's traffic
// files applied to east-1 and replaced in turn, both clients' requests
// counted), the clusterset quota (applied in every cluster, each client
// busy in turn, removed), and the clusters deleted at the end. Every
// manifest the script applies is dry-run on the real API server, and the
// demo's policies are those of the local demo. Runs with a wrong answer
// of the fake mesh (a canary share, a denial in a cluster that does not
// serve, real errors among the injected faults, a quota that admits too
// much) must fail, naming the phase and what is wrong, and stop there.
func TestKindDemoScript(t *testing.T) {
	_, c := clusters(t)
	r := runKindDemo(t)
	if r.err != nil {
		t.Fatalf("kind-demo.sh: %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, "all phases passed") {
		t.Errorf("kind-demo.sh did not pass its phases:\n%s", r.stderr)
	}
	calls := r.calls
	find := func(re string) []string {
		var out []string
		r := regexp.MustCompile(re)
		for _, c := range calls {
			if r.MatchString(c) {
				out = append(out, c)
			}
		}
		return out
	}
	index := func(re string) int {
		r := regexp.MustCompile(re)
		return slices.IndexFunc(calls, r.MatchString)
	}
	if len(find(`^fedmesh ca init --trust-domain fedmesh\.local --dir \S+/root$`)) != 1 {
		t.Errorf("want one federation root made with 'fedmesh ca init', in the local demo's trust domain")
	}
	for _, cl := range []string{"east-1", "east-2", "west-1"} {
		install := `^fedmesh install --context kind-fedmesh-` + cl + ` --cluster ` + cl + ` --region us-(east|west) --zone us-(east|west)-1[ac] ` +
			`--trust-domain fedmesh\.local --gateway-address 198\.18\.0\.10:31443 --root-dir \S+/root --wait=false$`
		overlay := `^kubectl --context kind-fedmesh-` + cl + ` apply --server-side --force-conflicts -k \S+/deploy/overlays/kind$`
		for _, re := range []string{
			`^kind create cluster --config \S+/kind-configs/` + cl + `\.yaml`,
			`^kind load docker-image fedmesh:dev fedmesh-init:dev --name fedmesh-` + cl + `$`,
			install,
			overlay,
			`^kind delete cluster --name fedmesh-` + cl + `$`,
		} {
			if len(find(re)) != 1 {
				t.Errorf("want one call matching %s", re)
			}
		}
		// install applies the base with Force; the overlay after it wins.
		if i, o := index(install), index(overlay); i < 0 || o < i {
			t.Errorf("%s: fedmesh install is call %d, the kind overlay call %d: want install first", cl, i, o)
		}
	}
	// The Secrets are install's (from the root), the join goes through the
	// API servers: no Secret made by hand, no port-forward, no operator
	// certificate, no token through the admin API.
	for _, re := range []string{` create secret `, ` port-forward `, `^fedmesh ca issue-`, `^fedmesh token `, ` --admin `, `^openssl `} {
		if got := find(re); len(got) > 0 {
			t.Errorf("calls matching %s: %q, want none", re, got)
		}
	}
	if d := cmp.Diff([]string{
		"fedmesh join --context kind-fedmesh-east-2 --from-context kind-fedmesh-east-1 --wait 3m",
		"fedmesh join --context kind-fedmesh-west-1 --from-context kind-fedmesh-east-1 --wait 3m",
	}, find(`^fedmesh join `)); d != "" {
		t.Errorf("joins (-want +got):\n%s", d)
	}
	// The clients: plain curl to the clusterset name, never a proxy; the
	// answers' status, x-fedmesh-fault header and body, which the
	// fake mesh writes in this form.
	requests := regexp.MustCompile(`^kubectl --context kind-fedmesh-(east|west)-1 -n demo exec client -c curl -- curl -sS --max-time 2 ` +
		`(-H x-variant: b |--rate \d+/s )?-w \\n@@ %\{http_code\} fault=%header\{x-fedmesh-fault\}\\n http://echo\.demo\.svc\.clusterset\.local:8080/\?n=\[1-\d+\]$`)
	probe := `kubectl --context kind-fedmesh-east-1 -n demo exec client -c curl -- curl -sS -o /dev/null --max-time 2 -w %{http_code} http://echo.demo.svc.clusterset.local:8080/admin`
	for _, c := range find(` exec client `) {
		if !requests.MatchString(c) && c != probe {
			t.Errorf("client request %q: want plain curl of http://echo.demo.svc.clusterset.local:8080/", c)
			break
		}
	}
	// echo-v2 runs in west-1 only, the clients in east-1 and west-1.
	if d := cmp.Diff([]string{"west-1"}, clustersOf(find(` apply -f \S+/scripts/kind-demo/echo-v2\.yaml$`))); d != "" {
		t.Errorf("echo-v2 applied in (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"east-1", "west-1"}, clustersOf(find(` apply -f \S+/scripts/kind-demo/client\.yaml$`))); d != "" {
		t.Errorf("the clients applied in (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantKindEvents, events(calls)); d != "" {
		t.Errorf("the phases' calls (-want +got):\n%s", d)
	}

	// What the script applies, dry-run for real.
	applied, err := filepath.Glob(filepath.Join(r.state, "applied-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApplier(c)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	policies := map[string][]any{}
	for _, f := range applied {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cluster := strings.TrimSuffix(strings.SplitN(filepath.Base(f), "-", 3)[2], ".yaml")
		for _, doc := range strings.Split(string(data), "\n---\n") {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj == nil { // a fake `kubectl create --dry-run=client` output
				continue
			}
			u := &unstructured.Unstructured{Object: obj}
			kinds[u.GetKind()] = true
			if u.GetKind() == "AuthorizationPolicy" {
				policies[cluster] = append(policies[cluster], obj)
			}
			if u.GetKind() == "Namespace" {
				// Created for real: a dry run would leave nothing to
				// hold the namespaced objects that follow.
				if err := a.create(context.Background(), u, false); err != nil {
					t.Fatalf("namespace %s: %v", u.GetName(), err)
				}
				continue
			}
			dryRunApply(t, a, u)
		}
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "Deployment", "Service", "ServiceExport", "Pod",
		"AuthorizationPolicy", "ResiliencePolicy", "HTTPRoute", "FaultInjection", "RateLimitPolicy"} {
		if !kinds[k] {
			t.Errorf("the script applied no %s", k)
		}
	}
	// The local demo's policies (TestKindDemoManifests in internal/demo
	// keeps the file theirs), in every cluster, in its trust domain.
	authz, err := os.ReadFile(filepath.Join(repoRoot, "scripts", "kind-demo", "authz.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []any
	for _, doc := range strings.Split(string(authz), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		want = append(want, obj)
	}
	for _, cl := range []string{"east-1", "east-2", "west-1"} {
		if d := cmp.Diff(want, policies[cl]); d != "" {
			t.Errorf("%s: AuthorizationPolicies applied (-scripts/kind-demo/authz.yaml +applied):\n%s", cl, d)
		}
	}

	// A wrong answer fails its phase, and the script stops there.
	for _, tc := range []struct {
		brk, want, after string
	}{
		{"canary", "kind-demo: FAIL: phase 5 (canary 10% to echo-v2): east-1's client: echo-v2 answered 100 of 200, 50.0% (want 10% ± 8.5%)",
			"east-1 apply faults.yaml"},
		{"admin", "kind-demo: FAIL: phase 1 (steady): GET /admin was denied in east-2, want east-1 (the cluster that serves)",
			"east-1 scale echo=0"},
		// 503s without the x-fedmesh-fault header are real errors, not
		// aborts: the aborted share alone is right.
		{"faults", "kind-demo: FAIL: phase 6 (fault injection): east-1's client: real errors 23 of 200, 11.5% (want 0%)",
			"east-1 apply ab.yaml"},
		{"quota", "kind-demo: FAIL: phase 9 (quota: east-1's client busy): 129 admitted in 8s, more than 80",
			"east-1 delete quota.yaml"},
	} {
		t.Run("broken "+tc.brk, func(t *testing.T) {
			r := runKindDemo(t, "FAKE_BREAK="+tc.brk)
			if _, ok := r.err.(*exec.ExitError); !ok {
				t.Fatalf("kind-demo.sh with a broken %s: %v, want a non-zero exit\n%s", tc.brk, r.err, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want+"\n") {
				t.Errorf("kind-demo.sh with a broken %s: want %q in its output:\n%s", tc.brk, tc.want, r.stderr)
			}
			if strings.Contains(r.stderr, "all phases passed") || slices.Contains(events(r.calls), tc.after) {
				t.Errorf("kind-demo.sh with a broken %s went on after the failed phase:\n%s", tc.brk, r.stderr)
			}
			if n := len(slices.DeleteFunc(slices.Clone(r.calls), func(c string) bool { return !strings.HasPrefix(c, "kind delete cluster ") })); n != 3 {
				t.Errorf("kind-demo.sh with a broken %s deleted %d clusters, want 3", tc.brk, n)
			}
		})
	}
}

// wantKindEvents are the phases of the local demo as the kind demo runs
// them with the fake mesh, which answers every phase at once (a settle
// needs one round of 20 requests).
var wantKindEvents = func() []string {
	var ev []string
	add := func(e ...string) { ev = append(ev, e...) }
	failover := func(serving string) {
		add("east-1 curl n=20", "east-1 curl n=50", "east-1 GET /admin", serving+" audit log")
	}
	// 1. steady, 2. east-1's echo down, 3. east-2's too, 4. restored.
	failover("east-1")
	add("east-1 scale echo=0")
	failover("east-2")
	add("east-2 scale echo=0")
	failover("west-1")
	add("east-1 scale echo=2", "east-2 scale echo=2")
	failover("east-1")
	traffic := func(variant string) {
		add("east-1 curl n=20"+variant, "west-1 curl n=20"+variant)
		for _, c := range []string{"east-1", "west-1"} {
			add(c + " curl n=200" + variant)
			if variant != "" {
				add(c + " curl n=200")
			}
		}
	}
	// 5. canary, 6. faults, 7. a/b, 8. routes removed.
	add("east-1 apply resilience.yaml canary.yaml")
	traffic("")
	add("east-1 delete canary.yaml", "east-1 apply faults.yaml")
	traffic("")
	add("east-1 delete faults.yaml", "east-1 apply ab.yaml")
	traffic(" x-variant: b")
	add("east-1 GET /admin", "east-1 audit log")
	add("east-1 delete ab.yaml resilience.yaml")
	traffic(" x-variant: b")
	add("east-1 GET /admin", "east-1 audit log")
	// 9. the clusterset quota of 8 requests/s: each client busy in turn
	// (16/s) while the other asks 2/s, 6s to settle, 8s measured.
	add("east-1 apply quota.yaml", "east-2 apply quota.yaml", "west-1 apply quota.yaml")
	add("east-1 curl n=20 --rate 16/s", "west-1 curl n=20 --rate 16/s")
	for _, busy := range []string{"east-1", "west-1"} {
		for _, secs := range []int{6, 8} {
			var pair []string
			for _, c := range []string{"east-1", "west-1"} {
				rate := 2
				if c == busy {
					rate = 16
				}
				pair = append(pair, c+" curl n="+strconv.Itoa(rate*secs)+" --rate "+strconv.Itoa(rate)+"/s")
			}
			sort.Strings(pair)
			add(pair...)
		}
	}
	add("east-1 delete quota.yaml", "east-2 delete quota.yaml", "west-1 delete quota.yaml")
	return ev
}()
