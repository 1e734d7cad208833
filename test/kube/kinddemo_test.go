package kube

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// fakeTools are the commands scripts/kind-demo.sh runs, played by shell
// scripts that append what they were asked to $FAKE_LOG (one line per
// call: the command and its arguments) and keep the files the script
// pipes to `kubectl apply -f -` in $FAKE_STATE. kubectl also plays the
// clusters' echo replicas: `scale` sets a context's replicas, and a
// client's `exec ... curl URL` answers as the mesh would (the nearest
// cluster with replicas: east-1, then east-2, then west-1), and fails
// for a curl through a proxy (-x, --proxy): the demo's client must not
// need one.
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
	"kubectl": `ctx=$2
shift 2
case "$*" in
*" exec client "*)
	case "$*" in *" -x "* | *--proxy*) exit 7 ;; esac
	for c in east-1 east-2 west-1; do
		if [ "$(cat "$FAKE_STATE/replicas-$c" 2>/dev/null || echo 2)" != 0 ]; then
			printf '{"cluster":"%s","workload":"echo-1"}\n' "$c"
			exit 0
		fi
	done
	exit 22
	;;
*"scale deployment/echo --replicas="*)
	last=${!#}
	echo "${last#--replicas=}" >"$FAKE_STATE/replicas-${ctx#kind-fedmesh-}"
	;;
*"--dry-run=client -o yaml"*)
	echo "# fake: $*"
	;;
*"apply -f -"*)
	n=$(ls "$FAKE_STATE" | grep -c '^applied-' || true)
	cat >"$FAKE_STATE/applied-$n-${ctx#kind-fedmesh-}.yaml"
	;;
esac`,
}

// TestKindDemoScript runs scripts/kind-demo.sh as far as it goes without
// Docker and kind, with fakes of docker, kind, kubectl, curl and fedmesh
// on PATH (fakeTools), and checks what it asked them: the three clusters
// created from kind-configs/ and loaded with the images, fedmesh installed
// ('fedmesh install --root-dir' then the kind overlay) and joined through
// the API servers ('fedmesh join --from-context'), the four phases checked by a plain client calling the
// clusterset name with no proxy, the replicas scaled in the scenario's
// order, and the clusters deleted at the end. Every manifest the script
// applies from its own text is dry-run on the real API server.
func TestKindDemoScript(t *testing.T) {
	_, c := clusters(t)
	bin := t.TempDir()
	for name, body := range fakeTools {
		script := "#!/usr/bin/env bash\nset -eu\necho \"" + name + " $*\" >>\"$FAKE_LOG\"\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	state, logFile := t.TempDir(), filepath.Join(t.TempDir(), "calls.log")
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts", "kind-demo.sh"))
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FEDMESH_BIN="+filepath.Join(bin, "fedmesh"),
		"FAKE_LOG="+logFile, "FAKE_STATE="+state, "TMPDIR="+t.TempDir(), "KEEP=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kind-demo.sh: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "all phases passed") {
		t.Errorf("kind-demo.sh did not pass its phases:\n%s", stderr.String())
	}
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Split(strings.TrimSpace(string(raw)), "\n")
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
	if len(find(`^fedmesh ca init --trust-domain fedmesh\.demo --dir \S+/root$`)) != 1 {
		t.Errorf("want one federation root made with 'fedmesh ca init'")
	}
	for _, cl := range []string{"east-1", "east-2", "west-1"} {
		install := `^fedmesh install --context kind-fedmesh-` + cl + ` --cluster ` + cl + ` --region us-(east|west) --zone us-(east|west)-1[ac] ` +
			`--trust-domain fedmesh\.demo --gateway-address 198\.18\.0\.10:31443 --root-dir \S+/root --wait=false$`
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
	// The client: plain curl to the clusterset name, never a proxy.
	curls := find(` exec client `)
	if len(curls) < 4*20 {
		t.Errorf("%d client requests, want 20 per phase", len(curls))
	}
	for _, c := range curls {
		if !strings.HasSuffix(c, " curl -fsS --max-time 2 http://echo.demo.svc.clusterset.local:8080/") {
			t.Errorf("client request %q: want plain curl of http://echo.demo.svc.clusterset.local:8080/", c)
			break
		}
	}
	var scales []string
	for _, c := range find(` scale deployment/echo `) {
		f := strings.Fields(c)
		scales = append(scales, strings.TrimPrefix(f[2], "kind-fedmesh-")+"="+strings.TrimPrefix(f[len(f)-1], "--replicas="))
	}
	if d := cmp.Diff([]string{"east-1=0", "east-2=0", "east-1=2", "east-2=2"}, scales); d != "" {
		t.Errorf("scaling (-want +got):\n%s", d)
	}

	// What the script applies from its own text, dry-run for real.
	applied, err := filepath.Glob(filepath.Join(state, "applied-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApplier(c)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, f := range applied {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
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
	for _, k := range []string{"Namespace", "Deployment", "Service", "ServiceExport", "Pod"} {
		if !kinds[k] {
			t.Errorf("the script applied no %s", k)
		}
	}
}
