package kube

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fedmesh/fedmesh/controlplane"
	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/controlplane/webview"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/store"
	"github.com/fedmesh/fedmesh/topology"
)

// TestWebViewReadsPodsInKubernetesMode runs a control plane as `fedmesh
// controlplane --source kube` wires it (the Kubernetes source, xDS nodes
// authenticated with projected ServiceAccount tokens checked by the real
// API server's TokenReview, the web view reading pods' addresses from the
// source's Pod informer). Three sidecar-role xDS clients connect, each
// claiming an injected sidecar's node id (sidecar~127.0.0.1~..., which
// names no pod address):
//
//   - client-1, with a token bound to its pod, whose status.podIP the test
//     sets to a loopback address where it serves a sidecar's
//     /stats/prometheus with outbound requests from east-1 to west-1;
//   - pending-1, with a token bound to its pod, which has no IP;
//   - a token bound to no pod, claiming the pod unbound-1, whose IP is a
//     loopback address nothing serves on;
//
// and a gateway-role client as deploy/ runs the gateway (the
// fedmesh-gateway ServiceAccount's token bound to its pod in
// fedmesh-system, node id gateway~0.0.0.0:15443~east-1), whose pod's
// address serves a gateway admin page with open connections.
//
// The graph on the admin port then shows the east-1>west-1 edge with a
// rate and the gateway up with its connections, read from client-1's and
// the gateway's pod addresses alone: neither the node ids' addresses nor
// the unproven claim is read, and the two nodes left out are counted by
// reason. The ports are the web view's SidecarReadyPort and
// GatewayAdminPort (15021 in a cluster; here the free ports the pages
// got).
func TestWebViewReadsPodsInKubernetesMode(t *testing.T) {
	c, _ := clusters(t)
	admin, err := kube.NewClients(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns, sa = "webview", "client"
	if _, err := admin.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := admin.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	// client-1's sidecar page, on a loopback address of its own.
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fedmesh_sidecar_requests_total"},
		[]string{"direction", "source_cluster", "destination_cluster", "service", "code"})
	reg.MustRegister(requests)
	readyAddr := servePage(t, "127.0.77.1", reg)
	podIP := readyAddr.IP.String()
	// The gateway's admin page, with its open connections.
	gwReg := prometheus.NewRegistry()
	open := prometheus.NewGauge(prometheus.GaugeOpts{Name: "fedmesh_gateway_connections_active"})
	gwReg.MustRegister(open)
	open.Set(3)
	gwAddr := servePage(t, "127.0.77.3", gwReg)

	makePod := func(ns, name, sa, ip string) *corev1.Pod {
		t.Helper()
		p, err := admin.Kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := admin.Kube.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("delete pod %s: %v", name, err)
			}
		})
		if ip != "" {
			p = setPodIP(ctx, t, admin, p, ip)
		}
		return p
	}
	client1 := makePod(ns, "client-1", sa, "")
	pending := makePod(ns, "pending-1", sa, "")
	makePod(ns, "unbound-1", sa, "127.0.77.2")
	// deploy/base/rbac.yaml made the gateway's ServiceAccount.
	gwPod := makePod("fedmesh-system", "fedmesh-gateway-webview", "fedmesh-gateway", gwAddr.IP.String())
	token := func(ns, sa string, bound *corev1.Pod) string {
		t.Helper()
		req := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{kube.DefaultAudience}, ExpirationSeconds: ptr[int64](600)}}
		if bound != nil {
			req.Spec.BoundObjectRef = &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: bound.Name, UID: bound.UID}
		}
		tr, err := admin.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, req, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}

	cp := startKubeWebViewCP(t, c, readyAddr.Port, gwAddr.Port)
	for _, n := range []struct {
		pod, token string
	}{{"client-1", token(ns, sa, client1)}, {"pending-1", token(ns, sa, pending)}, {"unbound-1", token(ns, sa, nil)}} {
		cp.runNode(t, naming.RoleSidecar, naming.RoleSidecar+"~127.0.0.1~"+n.pod+"."+ns, n.pod, ns, sa, n.token)
	}
	// The gateway as deploy/ runs it: --listen=0.0.0.0:15443 names no pod
	// address either.
	cp.runNode(t, naming.RoleGateway, naming.RoleGateway+"~0.0.0.0:15443~east-1", gwPod.Name, "fedmesh-system", "fedmesh-gateway",
		token("fedmesh-system", "fedmesh-gateway", gwPod))
	poll.Until(t, 60*time.Second, "the three sidecars and the gateway connected", func() error {
		g, err := cp.graph(ctx)
		if err != nil {
			return err
		}
		if len(g.Proxies) != 4 {
			return fmt.Errorf("proxies %+v, want 4", g.Proxies)
		}
		return nil
	})

	// Now client-1 gets its IP, as the kubelet would set it.
	setPodIP(ctx, t, admin, client1, podIP)

	// Traffic keeps flowing while the test polls: the collector's rates
	// need counts that change between reads.
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for range 6000 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			requests.WithLabelValues("outbound", "east-1", "west-1", "demo/echo:8080", "2xx").Inc()
		}
	}()
	defer func() { close(stop); <-sent }()

	var g webview.Graph
	poll.Until(t, 60*time.Second, "the graph shows east-1>west-1 with a rate, read from client-1's pod, and the gateway", func() error {
		if g, err = cp.graph(ctx); err != nil {
			return err
		}
		if len(g.Clusters) == 0 || !g.Clusters[0].Gateway.Up || g.Clusters[0].Gateway.ActiveConnections != 3 {
			return fmt.Errorf("clusters %+v, want east-1's gateway up with 3 connections", g.Clusters)
		}
		for _, e := range g.Edges {
			if e.From == "east-1" && e.To == "west-1" && e.RequestRate > 0 {
				return nil
			}
		}
		return fmt.Errorf("edges %+v, targets %+v", g.Edges, g.Targets)
	})
	var got []string
	for _, tg := range g.Targets {
		got = append(got, fmt.Sprintf("%s %s %s up=%v", tg.Kind, tg.Node, tg.Address, tg.Up))
	}
	slices.Sort(got)
	want := []string{
		fmt.Sprintf("gateway gateway~0.0.0.0:15443~east-1 %s up=true", gwAddr),
		fmt.Sprintf("sidecar sidecar~127.0.0.1~client-1.webview %s up=true", readyAddr),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("targets:\n%s\nwant client-1's sidecar and the gateway at their pods' addresses alone, up:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The two nodes left out are counted, each with its reason.
	poll.Until(t, 30*time.Second, "the unread nodes counted", func() error {
		got := map[string]float64{}
		mfs, err := cp.reg.Gather()
		if err != nil {
			return err
		}
		for _, mf := range mfs {
			if mf.GetName() != "fedmesh_controlplane_webview_nodes_unread" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if v := m.GetGauge().GetValue(); v != 0 {
					got[m.GetLabel()[0].GetValue()] = v
				}
			}
		}
		if want := map[string]float64{"pod_unknown": 1, "no_pod": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("fedmesh_controlplane_webview_nodes_unread %v, want %v", got, want)
		}
		return nil
	})
}

// servePage serves reg's metrics as a proxy's /stats/prometheus on a
// free port of host until the test ends.
func servePage(t *testing.T, host string, reg *prometheus.Registry) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	page := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	var served sync.WaitGroup
	served.Add(1)
	go func() { defer served.Done(); _ = page.Serve(ln) }()
	t.Cleanup(func() { _ = page.Close(); served.Wait() })
	return ln.Addr().(*net.TCPAddr)
}

// setPodIP writes p's status.podIP (and podIPs) as the kubelet does.
func setPodIP(ctx context.Context, t *testing.T, admin kube.Clients, p *corev1.Pod, ip string) *corev1.Pod {
	t.Helper()
	if _, err := netip.ParseAddr(ip); err != nil {
		t.Fatal(err)
	}
	p = p.DeepCopy()
	p.Status.PodIP = ip
	p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	out, err := admin.Kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("set the IP of pod %s: %v", p.Name, err)
	}
	return out
}

// kubeWebViewCP is a control plane of cluster east-1 in Kubernetes mode
// with its mesh (CA, xDS, web view) on, and the operator client of its
// admin port.
type kubeWebViewCP struct {
	srv      *controlplane.Server
	reg      *prometheus.Registry
	operator adminapi.Client
	xdsTLS   credentials.TransportCredentials
}

// startKubeWebViewCP starts the control plane as the control plane's
// ServiceAccount, with the web view reading sidecars' ready listeners on
// readyPort and gateways' admin ports on gatewayPort; it stops when the
// test ends.
func startKubeWebViewCP(t *testing.T, c *apiCluster, readyPort, gatewayPort int) *kubeWebViewCP {
	t.Helper()
	clients, err := kube.NewClients(asControlPlane(c))
	if err != nil {
		t.Fatal(err)
	}
	log := testLogger(t)
	src, err := kube.NewSource(kube.SourceConfig{Clients: clients, Cluster: "east-1", Region: "us-east", Zone: "a", Debounce: 20 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	reviewer, err := kube.NewTokenReviewer(clients.Kube)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if err := ca.InitRoot("fedmesh.test", filepath.Join(dir, "root")); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueClusterCA(filepath.Join(dir, "root"), "east-1", caDir, 0); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := controlplane.New(controlplane.Config{
		Cluster:      "east-1",
		Locality:     topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"},
		BindAddress:  "127.0.0.1",
		AdminAddress: "127.0.0.1:0",
		DataDir:      filepath.Join(dir, "data"),
		Source:       src,
		Store:        store.Config{ListenClientURLs: []string{"http://127.0.0.1:0"}},
		Mesh: &controlplane.MeshConfig{
			CADir:         caDir,
			SerfPort:      -1,
			XDSAddress:    "127.0.0.1:0",
			Profile:       membership.ProfileLocal,
			Authenticator: xds.TokenAuthenticator(reviewer.Verify),
			WebView: controlplane.WebViewConfig{
				Interval:         100 * time.Millisecond,
				Pods:             src.PodAddress,
				SidecarReadyPort: readyPort,
				GatewayAdminPort: gatewayPort,
			},
		},
		Logger:   log,
		Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane Run: %v", err)
		}
	})
	auth, err := ca.LoadAuthority(caDir)
	if err != nil {
		t.Fatal(err)
	}
	op, err := auth.IssueOperator("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	for _, r := range auth.TrustBundle() {
		roots.AddCert(r)
	}
	cp := &kubeWebViewCP{
		srv:      srv,
		reg:      reg,
		operator: adminapi.Client{TLS: identity.ClientConfig(identity.StaticCert(op.TLS), identity.StaticBundle(auth.Bundle()), identity.AuthorizeControlPlanes())},
		xdsTLS:   credentials.NewTLS(xdsclient.ServerTLSConfig(roots, auth.ControlPlaneID(), nil)),
	}
	poll.Until(t, 60*time.Second, "the control plane's admin and xDS listening", func() error {
		if srv.AdminURL() == "" || srv.XDSAddr() == "" {
			return errors.New("not yet")
		}
		return nil
	})
	return cp
}

// graph reads /debug/graph as the operator.
func (cp *kubeWebViewCP) graph(ctx context.Context) (webview.Graph, error) {
	c := cp.operator
	c.BaseURL = cp.srv.AdminURL()
	var g webview.Graph
	err := c.Get(ctx, webview.GraphPath, &g)
	return g, err
}

// runNode holds an xDS stream as a proxy of pod does: role, node id,
// the pod's namespace, ServiceAccount and name as its claims, and token.
// It stops when the test ends.
func (cp *kubeWebViewCP) runNode(t *testing.T, role, id, pod, namespace, serviceAccount, token string) {
	t.Helper()
	meta, err := structpb.NewStruct(map[string]any{
		naming.MetaCluster:        "east-1",
		naming.MetaRole:           role,
		naming.MetaNamespace:      namespace,
		naming.MetaServiceAccount: serviceAccount,
		naming.MetaWorkload:       pod,
		naming.MetaToken:          token,
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := xdsclient.New(xdsclient.Config{
		Target:      cp.srv.XDSAddr(),
		Credentials: cp.xdsTLS,
		Node: &corev3.Node{
			Id:       id,
			Cluster:  "east-1",
			Locality: &corev3.Locality{Region: "us-east", Zone: "a", SubZone: "east-1"},
			Metadata: meta,
		},
		Types:          []string{xdsclient.ClusterType},
		Handler:        xdsclient.HandlerFunc(func(xdsclient.Update) error { return nil }),
		InitialBackoff: 100 * time.Millisecond,
		MaxBackoff:     time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("xDS client of %s: %v", pod, err)
		}
	})
}
