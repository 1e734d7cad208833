package xds

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// openStream opens an ADS stream for n on conn and returns it with the
// answer to a CDS request: the first response or the error that ended
// the stream.
func openStream(ctx context.Context, conn *grpc.ClientConn, n Node) (*discoverygrpc.DiscoveryResponse, error) {
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&discoverygrpc.DiscoveryRequest{Node: pbNode(n), TypeUrl: resourcev3.ClusterType}); err != nil {
		_, err = st.Recv() // the stream's real error
		return nil, err
	}
	return st.Recv()
}

func (h *harness) newConn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(h.creds))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func gaugeValue(t testing.TB, h *harness) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "fedmesh_xds_connections" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("fedmesh_xds_connections not registered")
	return 0
}

// TestConnectionCap: with a cap of 3, three authenticated connections are
// served, every further one is closed before anything is sent and
// counted, and a slot freed by a closed connection is given to a new one.
func TestConnectionCap(t *testing.T) {
	const limit = 3
	h := startServerWith(t, true, func(c *Config) { c.Limits.MaxConnections = limit })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var held []*grpc.ClientConn
	for i := range limit {
		conn := h.newConn(t)
		defer conn.Close()
		n := clientNode()
		n.ID = "sidecar~held-" + strconv.Itoa(i)
		if _, err := openStream(ctx, conn, n); err != nil {
			t.Fatalf("connection %d under the cap: %v", i, err)
		}
		held = append(held, conn)
	}
	if got := gaugeValue(t, h); got != limit {
		t.Fatalf("fedmesh_xds_connections = %v, want %d", got, limit)
	}

	extra := h.newConn(t)
	defer extra.Close()
	n := clientNode()
	n.ID = "sidecar~extra"
	const attempts = 5
	for i := range attempts {
		resp, err := openStream(ctx, extra, n)
		if err == nil {
			t.Fatalf("attempt %d past the cap was served: %d resources", i, len(resp.GetResources()))
		}
		if code := status.Code(err); code != codes.Unavailable {
			t.Fatalf("attempt %d past the cap: %v, want Unavailable", i, err)
		}
	}
	if got := counterValue(t, h.srv.metrics.connsClosed.WithLabelValues("limit")); got < 1 {
		t.Errorf("connections_closed{reason=limit} = %v, want at least 1", got)
	}
	if got := gaugeValue(t, h); got != limit {
		t.Errorf("fedmesh_xds_connections = %v past the cap, want %d", got, limit)
	}

	// A held connection goes: the next attempt gets its slot.
	held[0].Close()
	poll.True(t, 10*time.Second, "a freed slot served", func() bool {
		_, err := openStream(ctx, extra, n)
		return err == nil
	})
}

// TestStreamCap: the server announces MAX_CONCURRENT_STREAMS and refuses
// a stream past it with REFUSED_STREAM even from a client that ignores
// the setting (raw HTTP/2 frames over the real TLS listener).
func TestStreamCap(t *testing.T) {
	const limit = 4
	h := startServerWith(t, true, func(c *Config) {
		c.Limits.MaxStreamsPerConnection = limit
		c.Limits.AuthTimeout = time.Minute // the streams here never authenticate
	})
	_, clientTLS := h.ca.controlPlaneTLS(t, "east-1")
	clientTLS.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", h.addr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A safety net for a broken server, not a timing assertion.
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}

	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	headers := func() []byte {
		hdr.Reset()
		for _, f := range [][2]string{
			{":method", "POST"}, {":scheme", "https"}, {":authority", h.addr},
			{":path", "/" + discoverygrpc.AggregatedDiscoveryService_ServiceDesc.ServiceName + "/StreamAggregatedResources"},
			{"content-type", "application/grpc"}, {"te", "trailers"},
		} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		return hdr.Bytes()
	}

	announced := uint32(0)
	refused := map[uint32]http2.ErrCode{}
	sent := false
	last := uint32(2*limit + 1) // client streams are odd: 1, 3, ... the (limit+1)th
	for frames := 0; frames < 100 && refused[last] == 0; frames++ {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames: %v (refused so far: %v)", err, refused)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				announced = v
			}
			if err := fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			if !sent {
				sent = true
				for id := uint32(1); id <= last; id += 2 {
					if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: headers(), EndHeaders: true}); err != nil {
						t.Fatal(err)
					}
				}
			}
		case *http2.RSTStreamFrame:
			refused[f.StreamID] = f.ErrCode
		}
	}
	if announced != limit {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", announced, limit)
	}
	want := map[uint32]http2.ErrCode{last: http2.ErrCodeRefusedStream}
	if diff := cmp.Diff(want, refused); diff != "" {
		t.Errorf("streams reset (-want +got):\n%s", diff)
	}
}

// TestUnauthenticatedConnectionsClosed: a silent TCP socket, a stream that
// never sends its first request and a stream whose first request fails
// authentication all get nothing, and their connections are closed after
// the auth timeout, while an authenticated connection older than them
// stays served.
func TestUnauthenticatedConnectionsClosed(t *testing.T) {
	h := startServerWith(t, true, func(c *Config) { c.Limits.AuthTimeout = 300 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	good := h.dial(t, clientNode())
	good.request(resourcev3.ClusterType, nil, "", "")
	first, err := good.recv()
	if err != nil {
		t.Fatal(err)
	}

	// A bare socket that never speaks.
	raw, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetReadDeadline(time.Now().Add(20 * time.Second)) // safety net only
	n, err := raw.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) && !isReset(err) {
		t.Errorf("silent socket: read %d bytes, err %v; want the server to close it", n, err)
	}

	// A TLS connection whose stream never sends a request.
	idle := h.newConn(t)
	defer idle.Close()
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(idle).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := st.Recv(); err == nil {
		t.Errorf("a stream that sent nothing received %d resources", len(resp.GetResources()))
	} else if code := status.Code(err); code != codes.Unavailable {
		t.Errorf("silent stream ended with %v, want Unavailable (connection closed)", err)
	}

	// A stream with a forged token: refused, and its connection closed.
	forged := h.newConn(t)
	defer forged.Close()
	bad := clientNode()
	bad.Token = "forged"
	if _, err := openStream(ctx, forged, bad); status.Code(err) != codes.Unauthenticated {
		t.Errorf("forged token: %v, want Unauthenticated", err)
	}
	poll.True(t, 10*time.Second, "three connections closed for auth timeout", func() bool {
		return counterValue(t, h.srv.metrics.connsClosed.WithLabelValues("auth_timeout")) >= 3
	})

	// The authenticated connection, accepted before all of them, is still
	// served.
	good.request(resourcev3.ClusterType, nil, first.GetVersionInfo(), first.GetNonce())
	good.request(resourcev3.EndpointType, []string{echoCluster}, "", "")
	if _, err := good.recv(); err != nil {
		t.Errorf("authenticated connection after the others' timeout: %v", err)
	}
	if got := gaugeValue(t, h); got != 1 {
		t.Errorf("fedmesh_xds_connections = %v, want 1 (the authenticated one)", got)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// TestGatewayMustProveRole: role gateway is granted only to a gateway
// identity that claims itself; a workload's valid token claiming the role
// gets nothing.
func TestGatewayMustProveRole(t *testing.T) {
	gw := func(tok, ns, sa string) Node {
		return Node{ID: "gateway~127.0.0.11:15443~east-1", Role: naming.RoleGateway, Cluster: "east-1",
			Namespace: ns, ServiceAccount: sa, Workload: "gateway", Token: tok, Locality: locEast1}
	}
	tests := []struct {
		name     string
		node     Node
		gateways []Identity
		code     codes.Code
	}{
		{name: "gateway token", node: gw("tok-gw", "fedmesh-system", "gateway"), code: codes.OK},
		{name: "workload token claiming its own identity", node: gw("tok-client", "demo", "client"), code: codes.PermissionDenied},
		{name: "workload token claiming the gateway identity", node: gw("tok-client", "fedmesh-system", "gateway"), code: codes.PermissionDenied},
		{name: "gateway token claiming nothing", node: gw("tok-gw", "", ""), code: codes.PermissionDenied},
		{name: "gateway token, not a configured gateway", node: gw("tok-gw", "fedmesh-system", "gateway"),
			gateways: []Identity{{Namespace: "fedmesh-system", ServiceAccount: "fedmesh-gateway"}}, code: codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startServerWith(t, true, func(c *Config) { c.GatewayIdentities = tt.gateways })
			a := h.dial(t, tt.node)
			a.request(resourcev3.ListenerType, nil, "", "")
			resp, err := a.recv()
			if diff := cmp.Diff(tt.code.String(), status.Code(err).String()); diff != "" {
				t.Fatalf("stream error code (-want +got):\n%s\nerr: %v", diff, err)
			}
			if tt.code != codes.OK {
				if got := counterValue(t, h.srv.metrics.rejected.WithLabelValues("identity_mismatch")); got != 1 {
					t.Errorf("rejected{reason=identity_mismatch} = %v, want 1", got)
				}
				return
			}
			if names := responseNames(t, resp); !cmp.Equal(names, []string{naming.GatewayListener}) {
				t.Errorf("gateway listeners %v, want [%s]", names, naming.GatewayListener)
			}
		})
	}
}
