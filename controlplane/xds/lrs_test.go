package xds

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// lrsHarness is an xDS server and an LRS server on one gRPC server over
// TLS with a control-plane SVID, as the control plane wires them.
type lrsHarness struct {
	srv   *LRSServer
	addr  string
	creds credentials.TransportCredentials

	mu      sync.Mutex // guards the following
	reports []LoadReport
	gone    []string
}

func startLRS(t *testing.T) *lrsHarness {
	t.Helper()
	ca := newTestCA(t, testTD)
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	xs, err := NewServer(Config{
		Cluster: "east-1", Settings: DefaultSettings(testTD), Authenticator: TokenAuthenticator(verifyToken),
		Issuer: ca, Debounce: 10 * time.Millisecond, Logger: log, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &lrsHarness{}
	h.srv, err = NewLRSServer(LRSConfig{
		Cluster: "east-1", Authenticator: TokenAuthenticator(verifyToken), Interval: 50 * time.Millisecond,
		OnLoad: func(r LoadReport) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.reports = append(h.reports, r)
		},
		OnGone: func(node string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.gone = append(h.gone, node)
		},
		Logger: log, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, clientTLS := ca.controlPlaneTLS(t, "east-1")
	g := grpc.NewServer(append(xs.ServerOptions(), grpc.Creds(credentials.NewTLS(serverTLS)))...)
	xs.Register(g)
	h.srv.Register(g)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(xs.Listener(lis)) }()
	go func() { defer wg.Done(); _ = xs.Run(ctx) }()
	t.Cleanup(func() { cancel(); g.Stop(); wg.Wait() })
	if err := xs.UpdateView(testView("east-1")); err != nil {
		t.Fatal(err)
	}
	h.addr, h.creds = lis.Addr().String(), credentials.NewTLS(clientTLS)
	return h
}

// admitted sums what the server received for quota from node.
func (h *lrsHarness) admitted(node, quota string) (admitted, refused uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.reports {
		if r.Node == node && r.Load.Quota == quota {
			admitted += r.Load.Admitted
			refused += r.Load.Refused
		}
	}
	return admitted, refused
}

func (h *lrsHarness) goneNodes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.gone...)
}

// TestLoadReportsFromClient: the sidecar's xDS client reports monotonic
// counts as LRS deltas; the control plane's sums are the counts.
func TestLoadReportsFromClient(t *testing.T) {
	h := startLRS(t)
	var admitted, refused atomic.Uint64
	n := clientNode()
	c, err := xdsclient.New(xdsclient.Config{
		Target: h.addr, Credentials: h.creds, Node: pbNode(n),
		Handler: xdsclient.HandlerFunc(func(xdsclient.Update) error { return nil }),
		LoadReports: func() []xdsclient.LoadCount {
			return []xdsclient.LoadCount{
				{Quota: "demo/limits/shared", Admitted: admitted.Load(), Refused: refused.Load()},
				{Quota: "demo/limits/idle"},
			}
		},
	}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for i := range 5 {
		admitted.Add(10)
		refused.Add(uint64(i))
		wantA, wantR := admitted.Load(), refused.Load()
		poll.True(t, 10*time.Second, "the control plane's sums reach the client's counts", func() bool {
			a, r := h.admitted(n.ID, "demo/limits/shared")
			return a == wantA && r == wantR
		})
	}
	if a, r := h.admitted(n.ID, "demo/limits/idle"); a != 0 || r != 0 {
		t.Errorf("idle quota: admitted %d refused %d, want 0 0", a, r)
	}
	h.mu.Lock()
	for _, r := range h.reports {
		if r.Load.Interval <= 0 {
			t.Errorf("report with interval %v", r.Load.Interval)
		}
	}
	h.mu.Unlock()
	cancel()
	<-done
	poll.True(t, 10*time.Second, "OnGone after the client left", func() bool { return len(h.goneNodes()) == 1 })
	if got := h.goneNodes()[0]; got != n.ID {
		t.Errorf("OnGone(%q), want %q", got, n.ID)
	}
}

func dialLRS(t *testing.T, h *lrsHarness) lrsv3.LoadReportingService_StreamLoadStatsClient {
	t.Helper()
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(h.creds))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(func() { cancel(); conn.Close() })
	st, err := lrsv3.NewLoadReportingServiceClient(conn).StreamLoadStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestLoadReportRefused: a malformed report is counted and dropped, the
// stream stays up, and the next good report is taken.
func TestLoadReportRefused(t *testing.T) {
	h := startLRS(t)
	st := dialLRS(t, h)
	n := clientNode()
	if err := st.Send(&lrsv3.LoadStatsRequest{Node: pbNode(n)}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetSendAllClusters() || resp.GetLoadReportingInterval().AsDuration() != 50*time.Millisecond {
		t.Errorf("answer %v, want send_all_clusters and the configured interval", resp)
	}
	bad := &endpointv3.ClusterStats{ClusterName: xdsresource.QuotaLoadPrefix + "demo/only-two", LoadReportInterval: durationpb.New(time.Second)}
	other := &endpointv3.ClusterStats{ClusterName: "outbound|8080||echo.demo", LoadReportInterval: durationpb.New(time.Second)}
	if err := st.Send(&lrsv3.LoadStatsRequest{ClusterStats: []*endpointv3.ClusterStats{bad, other}}); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "the bad report is counted", func() bool {
		return counterValue(t, h.srv.rejected.WithLabelValues("bad_report")) == 1
	})
	good := xdsresource.QuotaClusterStats(xdsresource.QuotaLoad{Quota: "demo/limits/shared", Admitted: 7, Interval: time.Second})
	if err := st.Send(&lrsv3.LoadStatsRequest{ClusterStats: []*endpointv3.ClusterStats{good}}); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "the good report after the bad one is taken", func() bool {
		a, _ := h.admitted(n.ID, "demo/limits/shared")
		return a == 7
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.reports) != 1 {
		t.Errorf("reports %v, want only the good one", h.reports)
	}
}

// TestLoadStreamsRefused: streams that do not authenticate are ended with
// the reason, counted, and report nothing.
func TestLoadStreamsRefused(t *testing.T) {
	tests := []struct {
		name   string
		node   func() Node
		code   codes.Code
		reason string
	}{
		{"bad token", func() Node { n := clientNode(); n.Token = "nope"; return n }, codes.Unauthenticated, "unauthenticated"},
		{"other cluster", func() Node { n := clientNode(); n.Cluster, n.Locality.Cluster = "west-1", "west-1"; return n }, codes.PermissionDenied, "wrong_cluster"},
		{"no node", func() Node { return Node{} }, codes.InvalidArgument, "bad_node"},
		{"claims another identity", func() Node { n := clientNode(); n.Token = "tok-echo"; return n }, codes.PermissionDenied, "identity_mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startLRS(t)
			st := dialLRS(t, h)
			good := xdsresource.QuotaClusterStats(xdsresource.QuotaLoad{Quota: "demo/limits/shared", Admitted: 7, Interval: time.Second})
			if err := st.Send(&lrsv3.LoadStatsRequest{Node: pbNode(tt.node()), ClusterStats: []*endpointv3.ClusterStats{good}}); err != nil {
				t.Fatal(err)
			}
			_, err := st.Recv()
			if status.Code(err) != tt.code {
				t.Fatalf("stream ended with %v, want code %v", err, tt.code)
			}
			if got := counterValue(t, h.srv.rejected.WithLabelValues(tt.reason)); got != 1 {
				t.Errorf("rejected{reason=%q} = %v, want 1", tt.reason, got)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.reports) != 0 {
				t.Errorf("a refused stream reported %v", h.reports)
			}
		})
	}
}
