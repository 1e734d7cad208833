package install

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fedmesh/fedmesh/controlplane/ca"
)

// CertOptions say how EnsureCerts makes what is missing.
type CertOptions struct {
	// Namespace is fedmesh's namespace; default DefaultNamespace.
	Namespace string
	// Cluster is the cluster's name, for its CA. Required with RootDir.
	Cluster string
	// RootDir holds the federation root ('fedmesh ca init'). With it a
	// missing cluster CA Secret is issued from the root, as 'fedmesh ca
	// issue-cluster' does; without it a missing one is reported
	// ("missing") and left to the operator: a root made here would
	// belong to no federation.
	RootDir string
	// CATTL is the cluster CA's lifetime; 0 takes ca.DefaultClusterCATTL.
	CATTL time.Duration
	// WebhookCertTTL is the webhook serving certificate's lifetime;
	// default one year.
	WebhookCertTTL time.Duration
}

// certsManager is the field manager of the caBundle EnsureCerts writes:
// not ManagedBy, so that applying the manifests (which leave caBundle
// out) never takes it away.
const certsManager = "fedmesh-certs"

// webhookService is the webhook's Service (deploy/base/webhook.yaml),
// whose DNS names the serving certificate carries.
const webhookService = "fedmesh-webhook"

// EnsureCerts creates what the control plane and the webhook need and the
// manifests cannot carry: the cluster CA Secret ClusterCASecret (from
// o.RootDir) and the webhook's serving certificate WebhookTLSSecret (a CA
// of its own and a certificate for the webhook Service's DNS names), each
// only when absent, and puts the webhook's CA into every webhook's
// caBundle of the MutatingWebhookConfiguration where it differs. An
// existing Secret is never changed. Run it after Apply. It writes one
// progress line per object; "unchanged" when nothing was to do.
func (c *Client) EnsureCerts(ctx context.Context, o CertOptions, progress io.Writer) ([]Result, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.WebhookCertTTL == 0 {
		o.WebhookCertTTL = 365 * 24 * time.Hour
	}
	var out []Result
	report := func(r Result) {
		out = append(out, r)
		fmt.Fprintf(progress, "%s %s\n", r.Ref, r.Action)
	}
	r, err := c.ensureClusterCA(ctx, o)
	if err != nil {
		return out, err
	}
	report(r)
	r, caPEM, err := c.ensureWebhookTLS(ctx, o)
	if err != nil {
		return out, err
	}
	report(r)
	r, err = c.ensureCABundle(ctx, caPEM)
	if err != nil {
		return out, err
	}
	report(r)
	return out, nil
}

func secretRef(name string) string { return "secret/" + name }

func (c *Client) ensureClusterCA(ctx context.Context, o CertOptions) (Result, error) {
	r := Result{Ref: secretRef(ClusterCASecret), Namespace: o.Namespace, Action: "unchanged"}
	_, err := c.kube.CoreV1().Secrets(o.Namespace).Get(ctx, ClusterCASecret, metav1.GetOptions{})
	if err == nil {
		return r, nil
	}
	if !apierrors.IsNotFound(err) {
		return r, fmt.Errorf("get %s: %w", r.Ref, err)
	}
	if o.RootDir == "" {
		r.Action = "missing (give --root-dir to issue it from the federation root)"
		return r, nil
	}
	root, err := ca.LoadRoot(o.RootDir)
	if err != nil {
		return r, fmt.Errorf("issue the cluster CA: %w", err)
	}
	files, err := root.IssueCluster(o.Cluster, o.CATTL)
	if err != nil {
		return r, fmt.Errorf("issue the cluster CA: %w", err)
	}
	// The keys are the file names of a CA directory: the control plane
	// mounts the Secret as its --ca-dir.
	sec := managedSecret(ClusterCASecret, o.Namespace, corev1.SecretTypeOpaque, map[string][]byte{
		ca.CACertFile:   files.CACertPEM,
		ca.CAKeyFile:    files.CAKeyPEM,
		ca.BundleFile:   files.BundlePEM,
		ca.TokenKeyFile: files.TokenKey,
	})
	if _, err := c.kube.CoreV1().Secrets(o.Namespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return r, fmt.Errorf("create %s: %w", r.Ref, err)
	}
	r.Action = "created"
	return r, nil
}

// ensureWebhookTLS returns the Result and the CA the webhook's caBundle
// must hold: the Secret's ca.crt, or its tls.crt when it has no ca.crt
// (a self-signed certificate, as scripts/kind-demo.sh makes).
func (c *Client) ensureWebhookTLS(ctx context.Context, o CertOptions) (Result, []byte, error) {
	r := Result{Ref: secretRef(WebhookTLSSecret), Namespace: o.Namespace, Action: "unchanged"}
	cur, err := c.kube.CoreV1().Secrets(o.Namespace).Get(ctx, WebhookTLSSecret, metav1.GetOptions{})
	if err == nil {
		caPEM := cur.Data["ca.crt"]
		if len(caPEM) == 0 {
			caPEM = cur.Data[corev1.TLSCertKey]
		}
		if len(caPEM) == 0 {
			return r, nil, fmt.Errorf("%s exists without ca.crt or tls.crt: delete it to have install make one", r.Ref)
		}
		return r, caPEM, nil
	}
	if !apierrors.IsNotFound(err) {
		return r, nil, fmt.Errorf("get %s: %w", r.Ref, err)
	}
	caPEM, certPEM, keyPEM, err := webhookCert(o.Namespace, time.Now(), o.WebhookCertTTL)
	if err != nil {
		return r, nil, fmt.Errorf("webhook serving certificate: %w", err)
	}
	sec := managedSecret(WebhookTLSSecret, o.Namespace, corev1.SecretTypeTLS, map[string][]byte{
		corev1.TLSCertKey:       certPEM,
		corev1.TLSPrivateKeyKey: keyPEM,
		"ca.crt":                caPEM,
	})
	if _, err := c.kube.CoreV1().Secrets(o.Namespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return r, nil, fmt.Errorf("create %s: %w", r.Ref, err)
	}
	r.Action = "created"
	return r, caPEM, nil
}

// ensureCABundle sets caBundle of every webhook of the configuration to
// caPEM, by one JSON patch when any differs.
func (c *Client) ensureCABundle(ctx context.Context, caPEM []byte) (Result, error) {
	r := Result{Ref: "mutatingwebhookconfiguration/" + webhookConfig, Action: "unchanged"}
	api := c.kube.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cur, err := api.Get(ctx, webhookConfig, metav1.GetOptions{})
	if err != nil {
		return r, fmt.Errorf("get %s (apply the manifests first): %w", r.Ref, err)
	}
	var ops []map[string]any
	for i, h := range cur.Webhooks {
		if !bytes.Equal(h.ClientConfig.CABundle, caPEM) {
			ops = append(ops, map[string]any{"op": "add", "path": fmt.Sprintf("/webhooks/%d/clientConfig/caBundle", i), "value": caPEM})
		}
	}
	if len(ops) == 0 {
		return r, nil
	}
	// Test the resourceVersion first: a configuration changed since the
	// Get fails the patch instead of taking bundles at wrong indexes.
	ops = append([]map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": cur.ResourceVersion}}, ops...)
	patch, err := json.Marshal(ops)
	if err != nil {
		return r, err
	}
	if _, err := api.Patch(ctx, webhookConfig, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: certsManager}); err != nil {
		return r, fmt.Errorf("set the caBundle of %s: %w", r.Ref, err)
	}
	r.Action = "configured"
	return r, nil
}

func managedSecret(name, namespace string, typ corev1.SecretType, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: namespace,
			Labels: map[string]string{ManagedByLabel: ManagedBy, "app.kubernetes.io/part-of": "fedmesh"},
		},
		Type: typ,
		Data: data,
	}
}

// webhookCert makes a CA of the webhook's own and a serving certificate
// for the webhook Service's DNS names in namespace, both valid ttl from
// now, ECDSA P-256; PEM.
func webhookCert(namespace string, now time.Time, ttl time.Duration) (caPEM, certPEM, keyPEM []byte, err error) {
	if ttl <= 0 {
		return nil, nil, nil, errors.New("lifetime must be positive")
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial := func() (*big.Int, error) { return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)) }
	sn, err := serial()
	if err != nil {
		return nil, nil, nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "fedmesh-webhook-ca"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	if sn, err = serial(); err != nil {
		return nil, nil, nil, err
	}
	svc := webhookService + "." + namespace + ".svc"
	leaf := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: svc},
		DNSNames:     []string{svc, svc + ".cluster.local"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, key.Public(), caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err = ca.EncodeKeyPEM(key)
	if err != nil {
		return nil, nil, nil, err
	}
	leafCert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return ca.EncodeCertsPEM(caCert), ca.EncodeCertsPEM(leafCert), keyPEM, nil
}
