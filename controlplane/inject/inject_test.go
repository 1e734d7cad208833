package inject

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func testInjector(t testing.TB) *Injector {
	t.Helper()
	in, err := New(Config{SidecarImage: "fedmesh:dev", InitImage: "fedmesh-init:dev", TrustDomain: "fedmesh.example", Cluster: "east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func appPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Namespace: "demo", Annotations: annotations},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "migrate:1"}},
			Containers:     []corev1.Container{{Name: "app", Image: "echo:1"}},
			Volumes:        []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestInject(t *testing.T) {
	tests := []struct {
		name      string
		pod       func() *corev1.Pod
		want      bool
		wantErr   error
		wantInits []string
	}{
		{name: "plain pod", pod: func() *corev1.Pod { return appPod(nil) }, want: true, wantInits: []string{InitName, SidecarName, "migrate"}},
		{name: "opted out", pod: func() *corev1.Pod { return appPod(map[string]string{AnnotationInject: "false"}) }, wantInits: []string{"migrate"}},
		{name: "already injected", pod: func() *corev1.Pod { return appPod(map[string]string{AnnotationInjected: "true"}) }, wantInits: []string{"migrate"}},
		{name: "host network", pod: func() *corev1.Pod { p := appPod(nil); p.Spec.HostNetwork = true; return p }, wantInits: []string{"migrate"}},
		{
			name: "name clash", pod: func() *corev1.Pod {
				p := appPod(nil)
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: SidecarName})
				return p
			},
			wantErr: ErrConflict, wantInits: []string{"migrate"},
		},
		{name: "bad exclude annotation", pod: func() *corev1.Pod { return appPod(map[string]string{AnnotationExcludeInboundPorts: "22,http"}) }, wantErr: ErrBadAnnotation, wantInits: []string{"migrate"}},
		{name: "excluding the outbound port", pod: func() *corev1.Pod { return appPod(map[string]string{AnnotationExcludeInboundPorts: "22,15001"}) }, wantErr: ErrBadAnnotation, wantInits: []string{"migrate"}},
		{name: "excluding the admin port", pod: func() *corev1.Pod { return appPod(map[string]string{AnnotationExcludeInboundPorts: "15000"}) }, wantErr: ErrBadAnnotation, wantInits: []string{"migrate"}},
	}
	in := testInjector(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.pod()
			got, err := in.Inject(&p.ObjectMeta, &p.Spec)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("injected = %t, want %t", got, tc.want)
			}
			if d := cmp.Diff(tc.wantInits, names(p.Spec.InitContainers)); d != "" {
				t.Errorf("init containers (-want +got):\n%s", d)
			}
			if !got {
				return
			}
			if p.Annotations[AnnotationInjected] != "true" {
				t.Errorf("annotations %v", p.Annotations)
			}
			if d := cmp.Diff([]string{"data", TokenVolumeName, RootsVolumeName, StateVolumeName}, volumeNames(p.Spec.Volumes)); d != "" {
				t.Errorf("volumes (-want +got):\n%s", d)
			}
			tok := p.Spec.Volumes[1].Projected.Sources[0].ServiceAccountToken
			if tok.Audience != "fedmesh" || *tok.ExpirationSeconds != 3600 {
				t.Errorf("token projection %+v", tok)
			}
			sc := p.Spec.InitContainers[1]
			if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways || *sc.SecurityContext.RunAsUser != 1337 {
				t.Errorf("sidecar is not a native sidecar running as 1337: %+v", sc)
			}
			// Injecting again changes nothing.
			before := p.DeepCopy()
			if again, err := in.Inject(&p.ObjectMeta, &p.Spec); again || err != nil {
				t.Errorf("second injection: %t, %v", again, err)
			}
			if d := cmp.Diff(before, p); d != "" {
				t.Errorf("second injection changed the pod:\n%s", d)
			}
		})
	}
}

func volumeNames(vs []corev1.Volume) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		name, in string
		want     []int32
		wantErr  bool
	}{
		{name: "empty", in: ""},
		{name: "sorted and deduplicated", in: " 9090, 22,22", want: []int32{22, 9090}},
		{name: "zero", in: "0", wantErr: true},
		{name: "too big", in: "65536", wantErr: true},
		{name: "name", in: "http", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePorts(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no images", cfg: Config{TrustDomain: "td"}},
		{name: "no trust domain", cfg: Config{SidecarImage: "a", InitImage: "b", Cluster: "c"}},
		{name: "no cluster", cfg: Config{SidecarImage: "a", InitImage: "b", TrustDomain: "td"}},
		{name: "bad xds", cfg: Config{SidecarImage: "a", InitImage: "b", TrustDomain: "td", Cluster: "c", XDSAddress: "nohost"}},
		{name: "same ports", cfg: Config{SidecarImage: "a", InitImage: "b", TrustDomain: "td", Cluster: "c", InboundPort: 15001}},
		{name: "ready port is the admin port", cfg: Config{SidecarImage: "a", InitImage: "b", TrustDomain: "td", Cluster: "c", ReadyPort: 15000}},
		{name: "short token", cfg: Config{SidecarImage: "a", InitImage: "b", TrustDomain: "td", Cluster: "c", TokenExpiration: 60}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); !errors.Is(err, ErrConfig) {
				t.Errorf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func review(t testing.TB, op admissionv1.Operation, kind string, obj any) []byte {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("uid-1"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: kind},
			Namespace: "demo", Operation: op, Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWebhook posts AdmissionReviews over real HTTP and applies the
// returned JSON patch to the original pod: the result must be what Inject
// makes of it.
func TestWebhook(t *testing.T) {
	in := testInjector(t)
	reg := prometheus.NewRegistry()
	wh, err := NewWebhook(in, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(wh)
	defer srv.Close()
	post := func(body []byte) (int, []byte) {
		resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	t.Run("pod is patched", func(t *testing.T) {
		pod := appPod(map[string]string{"team": "a"})
		// A probe, which injection rewrites in the app container: the
		// patch carries the containers too.
		pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}}
		code, body := post(review(t, admissionv1.Create, "Pod", pod))
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var rv admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &rv); err != nil {
			t.Fatal(err)
		}
		if rv.Response.UID != "uid-1" || !rv.Response.Allowed || rv.Response.PatchType == nil {
			t.Fatalf("response %+v", rv.Response)
		}
		orig, _ := json.Marshal(pod)
		patch, err := jsonpatch.DecodePatch(rv.Response.Patch)
		if err != nil {
			t.Fatal(err)
		}
		patched, err := patch.Apply(orig)
		if err != nil {
			t.Fatal(err)
		}
		var got corev1.Pod
		if err := json.Unmarshal(patched, &got); err != nil {
			t.Fatal(err)
		}
		want := pod.DeepCopy()
		if _, err := in.Inject(&want.ObjectMeta, &want.Spec); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, &got); d != "" {
			t.Errorf("patched pod (-want +got):\n%s", d)
		}
	})

	t.Run("answers", func(t *testing.T) {
		clash := appPod(nil)
		clash.Spec.Containers = append(clash.Spec.Containers, corev1.Container{Name: InitName})
		tests := []struct {
			name      string
			body      []byte
			wantCode  int
			wantAllow bool
			wantPatch bool
		}{
			{name: "opted out", body: review(t, admissionv1.Create, "Pod", appPod(map[string]string{AnnotationInject: "false"})), wantCode: 200, wantAllow: true},
			{name: "update", body: review(t, admissionv1.Update, "Pod", appPod(nil)), wantCode: 200, wantAllow: true},
			{name: "name clash denied", body: review(t, admissionv1.Create, "Pod", clash), wantCode: 200},
			{name: "not a pod", body: review(t, admissionv1.Create, "Service", corev1.Service{}), wantCode: 400},
			{name: "garbage", body: []byte("{nope"), wantCode: 400},
			{name: "no request", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), wantCode: 400},
			{name: "v1beta1", body: []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`), wantCode: 400},
			{name: "too large", body: bytes.Repeat([]byte(" "), MaxReviewBytes+1), wantCode: 413},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, body := post(tc.body)
				if code != tc.wantCode {
					t.Fatalf("status %d, want %d: %s", code, tc.wantCode, body)
				}
				if code != 200 {
					if len(strings.TrimSpace(string(body))) == 0 {
						t.Error("refusal without a message")
					}
					return
				}
				var rv admissionv1.AdmissionReview
				if err := json.Unmarshal(body, &rv); err != nil {
					t.Fatal(err)
				}
				if rv.Response.Allowed != tc.wantAllow || (rv.Response.Patch != nil) != tc.wantPatch {
					t.Errorf("allowed %t patch %q", rv.Response.Allowed, rv.Response.Patch)
				}
				if !tc.wantAllow && !strings.Contains(rv.Response.Result.Message, "fedmesh cannot inject") {
					t.Errorf("denial message %q", rv.Response.Result.Message)
				}
			})
		}
	})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			counts[m.Label[0].GetValue()] = m.Counter.GetValue()
		}
	}
	want := map[string]float64{ResultInjected: 1, ResultSkipped: 2, ResultDenied: 1, ReasonNotPod: 1, ReasonBadReview: 3, ReasonTooLarge: 1, ReasonBadMethod: 0, ReasonBadPod: 0, ReasonReadFailed: 0}
	if d := cmp.Diff(want, counts); d != "" {
		t.Errorf("counters (-want +got):\n%s", d)
	}
}

func FuzzReview(f *testing.F) {
	f.Add(review(f, admissionv1.Create, "Pod", appPod(nil)))
	f.Add(review(f, admissionv1.Create, "Pod", map[string]any{"spec": map[string]any{"containers": "x"}}))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":null}}`))
	f.Add([]byte("null"))
	in := testInjector(f)
	wh, err := NewWebhook(in, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, result, err := wh.Review(body)
		if err != nil {
			if !errors.Is(err, ErrBadReview) {
				t.Fatalf("error %v does not wrap ErrBadReview", err)
			}
			return
		}
		var rv admissionv1.AdmissionReview
		if err := json.Unmarshal(out, &rv); err != nil || rv.Response == nil {
			t.Fatalf("bad response %q: %v", out, err)
		}
		if result == ResultInjected {
			if _, err := jsonpatch.DecodePatch(rv.Response.Patch); err != nil {
				t.Fatalf("bad patch: %v", err)
			}
		}
	})
}

// The sidecar announces the pod's labels as its endpoints carry them:
// empty values and labels that are not Kubernetes labels left out.
func TestInjectLabels(t *testing.T) {
	labelArgs := func(labels map[string]string) []string {
		pod := appPod(nil)
		pod.Labels = labels
		if ok, err := testInjector(t).Inject(&pod.ObjectMeta, &pod.Spec); !ok || err != nil {
			t.Fatalf("Inject = %v, %v", ok, err)
		}
		var out []string
		for _, a := range pod.Spec.InitContainers[1].Args {
			if strings.HasPrefix(a, "--labels") {
				out = append(out, a)
			}
		}
		return out
	}
	got := labelArgs(map[string]string{"app": "echo", "tier": "gold", "canary": "", "bad key": "x"})
	if want := []string{"--labels=app=echo,tier=gold"}; !cmp.Equal(got, want) {
		t.Errorf("label args = %q, want %q", got, want)
	}
	if got := labelArgs(nil); got != nil {
		t.Errorf("a pod without labels: label args = %q, want none", got)
	}
}
