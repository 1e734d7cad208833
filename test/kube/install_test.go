package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/controlplane/install"
	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/deploy"
)

// startOwnCluster starts an API server of its own for a test that
// installs and uninstalls fedmesh as a whole, which the shared clusters'
// tests must not see.
func startOwnCluster(t *testing.T, name string) *apiCluster {
	t.Helper()
	if tools == "" {
		t.Skip("test/kube:", skipWhy)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := startAPICluster(ctx, tools, name, t.TempDir())
	if err != nil {
		t.Fatalf("start the API server: %v", err)
	}
	t.Cleanup(c.stop)
	return c
}

// checks returns the report's checks by name.
func checks(r install.Report) map[string]install.Check {
	m := map[string]install.Check{}
	for _, c := range r.Checks {
		m[c.Name] = c
	}
	return m
}

func wantStatus(t *testing.T, r install.Report, name string, want install.Status) install.Check {
	t.Helper()
	c, ok := checks(r)[name]
	if !ok {
		t.Fatalf("%s report has no check %s: %+v", r.Phase, name, r.Checks)
	}
	if c.Status != want {
		t.Errorf("check %s: %s (%s; hint %q), want %s", name, c.Status, c.Message, c.Hint, want)
	}
	return c
}

// resourceVersions returns kind/namespace/name -> resourceVersion of every
// installed object.
func resourceVersions(t *testing.T, c *install.Client, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	got, err := c.Labelled(context.Background(), install.Kinds(objs))
	if err != nil {
		t.Fatal(err)
	}
	rv := map[string]string{}
	for _, o := range got {
		rv[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = o.GetResourceVersion()
	}
	return rv
}

// TestInstallCheckUninstall runs the whole cycle on an API server of its
// own (no kubelet, no controller-manager): the pre-install checks pass,
// install creates everything and waits for the CRDs, the post-install
// checks pass where an API server alone can make them pass and fail with
// a hint where pods are needed, installing again changes no
// resourceVersion, and uninstall --crds leaves nothing labelled fedmesh
// but the namespace, terminating.
func TestInstallCheckUninstall(t *testing.T) {
	ac := startOwnCluster(t, "install-1")
	ctx := context.Background()
	c, err := install.NewClient(ac.cfg)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Render(deploy.Base, install.Options{Cluster: "install-1", Region: "us-east", Zone: "a", TrustDomain: "fedmesh.local"})
	if err != nil {
		t.Fatal(err)
	}

	// Another implementation installed the GRPCRoute CRD already: install
	// keeps it as it is, uninstall leaves it.
	const foreignCRD = "grpcroutes.gateway.networking.k8s.io"
	kc := kubernetes.NewForConfigOrDie(ac.cfg)
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" && o.GetName() == foreignCRD {
			foreign := o.DeepCopy()
			foreign.SetLabels(nil)
			if _, err := c.Apply(ctx, []*unstructured.Unstructured{foreign}, time.Minute, io.Discard); err != nil {
				t.Fatal(err)
			}
		}
	}

	pre, err := c.Run(ctx, objs, install.CheckConfig{Pre: true})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, pre, "kubernetes-version", install.Pass)
	wantStatus(t, pre, "install-permissions", install.Pass)
	if pre.Failed() {
		t.Fatalf("pre-install checks failed: %+v", pre.Checks)
	}

	var progress bytes.Buffer
	res, err := c.Apply(ctx, objs, time.Minute, &progress)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, progress.String())
	}
	if len(res) != len(objs) {
		t.Fatalf("applied %d of %d objects", len(res), len(objs))
	}
	for _, r := range res {
		want := "created"
		if r.Ref == "customresourcedefinition/"+foreignCRD {
			want = "kept"
		}
		if r.Action != want {
			t.Errorf("first install: %s %s, want %s", r.Ref, r.Action, want)
		}
	}
	for _, want := range []string{"customresourcedefinition/serviceexports.multicluster.x-k8s.io established", "statefulset/fedmesh-controlplane created", "mutatingwebhookconfiguration/fedmesh-sidecar-injector created"} {
		if !strings.Contains(progress.String(), want+"\n") {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	// Without a kubelet nothing becomes ready: the wait says what is not.
	progress.Reset()
	err = c.WaitWorkloads(ctx, objs, 2*time.Second, &progress)
	if err == nil || !strings.Contains(err.Error(), "timed out after 2s waiting") || !strings.Contains(err.Error(), "statefulset/fedmesh-controlplane 0/2 ready") {
		t.Errorf("WaitWorkloads without a kubelet: %v, want not ready naming the control plane", err)
	}
	if !strings.Contains(progress.String(), "deployment/fedmesh-gateway: 0/2 available\n") {
		t.Errorf("wait progress lacks the gateway:\n%s", progress.String())
	}

	post, err := c.Run(ctx, objs, install.CheckConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, post, "kubernetes-version", install.Pass)
	wantStatus(t, post, "crds", install.Pass)
	wantStatus(t, post, "controlplane-rbac", install.Pass)
	// Decided: a control plane that is not ready is a failure (check is a
	// gate), with a hint that says where to look.
	if ch := wantStatus(t, post, "controlplane-ready", install.Fail); !strings.Contains(ch.Hint, "get pods") {
		t.Errorf("controlplane-ready hint %q does not say where to look", ch.Hint)
	}
	if ch := wantStatus(t, post, "webhook", install.Fail); !strings.Contains(ch.Message, "caBundle") {
		t.Errorf("webhook check %q: want the missing caBundle named", ch.Message)
	}
	wantStatus(t, post, "federation-peers", install.Skip)
	// No control plane ran to publish a join token; nobody asked to join.
	if ch := wantStatus(t, post, "join-token", install.Fail); !strings.Contains(ch.Hint, "logs statefulset/fedmesh-controlplane") {
		t.Errorf("join-token hint %q does not say where to look", ch.Hint)
	}
	wantStatus(t, post, "join", install.Pass)
	wantStatus(t, post, "cluster-ca-expiry", install.Skip)
	if !post.Failed() {
		t.Error("post-install report without a ready control plane did not fail")
	}

	// What the pods need and the manifests cannot carry, made by
	// install: the cluster CA from the federation root, the webhook's
	// serving certificate and its CA in the caBundle; and what a
	// controller-manager would make: the webhook's EndpointSlice.
	rootDir := filepath.Join(t.TempDir(), "root")
	if err := ca.InitRoot("fedmesh.local", rootDir); err != nil {
		t.Fatal(err)
	}
	certOpts := install.CertOptions{Cluster: "install-1", RootDir: rootDir}
	progress.Reset()
	res, err = c.EnsureCerts(ctx, certOpts, &progress)
	if err != nil {
		t.Fatalf("make the certificates: %v", err)
	}
	if len(res) != 3 {
		t.Errorf("certificates: %d results, want 3 (two Secrets, the caBundle): %+v", len(res), res)
	}
	for _, want := range []string{"secret/fedmesh-cluster-ca created", "secret/fedmesh-webhook-tls created", "mutatingwebhookconfiguration/fedmesh-sidecar-injector configured"} {
		if !strings.Contains(progress.String(), want+"\n") {
			t.Errorf("certificates progress lacks %q:\n%s", want, progress.String())
		}
	}
	checkInstalledCerts(t, kc, rootDir)
	certRVs := func() map[string]string {
		rv := map[string]string{}
		for _, name := range []string{install.ClusterCASecret, install.WebhookTLSSecret} {
			s, err := kc.CoreV1().Secrets(install.DefaultNamespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rv[name] = s.ResourceVersion
		}
		wh, err := kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "fedmesh-sidecar-injector", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rv["webhook"] = wh.ResourceVersion
		return rv
	}
	beforeCerts := certRVs()
	// Again, with another root even: nothing changes.
	otherRoot := filepath.Join(t.TempDir(), "other")
	if err := ca.InitRoot("fedmesh.local", otherRoot); err != nil {
		t.Fatal(err)
	}
	certOpts.RootDir = otherRoot
	if res, err = c.EnsureCerts(ctx, certOpts, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Action != "unchanged" {
			t.Errorf("certificates again: %s %s, want unchanged", r.Ref, r.Action)
		}
	}
	if d := cmp.Diff(beforeCerts, certRVs()); d != "" {
		t.Errorf("certificates again changed resourceVersions (-before +after):\n%s", d)
	}
	ready, port, proto := true, int32(9443), corev1.ProtocolTCP
	if _, err := kc.DiscoveryV1().EndpointSlices(install.DefaultNamespace).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "fedmesh-webhook-x", Labels: map[string]string{"kubernetes.io/service-name": "fedmesh-webhook"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"198.18.0.20"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: new("https"), Port: &port, Protocol: &proto}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The join Secrets as a control plane and 'fedmesh join' write them:
	// a token valid for an hour, and another cluster's token that this
	// cluster's replica refused.
	expiry := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, sec := range []*corev1.Secret{{
		ObjectMeta: metav1.ObjectMeta{Name: kube.JoinTokenSecret, Annotations: map[string]string{kube.AnnotationIssuer: "install-1"}},
		Data:       map[string][]byte{kube.KeyToken: []byte("fmjt1.own"), kube.KeyExpiry: []byte(expiry)},
	}, {
		ObjectMeta: metav1.ObjectMeta{Name: kube.JoinSecret, Annotations: map[string]string{
			kube.AnnotationIssuer:                 "east-1",
			kube.JoinStatusPrefix + "install-1-0": `{"token":"` + kube.TokenDigest("fmjt1.other") + `","joined":false,"error":"join token: signed by a foreign root"}`,
		}},
		Data: map[string][]byte{kube.KeyToken: []byte("fmjt1.other")},
	}} {
		if _, err := kc.CoreV1().Secrets(install.DefaultNamespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	post, err = c.Run(ctx, objs, install.CheckConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, post, "webhook", install.Pass)
	wantStatus(t, post, "cluster-ca-expiry", install.Pass)
	wantStatus(t, post, "join-token", install.Pass)
	if ch := wantStatus(t, post, "join", install.Fail); !strings.Contains(ch.Message, "refused by install-1-0: join token: signed by a foreign root") {
		t.Errorf("join check %q: want the replica's reason", ch.Message)
	}
	// 30 days before the CA expires it fails, naming the renewal.
	soon := install.CheckConfig{Now: func() time.Time { return time.Now().Add(340 * 24 * time.Hour) }}
	if post, err = c.Run(ctx, objs, soon); err != nil {
		t.Fatal(err)
	}
	if ch := wantStatus(t, post, "cluster-ca-expiry", install.Fail); !strings.Contains(ch.Hint, "rotate") {
		t.Errorf("expiry hint %q does not say how to renew", ch.Hint)
	}
	if ch := wantStatus(t, post, "join-token", install.Fail); !strings.Contains(ch.Message, "expired at "+expiry) {
		t.Errorf("join-token check %q: want the token named expired", ch.Message)
	}

	// Installing again changes nothing, the caBundle another manager set
	// included.
	before := resourceVersions(t, c, objs)
	if len(before) != len(objs)-1 {
		t.Errorf("%d labelled objects after install, want %d (all but the foreign CRD)", len(before), len(objs)-1)
	}
	res, err = c.Apply(ctx, objs, time.Minute, &progress)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		want := "unchanged"
		if r.Ref == "customresourcedefinition/"+foreignCRD {
			want = "kept"
		}
		if r.Action != want {
			t.Errorf("second install: %s %s, want %s", r.Ref, r.Action, want)
		}
	}
	after := resourceVersions(t, c, objs)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("second install changed %s: resourceVersion %s -> %s", k, v, after[k])
		}
	}
	wh, err := kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "fedmesh-sidecar-injector", metav1.GetOptions{})
	if err != nil || len(wh.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Errorf("the caBundle did not survive the second install (err %v)", err)
	}

	// The command line, as a user runs it: check -o json exits 1 (the
	// control plane is not ready) with the same report.
	bin := buildFedmesh(t)
	kubeconfig := writeKubeconfig(t, ac)
	cmd := exec.Command(bin, "check", "--kubeconfig", kubeconfig, "-o", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("fedmesh check: %v, want exit code 1\nstderr: %s", err, stderr.String())
	}
	var rep install.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("check -o json: %v\n%s", err, stdout.String())
	}
	wantStatus(t, rep, "crds", install.Pass)
	wantStatus(t, rep, "controlplane-ready", install.Fail)
	out, err := exec.Command(bin, "install", "--kubeconfig", kubeconfig, "--cluster", "install-1", "--region", "us-east", "--zone", "a", "--trust-domain", "fedmesh.local", "--wait=false").CombinedOutput()
	if err != nil {
		t.Fatalf("fedmesh install: %v\n%s", err, out)
	}
	if strings.Contains(string(out), " created\n") || strings.Contains(string(out), " configured\n") {
		t.Errorf("fedmesh install of the same cluster changed something:\n%s", out)
	}
	out, err = exec.Command(bin, "install", "--kubeconfig", kubeconfig, "--cluster", "Bad_Name", "--region", "r", "--trust-domain", "td").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "Bad_Name") {
		t.Errorf("fedmesh install --cluster Bad_Name: %v, want exit code 2 naming it\n%s", err, out)
	}

	// Uninstall with the CRDs leaves nothing of fedmesh behind but the
	// namespace, terminating: without a controller-manager nothing
	// finishes it.
	// A user's ServiceExport: uninstall --crds says it goes with its CRD.
	dyn := dynamic.NewForConfigOrDie(ac.cfg)
	se := &unstructured.Unstructured{}
	se.SetAPIVersion("multicluster.x-k8s.io/v1alpha1")
	se.SetKind("ServiceExport")
	se.SetName("echo")
	if _, err := dyn.Resource(schema.GroupVersionResource{Group: "multicluster.x-k8s.io", Version: "v1alpha1", Resource: "serviceexports"}).Namespace("default").Create(ctx, se, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "uninstall", "--kubeconfig", kubeconfig, "--crds", "--timeout", "1m").CombinedOutput()
	if err != nil {
		left, _ := c.Labelled(ctx, install.Kinds(objs))
		for _, l := range left {
			st, _ := json.Marshal(l.Object["status"])
			t.Logf("left: %s %s finalizers %v status %s", l.GetKind(), l.GetName(), l.GetFinalizers(), st)
		}
		t.Fatalf("fedmesh uninstall: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "customresourcedefinition/serviceexports.multicluster.x-k8s.io: 1 objects of it are deleted with it\n") {
		t.Errorf("uninstall did not say the ServiceExport goes with its CRD:\n%s", out)
	}
	if !strings.Contains(string(out), "customresourcedefinition/serviceexports.multicluster.x-k8s.io deleted\n") {
		t.Errorf("uninstall output lacks the CRDs:\n%s", out)
	}
	left, err := c.Labelled(ctx, install.Kinds(objs))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		if l.GetKind() == "Namespace" && l.GetDeletionTimestamp() != nil {
			continue
		}
		t.Errorf("uninstall left %s %s/%s", l.GetKind(), l.GetNamespace(), l.GetName())
	}
	secrets, err := kc.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: install.ManagedByLabel + "=" + install.ManagedBy})
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets.Items {
		if sec.DeletionTimestamp == nil {
			t.Errorf("uninstall left Secret %s/%s", sec.Namespace, sec.Name)
		}
	}
	if !strings.Contains(string(out), "secret/fedmesh-webhook-tls deleted\n") {
		t.Errorf("uninstall output lacks the webhook's Secret:\n%s", out)
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if crd, err := dyn.Resource(crdGVR).Get(ctx, foreignCRD, metav1.GetOptions{}); err != nil || crd.GetDeletionTimestamp() != nil || crd.GetLabels()[install.ManagedByLabel] != "" {
		t.Errorf("uninstall --crds removed or took over the foreign CRD %s (err %v)", foreignCRD, err)
	}
	ns, err := kc.CoreV1().Namespaces().Get(ctx, install.DefaultNamespace, metav1.GetOptions{})
	if err == nil && ns.DeletionTimestamp == nil {
		t.Errorf("namespace %s is not being deleted", install.DefaultNamespace)
	}
}

// checkInstalledCerts checks what install made: a cluster CA that the
// root in rootDir signed, and a webhook serving certificate for the
// webhook Service that the caBundle trusts.
func checkInstalledCerts(t *testing.T, kc kubernetes.Interface, rootDir string) {
	t.Helper()
	ctx := context.Background()
	root, err := ca.LoadRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := kc.CoreV1().Secrets(install.DefaultNamespace).Get(ctx, install.ClusterCASecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range sec.Data {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The control plane mounts the Secret as its --ca-dir.
	auth, err := ca.LoadAuthority(dir)
	if err != nil {
		t.Fatalf("the CA Secret is not a CA directory: %v", err)
	}
	if auth.Cluster() != "install-1" {
		t.Errorf("cluster CA for %q, want install-1", auth.Cluster())
	}
	pool := x509.NewCertPool()
	pool.AddCert(root.Certificate())
	if _, err := auth.CACertificate().Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("the cluster CA does not chain to the root: %v", err)
	}

	tlsSec, err := kc.CoreV1().Secrets(install.DefaultNamespace).Get(ctx, install.WebhookTLSSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tlsSec.Type != corev1.SecretTypeTLS {
		t.Errorf("webhook Secret type %s, want %s", tlsSec.Type, corev1.SecretTypeTLS)
	}
	if _, err := tls.X509KeyPair(tlsSec.Data[corev1.TLSCertKey], tlsSec.Data[corev1.TLSPrivateKeyKey]); err != nil {
		t.Errorf("webhook key pair: %v", err)
	}
	wh, err := kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "fedmesh-sidecar-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bundle := x509.NewCertPool()
	if !bundle.AppendCertsFromPEM(wh.Webhooks[0].ClientConfig.CABundle) {
		t.Fatal("the caBundle holds no certificate")
	}
	certs, err := ca.ParseCertsPEM(tlsSec.Data[corev1.TLSCertKey])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: bundle, DNSName: "fedmesh-webhook." + install.DefaultNamespace + ".svc"}); err != nil {
		t.Errorf("the API server would not trust the webhook's certificate: %v", err)
	}
}

// buildFedmesh builds the fedmesh binary into a temporary directory.
func buildFedmesh(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fedmesh")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/fedmesh").CombinedOutput()
	if err != nil {
		t.Fatalf("build fedmesh: %v\n%s", err, out)
	}
	return bin
}

// writeKubeconfig writes a kubeconfig for the admin of c.
func writeKubeconfig(t *testing.T, c *apiCluster) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.name] = &clientcmdapi.Cluster{Server: c.cfg.Host, CertificateAuthority: c.cfg.TLSClientConfig.CAFile}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: c.token}
	cfg.Contexts[c.name] = &clientcmdapi.Context{Cluster: c.name, AuthInfo: "admin"}
	cfg.CurrentContext = c.name
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
