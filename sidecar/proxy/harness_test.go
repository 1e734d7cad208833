package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const td = "fed.test"

func sp(name string, port int32) naming.ServicePort {
	return naming.ServicePort{Namespace: "demo", Name: name, Port: port}
}

// configure applies xDS resources, one type after another, to a fresh
// config.Builder and installs the result in p.
func configure(t *testing.T, ca *meshtest.CA, p *proxy.Proxy, res map[string][]types.Resource) {
	t.Helper()
	b := config.NewBuilder(ca.TD)
	var snap *config.Snapshot
	for _, typ := range []string{xdsclient.ClusterType, xdsclient.EndpointType, xdsclient.ListenerType, xdsclient.RouteType, xdsclient.SecretType} {
		m := map[string]proto.Message{}
		for _, r := range res[typ] {
			switch v := r.(type) {
			case interface{ GetClusterName() string }:
				m[v.GetClusterName()] = r
			case interface{ GetName() string }:
				m[v.GetName()] = r
			}
		}
		var err error
		if snap, err = b.Apply(xdsclient.Update{TypeURL: typ, Version: "1", Resources: m}); err != nil {
			t.Fatalf("apply %s: %v", typ, err)
		}
	}
	if err := p.Update(snap); err != nil {
		t.Fatal(err)
	}
}

// serve runs fn until the test ends, then cancels it and waits.
func serve(t *testing.T, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// app is a real HTTP/1.1 server on loopback that counts its requests.
type app struct {
	name string
	addr string
	hits atomic.Int64
}

// startApp serves h (nil: answer 200 with the app's name) until the test
// ends. X-App names the app in every response.
func startApp(t *testing.T, name string, h http.HandlerFunc) *app {
	t.Helper()
	l := listen(t)
	a := &app{name: name, addr: l.Addr().String()}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, name) }
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		w.Header().Set("X-App", name)
		h(w, r)
	})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		wg.Wait()
	})
	return a
}

// workload is a Proxy serving inbound mutual TLS in front of one app.
type workload struct {
	p    *proxy.Proxy
	reg  *prometheus.Registry
	addr string // inbound listener
	id   string
}

// startWorkload runs the inbound side of a workload with the SPIFFE ID of
// demo/sa for the service port s, in front of a.
func startWorkload(t *testing.T, ca *meshtest.CA, sa string, s naming.ServicePort, a *app) *workload {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := proxy.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{Cluster: "east-1", Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	w := &workload{p: p, reg: reg, addr: l.Addr().String(), id: ca.Workload("demo", sa)}
	_, certPEM, keyPEM := ca.Issue(t, meshtest.SVID{URIs: []string{w.id}})
	in := meshtest.Inbound(w.addr, meshtest.InboundPort{SP: s, App: a.addr, HTTP: true})
	configure(t, ca, p, map[string][]types.Resource{
		xdsclient.ListenerType: in[:1],
		xdsclient.ClusterType:  in[1:],
		xdsclient.SecretType:   meshtest.Secrets(certPEM, keyPEM, ca.PEM()),
	})
	serve(t, func(ctx context.Context) error { return p.ServeInbound(ctx, l) })
	t.Cleanup(p.Close)
	return w
}

// service is one outbound service of a client.
type service struct {
	sp      naming.ServicePort
	opts    meshtest.ClusterOpts
	eps     []meshtest.Endpoint
	retries uint32
	timeout time.Duration // 0: 10s
}

// client is the outbound side of a workload demo/client.
type client struct {
	p    *proxy.Proxy
	reg  *prometheus.Registry
	addr string // the HTTP proxy listener
	id   string
}

func startClient(t *testing.T, ca *meshtest.CA, svcs ...service) *client {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := proxy.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	bm, err := balancer.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{Cluster: "east-1", Metrics: m, BalancerMetrics: bm})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{p: p, reg: reg, id: ca.Workload("demo", "client")}
	c.configure(t, ca, svcs...)
	l := listen(t)
	c.addr = l.Addr().String()
	serve(t, func(ctx context.Context) error { return p.ServeOutboundHTTP(ctx, l) })
	t.Cleanup(p.Close)
	return c
}

// configure gives the client a new certificate and exactly svcs.
func (c *client) configure(t *testing.T, ca *meshtest.CA, svcs ...service) {
	t.Helper()
	_, certPEM, keyPEM := ca.Issue(t, meshtest.SVID{URIs: []string{c.id}})
	res := map[string][]types.Resource{xdsclient.SecretType: meshtest.Secrets(certPEM, keyPEM, ca.PEM())}
	byPort := map[int32][]naming.ServicePort{}
	timeouts := map[int32]time.Duration{}
	retries := map[int32]uint32{}
	for _, s := range svcs {
		http := s.opts.HTTP
		res[xdsclient.ClusterType] = append(res[xdsclient.ClusterType], meshtest.OutboundCluster(s.sp, s.opts))
		res[xdsclient.EndpointType] = append(res[xdsclient.EndpointType], meshtest.Assignment(s.sp, s.eps...))
		res[xdsclient.ListenerType] = append(res[xdsclient.ListenerType], meshtest.OutboundListener(s.sp, http))
		if http {
			byPort[s.sp.Port] = append(byPort[s.sp.Port], s.sp)
			timeouts[s.sp.Port] = s.timeout
			retries[s.sp.Port] = s.retries
		}
	}
	for port, sps := range byPort {
		to := timeouts[port]
		if to == 0 {
			to = 10 * time.Second
		}
		res[xdsclient.RouteType] = append(res[xdsclient.RouteType], meshtest.Routes(port, to, retries[port], sps...))
	}
	configure(t, ca, c.p, res)
}

// servePort serves the service-port listener of port and returns its
// address.
func (c *client) servePort(t *testing.T, port int32) string {
	t.Helper()
	l := listen(t)
	serve(t, func(ctx context.Context) error { return c.p.ServePort(ctx, l, port) })
	return l.Addr().String()
}

// http returns a client that sends requests through the proxy listener,
// as an app with HTTP_PROXY set does.
func (c *client) http(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: c.addr}), DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// counter sums the series of a counter family whose labels include want.
func counter(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	return meshtest.Counter(t, reg, name, want)
}

// result is what a client saw of one response.
type result struct {
	Code  int
	App   string // X-App
	Error string // X-Fedmesh-Error
	Body  string
}

func do(t *testing.T, c *http.Client, req *http.Request) result {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", req.Method, req.URL, err)
	}
	return result{Code: resp.StatusCode, App: resp.Header.Get("X-App"), Error: resp.Header.Get("X-Fedmesh-Error"), Body: string(b)}
}

func get(t *testing.T, c *http.Client, u string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, c, req)
}

func svcURL(s naming.ServicePort) string {
	return "http://" + s.Name + "." + s.Namespace + ":" + strconv.Itoa(int(s.Port)) + "/"
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
