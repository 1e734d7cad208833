package kube

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fedmesh/fedmesh/controlplane/inject"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// selfSigned returns a TLS certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fedmesh-webhook-test"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestWebhookInjects registers the injection webhook with a real API
// server (by URL, with its CA) and creates pods: one in a labelled
// namespace comes back with the sidecar, which the API server's
// validation accepted; one that opts out and one in another namespace do
// not.
func TestWebhookInjects(t *testing.T) {
	_, c := clusters(t)
	cs, err := kubernetes.NewForConfig(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inject.New(inject.Config{SidecarImage: "fedmesh:dev", InitImage: "fedmesh-init:dev", TrustDomain: "fedmesh.example", Cluster: "west-1"})
	if err != nil {
		t.Fatal(err)
	}
	wh, err := inject.NewWebhook(in, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, caPEM := selfSigned(t)
	mux := http.NewServeMux()
	mux.Handle("POST /inject", wh)
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()

	ctx := context.Background()
	url := srv.URL + "/inject"
	fail := admissionregv1.Fail
	none := admissionregv1.SideEffectClassNone
	scope := admissionregv1.NamespacedScope
	mwc := &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "fedmesh-sidecar-injector-test"},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:                    "sidecar-injector.fedmesh.io",
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules: []admissionregv1.RuleWithOperations{{
				Operations: []admissionregv1.OperationType{admissionregv1.Create},
				Rule:       admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: &scope},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{inject.NamespaceLabel: inject.NamespaceLabelValue}},
		}},
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, mwc.Name, metav1.DeleteOptions{})
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "meshed", Labels: map[string]string{inject.NamespaceLabel: inject.NamespaceLabelValue}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
	} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	pod := func(ns, name string, annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "echo:1"}}},
		}
	}
	tests := []struct {
		name      string
		pod       *corev1.Pod
		wantInits []string
	}{
		{name: "labelled namespace", pod: pod("meshed", "echo-1", nil), wantInits: []string{inject.InitName, inject.SidecarName}},
		{name: "opted out", pod: pod("meshed", "debug", map[string]string{inject.AnnotationInject: "false"})},
		{name: "unlabelled namespace", pod: pod("plain", "echo-1", nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The API server may not call a webhook it has just learned of:
			// retry the first creation until the configuration is active.
			var got *corev1.Pod
			poll.Until(t, 30*time.Second, "pod created through the webhook", func() error {
				var err error
				got, err = cs.CoreV1().Pods(tc.pod.Namespace).Create(ctx, tc.pod, metav1.CreateOptions{})
				if err != nil {
					return err
				}
				if len(tc.wantInits) > 0 && len(got.Spec.InitContainers) == 0 {
					// Created before the webhook was active: try again.
					cs.CoreV1().Pods(tc.pod.Namespace).Delete(ctx, tc.pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
					return errNotInjectedYet
				}
				return nil
			})
			var inits []string
			for _, c := range got.Spec.InitContainers {
				inits = append(inits, c.Name)
			}
			if d := cmp.Diff(tc.wantInits, inits); d != "" {
				t.Errorf("init containers (-want +got):\n%s", d)
			}
			if len(tc.wantInits) == 0 {
				return
			}
			if got.Annotations[inject.AnnotationInjected] != "true" {
				t.Errorf("annotations %v", got.Annotations)
			}
			var token bool
			for _, v := range got.Spec.Volumes {
				if v.Name == inject.TokenVolumeName && v.Projected != nil && v.Projected.Sources[0].ServiceAccountToken.Audience == "fedmesh" {
					token = true
				}
			}
			if !token {
				t.Errorf("no projected token volume: %+v", got.Spec.Volumes)
			}
		})
	}
}

type constError string

func (e constError) Error() string { return string(e) }

const errNotInjectedYet = constError("pod created without the sidecar (webhook not active yet)")
