package kube

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	"fedmesh": `case "$1 $2" in
"token create") echo fake-join-token ;;
"join --token-file") cat >/dev/null ;;
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
// and joined, the four phases checked by a plain client calling the
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
	for _, cl := range []string{"east-1", "east-2", "west-1"} {
		for _, re := range []string{
			`^kind create cluster --config \S+/kind-configs/` + cl + `\.yaml`,
			`^kind load docker-image fedmesh:dev fedmesh-init:dev --name fedmesh-` + cl + `$`,
			`^kubectl --context kind-fedmesh-` + cl + ` apply --server-side -k \S+/deploy/overlays/kind$`,
			`^kind delete cluster --name fedmesh-` + cl + `$`,
		} {
			if len(find(re)) != 1 {
				t.Errorf("want one call matching %s", re)
			}
		}
	}
	if got := find(`^fedmesh join --token-file - --admin https://127\.0\.0\.1:\d+$`); len(got) != 2 {
		t.Errorf("joins: %q, want east-2 and west-1 joining", got)
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
