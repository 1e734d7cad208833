package inject

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"
)

const manifests = `# the app
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
  namespace: demo
spec:
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      containers:
        - name: app
          image: echo:1
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  ports: [{port: 8080}]   # kept as written
---
# only a comment
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
  annotations: {fedmesh.io/inject: "false"}
spec:
  containers: [{name: sh, image: busybox}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: report, image: report:1}]
`

func TestInjectYAML(t *testing.T) {
	in := testInjector(t)
	var out bytes.Buffer
	n, err := in.InjectYAML(strings.NewReader(manifests), &out)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("injected %d pods, want 2 (the Deployment and the CronJob)", n)
	}
	docs := strings.Split(out.String(), "---\n")
	if len(docs) != 4 {
		t.Fatalf("%d documents out, want 4:\n%s", len(docs), out.String())
	}
	var dep appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &dep); err != nil {
		t.Fatalf("deployment: %v\n%s", err, docs[0])
	}
	if d := cmp.Diff([]string{InitName, SidecarName}, names(dep.Spec.Template.Spec.InitContainers)); d != "" {
		t.Errorf("deployment init containers (-want +got):\n%s", d)
	}
	if dep.Spec.Template.Annotations[AnnotationInjected] != "true" || dep.Spec.Template.Labels["app"] != "echo" {
		t.Errorf("template metadata %+v", dep.Spec.Template.ObjectMeta)
	}
	// Untouched documents are copied byte for byte, comments included.
	if !strings.Contains(docs[1], "# kept as written") || !strings.Contains(docs[2], `fedmesh.io/inject: "false"`) {
		t.Errorf("untouched documents changed:\n%s---\n%s", docs[1], docs[2])
	}
	var cj batchv1.CronJob
	if err := yaml.UnmarshalStrict([]byte(docs[3]), &cj); err != nil {
		t.Fatalf("cronjob: %v", err)
	}
	if got := names(cj.Spec.JobTemplate.Spec.Template.Spec.InitContainers); len(got) != 2 {
		t.Errorf("cronjob init containers %v", got)
	}

	// Injecting the output again changes nothing.
	var again bytes.Buffer
	n, err = in.InjectYAML(bytes.NewReader(out.Bytes()), &again)
	if err != nil || n != 0 {
		t.Fatalf("second pass: %d injected, %v", n, err)
	}
	if d := cmp.Diff(out.String(), again.String()); d != "" {
		t.Errorf("second pass changed the output (-first +second):\n%s", d)
	}
}

func TestInjectYAMLErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "not yaml", in: "kind: [", want: "document 1"},
		{name: "no kind", in: "apiVersion: v1\n", want: "no kind"},
		{name: "scalar", in: "just text\n", want: "not an object"},
		{name: "no template", in: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n", want: "Deployment has no spec.template"},
		{name: "typo in pod spec", in: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containerz: []}\n", want: "containerz"},
		{name: "second document bad", in: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\nkind: Pod\nspec: 3\n", want: "document 2"},
	}
	in := testInjector(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := in.InjectYAML(strings.NewReader(tc.in), &bytes.Buffer{})
			if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrBadManifest mentioning %q", err, tc.want)
			}
		})
	}
}

func FuzzInjectYAML(f *testing.F) {
	f.Add(manifests)
	f.Add("kind: Pod\nspec: {containers: [{name: a}]}\n")
	f.Add("kind: CronJob\nspec: {jobTemplate: {spec: {template: 1}}}\n")
	f.Add("---\n---\n")
	in := testInjector(f)
	f.Fuzz(func(t *testing.T, s string) {
		var out bytes.Buffer
		n, err := in.InjectYAML(strings.NewReader(s), &out)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("error %v does not wrap ErrBadManifest", err)
			}
			return
		}
		// The output is valid input and already injected.
		var again bytes.Buffer
		m, err := in.InjectYAML(bytes.NewReader(out.Bytes()), &again)
		if err != nil || m != 0 {
			t.Fatalf("output of %d injections re-read: %d injected, %v\n%s", n, m, err, out.String())
		}
	})
}
