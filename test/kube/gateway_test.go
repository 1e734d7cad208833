package kube

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/controlplane/plan/plantest"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/gateway"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// gatewayXDS is a cluster's xDS server wired as `fedmesh controlplane
// --source kube` wires it: nodes authenticate with projected
// ServiceAccount tokens checked by TokenReview (as the control plane's
// ServiceAccount), the gateway role is for the default gateway
// identities given (the defaults when nil), and the server presents a control-plane certificate of a
// real cluster CA.
type gatewayXDS struct {
	addr  string
	auth  *ca.Authority
	roots *x509.CertPool
	reg   *prometheus.Registry
}

func startGatewayXDS(t *testing.T, c *apiCluster, gateways []xds.Identity) *gatewayXDS {
	t.Helper()
	cp, err := kube.NewClients(asControlPlane(c))
	if err != nil {
		t.Fatal(err)
	}
	reviewer, err := kube.NewTokenReviewer(cp.Kube)
	if err != nil {
		t.Fatal(err)
	}
	rootDir := t.TempDir()
	if err := ca.InitRoot(plantest.TrustDomain, rootDir); err != nil {
		t.Fatal(err)
	}
	root, err := ca.LoadRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := root.IssueCluster("east-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.NewAuthority(files)
	if err != nil {
		t.Fatal(err)
	}
	cpCert, err := auth.IssueControlPlane(time.Hour, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := xds.NewServer(xds.Config{
		Cluster:       "east-1",
		Settings:      xds.DefaultSettings(plantest.TrustDomain),
		Authenticator: xds.TokenAuthenticator(reviewer.Verify),
		Issuer:        auth,
		Debounce:      10 * time.Millisecond,
		Logger:        testLogger(t),
		Registerer:    reg,

		GatewayIdentities: gateways,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS := identity.ServerConfigOptionalClient(identity.StaticCert(cpCert.TLS), identity.StaticBundle(auth.Bundle()), identity.AuthorizeWorkloads())
	g := grpc.NewServer(append(srv.ServerOptions(), grpc.Creds(credentials.NewTLS(serverTLS)))...)
	srv.Register(g)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(srv.Listener(lis)) }()
	go func() { defer wg.Done(); _ = srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); g.Stop(); wg.Wait() })
	// east-1 exports echo with two local endpoints: the gateway's routes.
	if err := srv.UpdateView(plantest.View("east-1")); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	for _, r := range auth.TrustBundle() {
		roots.AddCert(r)
	}
	return &gatewayXDS{addr: lis.Addr().String(), auth: auth, roots: roots, reg: reg}
}

// rejected reads fedmesh_xds_rejected_total{reason}, 0 before the first.
func (x *gatewayXDS) rejected(t *testing.T, reason string) float64 {
	t.Helper()
	mfs, err := x.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fedmesh_xds_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// runGateway runs a whole gateway (its xDS client included) against x
// with token and the claims of cfg; it stops when the test ends.
func (x *gatewayXDS) runGateway(t *testing.T, token string, claims gateway.Config) *gateway.Gateway {
	t.Helper()
	cfg := claims
	cfg.Cluster = "east-1"
	cfg.ControlPlane = x.addr
	cfg.ControlPlaneID = x.auth.ControlPlaneID()
	cfg.RootCAs = x.roots
	cfg.Token = token
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.XDSBackoff = 100 * time.Millisecond
	cfg.Logger = testLogger(t)
	gw, err := gateway.New(cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})
	return gw
}

// deployedGateway is what deploy/base says about the gateway's identity.
type deployedGateway struct {
	// pod is the gateway Deployment's pod template, as a Pod of its
	// namespace.
	pod *corev1.Pod
	// audience is the audience of the projected token the gateway reads
	// with --token-file.
	audience string
	// args are the gateway container's arguments.
	args []string
	// gateways are the control plane's --gateway-identity values.
	gateways []xds.Identity
}

// readDeployedGateway reads deploy/base/gateway.yaml and controlplane.yaml
// and checks that the gateway's --token-file is a projected ServiceAccount
// token.
func readDeployedGateway(t *testing.T) deployedGateway {
	t.Helper()
	var gwDep appsv1.Deployment
	var cpSet appsv1.StatefulSet
	for _, f := range []struct {
		file, kind string
		into       any
	}{{"gateway.yaml", "Deployment", &gwDep}, {"controlplane.yaml", "StatefulSet", &cpSet}} {
		ms, err := readManifestFile(filepath.Join(deployDir, "base", f.file))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range ms {
			if m.obj.GetKind() == f.kind {
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m.obj.Object, f.into); err != nil {
					t.Fatalf("%s: %v", m, err)
				}
				found = true
			}
		}
		if !found {
			t.Fatalf("deploy/base/%s has no %s", f.file, f.kind)
		}
	}
	var d deployedGateway
	d.pod = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: gwDep.Namespace, GenerateName: gwDep.Name + "-"}, Spec: gwDep.Spec.Template.Spec}
	ctr := d.pod.Spec.Containers[0]
	d.args = ctr.Args
	tokenFile, ok := flagValue(d.args, "--token-file")
	if !ok {
		t.Fatal("deploy/base/gateway.yaml: the gateway has no --token-file")
	}
	for _, vm := range ctr.VolumeMounts {
		if filepath.Dir(tokenFile) != vm.MountPath {
			continue
		}
		for _, v := range d.pod.Spec.Volumes {
			if v.Name != vm.Name || v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if sat := src.ServiceAccountToken; sat != nil && sat.Path == filepath.Base(tokenFile) {
					d.audience = sat.Audience
				}
			}
		}
	}
	if d.audience == "" {
		t.Fatalf("deploy/base/gateway.yaml: --token-file=%s is not a projected ServiceAccount token", tokenFile)
	}
	// $(POD_NAMESPACE) of the control plane is its own namespace.
	for _, a := range cpSet.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--gateway-identity="); ok {
			id, err := xds.ParseIdentity(strings.ReplaceAll(v, "$(POD_NAMESPACE)", cpSet.Namespace))
			if err != nil {
				t.Fatalf("deploy/base/controlplane.yaml: %v", err)
			}
			d.gateways = append(d.gateways, id)
		}
	}
	return d
}

// flagValue returns the value of --name=VALUE in args.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// claims are the identity the gateway container of pod claims: its
// --namespace, --service-account and --workload, with the downward API
// variables ($(POD_NAME) and the like) of its environment expanded for
// pod as the kubelet does.
func (d deployedGateway) claims(t *testing.T, pod *corev1.Pod) gateway.Config {
	t.Helper()
	fields := map[string]string{
		"metadata.name": pod.Name, "metadata.namespace": pod.Namespace, "spec.serviceAccountName": pod.Spec.ServiceAccountName,
	}
	var oldnew []string
	for _, e := range pod.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			v, ok := fields[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				t.Fatalf("env %s: field %s not known to the test", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			oldnew = append(oldnew, "$("+e.Name+")", v)
		}
	}
	expand := strings.NewReplacer(oldnew...)
	flag := func(name, def string) string {
		if v, ok := flagValue(d.args, name); ok {
			return expand.Replace(v)
		}
		return def
	}
	return gateway.Config{
		Namespace:      flag("--namespace", gateway.DefaultNamespace),
		ServiceAccount: flag("--service-account", gateway.DefaultServiceAccount),
		Workload:       flag("--workload", gateway.DefaultWorkload),
	}
}

// TestGatewayServiceAccountToken runs the east-west gateway as deploy/
// does in Kubernetes mode: the pod of deploy/base/gateway.yaml's template
// presents its projected token of the fedmesh-system/fedmesh-gateway
// ServiceAccount (the manifest's audience, bound to the pod as the kubelet
// binds it) with the claims of the manifest's flags; the control plane,
// with deploy/base/controlplane.yaml's --gateway-identity and with the
// default identities, checks it with the real API server's TokenReview,
// and the gateway gets its routes. Tokens of other
// ServiceAccounts, or claims that differ from what the token proves, are
// refused the gateway role and get nothing.
func TestGatewayServiceAccountToken(t *testing.T) {
	c, _ := clusters(t)
	admin, err := kube.NewClients(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ns = "fedmesh-system"
	dep := readDeployedGateway(t)
	if dep.pod.Namespace != ns || dep.pod.Spec.ServiceAccountName != "fedmesh-gateway" {
		t.Fatalf("deploy/base/gateway.yaml runs the gateway as %s/%s, want %s/fedmesh-gateway", dep.pod.Namespace, dep.pod.Spec.ServiceAccountName, ns)
	}
	if dep.audience != kube.DefaultAudience {
		t.Errorf("deploy/base/gateway.yaml: token audience %q, want the control plane's %q", dep.audience, kube.DefaultAudience)
	}
	// The gateway's pod (no kubelet runs it), so that its token is bound
	// to it as the kubelet binds projected tokens; deploy/base/rbac.yaml
	// made the ServiceAccounts.
	pod, err := admin.Kube.CoreV1().Pods(ns).Create(ctx, dep.pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := admin.Kube.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete pod %s: %v", pod.Name, err)
		}
	})
	token := func(sa, audience string, bound *corev1.Pod) string {
		t.Helper()
		req := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr[int64](600)}}
		if bound != nil {
			req.Spec.BoundObjectRef = &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: bound.Name, UID: bound.UID}
		}
		tr, err := admin.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, req, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	claims := dep.claims(t, pod)
	if got, want := [3]string{claims.Namespace, claims.ServiceAccount, claims.Workload}, [3]string{ns, "fedmesh-gateway", pod.Name}; got != want {
		t.Errorf("deploy/base/gateway.yaml claims namespace, service account, workload %q, want %q", got, want)
	}
	if len(dep.gateways) == 0 {
		t.Fatal("deploy/base/controlplane.yaml passes no --gateway-identity")
	}
	for _, tc := range []struct {
		name     string
		gateways []xds.Identity
	}{{"deploy's gateway identities", dep.gateways}, {"default gateway identities", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			x := startGatewayXDS(t, c, tc.gateways)
			gw := x.runGateway(t, token("fedmesh-gateway", dep.audience, pod), claims)
			echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
			poll.Until(t, 30*time.Second, "the gateway's routes from xDS", func() error {
				routes := gw.Routes()
				if len(routes) != 1 || routes[0].Service != echo {
					return errors.New("no route for demo/echo:8080")
				}
				for _, ep := range routes[0].Endpoints {
					if ep.Address == "127.0.1.1:15006" && ep.Healthy {
						return nil
					}
				}
				return errors.New("echo's route lacks the healthy local endpoint 127.0.1.1:15006")
			})
			if st := gw.XDS().Status(); !st.Connected {
				t.Errorf("xDS status %+v, want connected", st)
			}
		})
	}

	x := startGatewayXDS(t, c, dep.gateways)

	refused := []struct {
		name   string
		token  func() string
		claims gateway.Config
		reason string
	}{
		{
			name:   "another ServiceAccount claiming itself",
			token:  func() string { return token("fedmesh-webhook", kube.DefaultAudience, nil) },
			claims: gateway.Config{Namespace: ns, ServiceAccount: "fedmesh-webhook"},
			reason: "identity_mismatch",
		},
		{
			name:   "another ServiceAccount claiming the gateway's",
			token:  func() string { return token("fedmesh-webhook", kube.DefaultAudience, nil) },
			claims: gateway.Config{Namespace: ns, ServiceAccount: "fedmesh-gateway"},
			reason: "identity_mismatch",
		},
		{
			name:   "the gateway's token claiming another pod",
			token:  func() string { return token("fedmesh-gateway", kube.DefaultAudience, pod) },
			claims: gateway.Config{Namespace: ns, ServiceAccount: "fedmesh-gateway", Workload: "fedmesh-gateway-other"},
			reason: "identity_mismatch",
		},
		{
			name:   "the gateway's token for another audience",
			token:  func() string { return token("fedmesh-gateway", "vault", pod) },
			claims: gateway.Config{Namespace: ns, ServiceAccount: "fedmesh-gateway", Workload: pod.Name},
			reason: "unauthenticated",
		},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			before := x.rejected(t, tt.reason)
			gw := x.runGateway(t, tt.token(), tt.claims)
			wantCode := "PermissionDenied"
			if tt.reason == "unauthenticated" {
				wantCode = "Unauthenticated"
			}
			poll.Until(t, 30*time.Second, "the gateway refused", func() error {
				if st := gw.XDS().Status(); !strings.Contains(st.LastError, "code = "+wantCode) {
					return errors.New("xDS client's last error " + st.LastError)
				}
				return nil
			})
			if got := x.rejected(t, tt.reason); got <= before {
				t.Errorf("fedmesh_xds_rejected_total{reason=%q} = %v, want more than %v", tt.reason, got, before)
			}
			if routes := gw.Routes(); len(routes) != 0 {
				t.Errorf("a refused gateway got routes %+v", routes)
			}
		})
	}
}
