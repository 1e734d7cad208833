package gwprobe

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/federation/proof/prooftest"
	"github.com/fedmesh/fedmesh/gateway"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// dataPlane is a peer cluster's data plane: a real east-west gateway
// routing one exported service port to a workload server that does what
// a sidecar's inbound listener does at the TLS level (identity.ServerConfig
// with a workload SVID, clients must be workloads, refusals counted).
type dataPlane struct {
	gw      *gateway.Gateway
	gwLn    net.Listener
	wlLn    net.Listener
	sp      naming.ServicePort
	refused atomic.Int64 // handshakes the workload refused after checking the client
	wg      sync.WaitGroup
}

const workloadID = "spiffe://" + prooftest.TrustDomain + "/ns/demo/sa/echo"

func startDataPlane(t *testing.T, cluster string) *dataPlane {
	t.Helper()
	pki := prooftest.Default(t)
	cert := pki.Cert(t, cluster, workloadID)
	d := &dataPlane{sp: naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}}
	var err error
	if d.wlLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	srv := identity.OnRefuse(identity.ServerConfig(identity.StaticCert(&cert), identity.StaticBundle(pki.Bundle()), identity.AuthorizeWorkloads()),
		func(error) { d.refused.Add(1) })
	srv.NextProtos = []string{"h2", "http/1.1", "fedmesh-tcp"}
	d.wg.Go(func() {
		for {
			c, err := d.wlLn.Accept()
			if err != nil {
				return
			}
			d.wg.Go(func() {
				defer c.Close()
				tc := tls.Server(c, srv)
				if tc.HandshakeContext(context.Background()) == nil {
					_, _ = io.Copy(io.Discard, tc)
				}
			})
		}
	})
	d.gw, err = gateway.New(gateway.Config{Cluster: cluster, Logger: slog.New(slog.DiscardHandler)}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d.route(t, true)
	if d.gwLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	d.wg.Go(func() {
		if err := d.gw.Serve(d.gwLn); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("gateway serve: %v", err)
		}
	})
	t.Cleanup(d.stop)
	return d
}

// route routes the service to the workload (healthy or not).
func (d *dataPlane) route(t *testing.T, healthy bool) {
	t.Helper()
	if err := d.gw.SetRoutes([]gateway.Route{{Service: d.sp, Endpoints: []gateway.Endpoint{{Address: d.wlLn.Addr().String(), Healthy: healthy}}}}); err != nil {
		t.Fatal(err)
	}
}

func (d *dataPlane) gateway() string { return d.gwLn.Addr().String() }

// stopGateway stops the gateway: its address refuses connections.
func (d *dataPlane) stopGateway() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.gw.Shutdown(ctx)
	_ = d.gwLn.Close()
}

func (d *dataPlane) stop() {
	d.stopGateway()
	_ = d.wlLn.Close()
	d.wg.Wait()
}
