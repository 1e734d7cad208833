package sidecar_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient/xdstest"
	"github.com/fedmesh/fedmesh/sidecar"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
	"github.com/fedmesh/fedmesh/sidecar/tracing"
)

const td = "fed.test"

// mesh is one control plane (a real go-control-plane ADS server over
// mTLS-capable TLS) and the CA of the federation.
type mesh struct {
	t    testing.TB
	ca   *meshtest.CA
	xds  *xdstest.Server
	cpID spiffeid.ID
	ver  int
}

func newMesh(t testing.TB) *mesh {
	t.Helper()
	ca := meshtest.NewCA(t, td)
	cpID := spiffeid.RequireFromString("spiffe://" + td + "/fedmesh/cluster/east-1")
	cpCert, _, _ := ca.Issue(t, meshtest.SVID{URIs: []string{cpID.String()}})
	srvTLS := identity.ServerConfigOptionalClient(identity.StaticCert(cpCert), identity.StaticBundle(ca.Bundle()), nil)
	return &mesh{t: t, ca: ca, xds: xdstest.New(t, srvTLS), cpID: cpID}
}

// set publishes resources to one node.
func (m *mesh) set(node string, res map[string][]types.Resource) {
	m.t.Helper()
	m.ver++
	m.xds.Set("v"+strconv.Itoa(m.ver), res, node)
}

// workload is a running sidecar.
type workload struct {
	sc     *sidecar.Sidecar
	reg    *prometheus.Registry
	id     string
	cancel context.CancelFunc
	done   chan struct{}
	// certPEM, keyPEM are its SVID for SDS.
	certPEM, keyPEM []byte
}

type wopts struct {
	node, ns, sa, workload string
	inbound                string // "" none, else address to bind ("127.0.0.1:0")
	serviceIP              string
	dns                    bool
	dns6                   bool      // with dns: Config.DNSAddrIPv6 on [::1]
	clusterSetDNS          bool      // Config.DNSClusterSetIP
	audit                  io.Writer // the audit sink; nil none
	accessLog              io.Writer // the access log sink, logging every request; nil none
	tracing                *tracing.Config
	dataDir                string // Config.DataDir; "" none
}

func (m *mesh) start(o wopts) *workload {
	m.t.Helper()
	id := m.ca.Workload(o.ns, o.sa)
	_, certPEM, keyPEM := m.ca.Issue(m.t, meshtest.SVID{URIs: []string{id}})
	reg := prometheus.NewPedanticRegistry()
	cfg := sidecar.Config{
		ControlPlane:   m.xds.Addr(),
		ControlPlaneID: m.cpID,
		RootBundle:     m.ca.Bundle(),
		TrustDomain:    m.ca.TD,
		NodeID:         o.node,
		Token:          "token-" + o.node,
		Cluster:        "east-1",
		Namespace:      o.ns,
		ServiceAccount: o.sa,
		Workload:       o.workload,
		OutboundAddr:   "127.0.0.1:0",
		AdminAddr:      "127.0.0.1:0",
		ReadyAddr:      "127.0.0.1:0",
		InboundAddr:    o.inbound,
		ServiceIP:      o.serviceIP,
		Registerer:     reg,
		Gatherer:       reg,
		XDSBackoff:     20 * time.Millisecond,
		AuditSink:      o.audit,
		Tracing:        o.tracing,
		DataDir:        o.dataDir,
		RestoreAfter:   200 * time.Millisecond,
	}
	if o.accessLog != nil {
		cfg.AccessLogSink, cfg.AccessLogMode = o.accessLog, proxy.AccessLogAll
	}
	if o.dns {
		cfg.DNSAddr = "127.0.0.1:0"
		if o.dns6 {
			cfg.DNSAddrIPv6 = "[::1]:0"
		}
	}
	cfg.DNSClusterSetIP = o.clusterSetDNS
	sc, err := sidecar.New(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{sc: sc, reg: reg, id: id, cancel: cancel, done: make(chan struct{}), certPEM: certPEM, keyPEM: keyPEM}
	go func() {
		defer close(w.done)
		if err := sc.Run(ctx); err != nil {
			m.t.Errorf("sidecar %s: %v", o.node, err)
		}
	}()
	m.t.Cleanup(w.stop)
	return w
}

func (w *workload) stop() {
	w.cancel()
	<-w.done
}

func (w *workload) secrets(ca *meshtest.CA) []types.Resource {
	return meshtest.Secrets(w.certPEM, w.keyPEM, ca.PEM())
}

// ready waits until the sidecar's admin /ready answers 200.
func (w *workload) ready(t testing.TB) {
	t.Helper()
	poll.True(t, 30*time.Second, "sidecar ready", func() bool {
		resp, err := http.Get("http://" + w.sc.AdminAddr() + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// counter sums a counter family of the workload's registry over the
// series whose labels include want.
func (w *workload) counter(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	return meshtest.Counter(t, w.reg, name, want)
}

// proxyClient sends requests through the sidecar's HTTP proxy listener,
// as an app with HTTP_PROXY set does.
func proxyClient(w *workload) *http.Client {
	u := &url.URL{Scheme: "http", Host: w.sc.OutboundAddr()}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 16}, Timeout: 20 * time.Second}
}

func get(c *http.Client, u string) (int, string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// svc names the test's service ports.
func svc(name string, port int32) naming.ServicePort {
	return naming.ServicePort{Namespace: "demo", Name: name, Port: port}
}

func rt(m map[string][]types.Resource, typ string, r ...types.Resource) {
	m[typ] = append(m[typ], r...)
}

var (
	cdsT = resourcev3.ClusterType
	edsT = resourcev3.EndpointType
	ldsT = resourcev3.ListenerType
	rdsT = resourcev3.RouteType
	sdsT = resourcev3.SecretType
)

// tunnel opens a CONNECT tunnel to target through w's outbound listener,
// as an app with HTTPS_PROXY set does, and returns the connection, with
// a deadline of 20 seconds for what follows, and its reader. The caller
// closes the connection.
func tunnel(t testing.TB, w *workload, target string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", w.sc.OutboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		conn.Close()
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn, br
}

// grpcConn dials service echo-grpc.demo on port through w's service
// listener for it; the connection is closed when the test ends.
func grpcConn(t testing.TB, w *workload, port int32) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+w.sc.ServiceAddr(port),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("echo-grpc.demo.svc.clusterset.local:"+strconv.Itoa(int(port))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
