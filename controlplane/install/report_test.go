package install

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestReportWriteText(t *testing.T) {
	r := Report{Phase: "post-install"}
	r.add("crds", Pass, "9 CRDs established", "")
	r.add("controlplane-ready", Fail, "statefulset/fedmesh-controlplane: 0/1 ready", "see kubectl get pods")
	r.add("federation-peers", Skip, "no admin API address given", "use --admin")
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `[pass] crds: 9 CRDs established
[fail] controlplane-ready: statefulset/fedmesh-controlplane: 0/1 ready
       hint: see kubectl get pods
[skip] federation-peers: no admin API address given
       hint: use --admin
post-install: some checks failed (1 passed, 1 failed, 1 skipped)
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
	if !r.Failed() {
		t.Error("Failed() is false with a failed check")
	}
	ok := Report{Phase: "pre-install", Checks: r.Checks[:1]}
	b.Reset()
	if err := ok.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if ok.Failed() || !bytes.HasSuffix(b.Bytes(), []byte("pre-install: all checks passed (1 passed, 0 failed, 0 skipped)\n")) {
		t.Errorf("passing report: failed=%v text %q", ok.Failed(), b.String())
	}
}

func certPEM(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCertExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	warn := 30 * 24 * time.Hour
	for name, tc := range map[string]struct {
		pem  []byte
		want Status
	}{
		"valid a year":   {certPEM(t, now.Add(365*24*time.Hour)), Pass},
		"expires soon":   {certPEM(t, now.Add(10*24*time.Hour)), Fail},
		"expired":        {certPEM(t, now.Add(-time.Hour)), Fail},
		"not PEM":        {[]byte("hello"), Fail},
		"PEM of garbage": {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}), Fail},
	} {
		t.Run(name, func(t *testing.T) {
			got, msg := certExpiry(tc.pem, now, warn)
			if got != tc.want {
				t.Errorf("status %s (%s), want %s", got, msg, tc.want)
			}
		})
	}
}

func TestWorkloadReady(t *testing.T) {
	mk := func(kind string, spec, status map[string]any) *unstructured.Unstructured {
		o := &unstructured.Unstructured{Object: map[string]any{"kind": kind, "spec": spec, "status": status, "metadata": map[string]any{"name": "x", "generation": int64(2)}}}
		return o
	}
	avail := []any{map[string]any{"type": "Available", "status": "True"}}
	for name, tc := range map[string]struct {
		obj  *unstructured.Unstructured
		want bool
		how  string
	}{
		"deployment available": {mk("Deployment", map[string]any{"replicas": int64(2)}, map[string]any{"observedGeneration": int64(2), "availableReplicas": int64(2), "conditions": avail}), true, "2/2 available"},
		"deployment partly":    {mk("Deployment", map[string]any{"replicas": int64(2)}, map[string]any{"observedGeneration": int64(2), "availableReplicas": int64(1), "conditions": avail}), false, "1/2 available"},
		"deployment stale":     {mk("Deployment", map[string]any{"replicas": int64(1)}, map[string]any{"observedGeneration": int64(1), "availableReplicas": int64(1), "conditions": avail}), false, "1/1 available"},
		"statefulset none":     {mk("StatefulSet", map[string]any{"replicas": int64(1)}, map[string]any{}), false, "0/1 ready"},
		"statefulset ready":    {mk("StatefulSet", map[string]any{"replicas": int64(1)}, map[string]any{"observedGeneration": int64(2), "readyReplicas": int64(1)}), true, "1/1 ready"},
		"service":              {mk("Service", map[string]any{}, map[string]any{}), true, ""},
	} {
		t.Run(name, func(t *testing.T) {
			ok, how := workloadReady(tc.obj)
			if ok != tc.want || how != tc.how {
				t.Errorf("workloadReady = %v %q, want %v %q", ok, how, tc.want, tc.how)
			}
		})
	}
}
