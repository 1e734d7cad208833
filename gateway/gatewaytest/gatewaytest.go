// Package gatewaytest gives tests a cluster's data plane to probe: a
// real east-west gateway routing one exported service port to a workload
// server that does what a sidecar's inbound listener does at the TLS
// level (identity.ServerConfig with a workload SVID, clients must be
// workloads, refusals counted).
package gatewaytest

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
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/fedmesh/fedmesh/gateway"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// DataPlane is a peer cluster's gateway and one workload behind it.
type DataPlane struct {
	// Service is the exported service port the gateway routes.
	Service naming.ServicePort
	// Refused counts handshakes the workload refused after checking the
	// client.
	Refused atomic.Int64

	gw   *gateway.Gateway
	gwLn net.Listener
	wlLn net.Listener
	wg   sync.WaitGroup
}

// Start starts cluster's data plane: a workload presenting cert, which
// accepts workload clients of bundle, behind a gateway on a free loopback
// port, both stopped when the test ends.
func Start(t *testing.T, cluster string, cert *tls.Certificate, bundle identity.BundleSource) *DataPlane {
	t.Helper()
	d := &DataPlane{Service: naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}}
	var err error
	if d.wlLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	srv := identity.OnRefuse(identity.ServerConfig(identity.StaticCert(cert), bundle, identity.AuthorizeWorkloads()),
		func(error) { d.Refused.Add(1) })
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
	d.StartGateway(t, cluster, "127.0.0.1:0")
	t.Cleanup(d.stop)
	return d
}

// StartGateway starts the gateway on addr.
func (d *DataPlane) StartGateway(t *testing.T, cluster, addr string) {
	t.Helper()
	var err error
	d.gw, err = gateway.New(gateway.Config{Cluster: cluster, Logger: slog.New(slog.DiscardHandler)}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d.Route(t, true)
	if d.gwLn, err = net.Listen("tcp", addr); err != nil {
		t.Fatal(err)
	}
	d.wg.Go(func() {
		if err := d.gw.Serve(d.gwLn); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("gateway serve: %v", err)
		}
	})
}

// Route routes the service to the workload (healthy or not).
func (d *DataPlane) Route(t *testing.T, healthy bool) {
	t.Helper()
	if err := d.gw.SetRoutes([]gateway.Route{{Service: d.Service, Endpoints: []gateway.Endpoint{{Address: d.wlLn.Addr().String(), Healthy: healthy}}}}); err != nil {
		t.Fatal(err)
	}
}

// Gateway is the gateway's address.
func (d *DataPlane) Gateway() string { return d.gwLn.Addr().String() }

// StopGateway stops the gateway: its address refuses connections.
func (d *DataPlane) StopGateway() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.gw.Shutdown(ctx)
	_ = d.gwLn.Close()
}

func (d *DataPlane) stop() {
	d.StopGateway()
	_ = d.wlLn.Close()
	d.wg.Wait()
}

// SetIdentity gives the gateway its own SVID and trust bundle, as SDS
// does, so that it answers probes of the gateway itself.
func (d *DataPlane) SetIdentity(t *testing.T, cert *tls.Certificate, bundle *x509bundle.Bundle) {
	t.Helper()
	if err := d.gw.SetIdentity(cert, bundle); err != nil {
		t.Fatal(err)
	}
}

// Unroute leaves the gateway with no route: the cluster exports nothing.
func (d *DataPlane) Unroute(t *testing.T) {
	t.Helper()
	if err := d.gw.SetRoutes(nil); err != nil {
		t.Fatal(err)
	}
}
