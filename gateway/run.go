package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
)

// newXDSClient builds the client that feeds the gateway its routes, as
// node gateway~LISTENADDR~CLUSTER of role gateway.
func (g *Gateway) newXDSClient(reg prometheus.Registerer) (*xdsclient.Client, error) {
	c := g.cfg
	meta, err := structpb.NewStruct(map[string]any{
		naming.MetaCluster:        c.Cluster,
		naming.MetaRole:           naming.RoleGateway,
		naming.MetaNamespace:      c.Namespace,
		naming.MetaServiceAccount: c.ServiceAccount,
		naming.MetaWorkload:       c.Workload,
		naming.MetaToken:          c.Token,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: node metadata: %w", err)
	}
	id := c.NodeID
	if id == "" {
		id = naming.RoleGateway + "~" + c.ListenAddr + "~" + c.Cluster
	}
	xcfg := xdsclient.Config{
		Target: c.ControlPlane,
		Node: &corev3.Node{
			Id:       id,
			Cluster:  c.Cluster,
			Locality: &corev3.Locality{Region: c.Locality.Region, Zone: c.Locality.Zone, SubZone: c.Cluster},
			Metadata: meta,
		},
		TokenFile:      c.TokenFile,
		Types:          XDSTypes,
		Handler:        NewXDSHandler(g),
		Logger:         c.Logger,
		InitialBackoff: c.XDSBackoff,
		RestoreAfter:   c.RestoreAfter,
	}
	if c.DataDir != "" {
		xcfg.DataDir = filepath.Join(c.DataDir, "xds")
	}
	if c.InsecureControlPlane {
		xcfg.Insecure = true
	} else {
		// The bundle from SDS once it came, so that a reconnect after a
		// root rotation trusts the new root (and no longer the removed).
		xcfg.Credentials = credentials.NewTLS(xdsclient.ServerTLSConfigRoots(g.controlPlaneRoots, c.ControlPlaneID, nil))
	}
	return xdsclient.New(xcfg, reg)
}

// Addr returns the bound address of the passthrough listener, or "" when
// Config.ListenAddr was empty.
func (g *Gateway) Addr() string {
	if g.ln == nil {
		return ""
	}
	return g.ln.Addr().String()
}

// AdminAddr returns the bound admin address, or "".
func (g *Gateway) AdminAddr() string {
	if g.adminLn == nil {
		return ""
	}
	return g.adminLn.Addr().String()
}

// XDS returns the xDS client, nil without Config.ControlPlane.
func (g *Gateway) XDS() *xdsclient.Client { return g.xds }

func (g *Gateway) closeFixed() {
	if g.ln != nil {
		_ = g.ln.Close()
	}
	if g.adminLn != nil {
		_ = g.adminLn.Close()
	}
}

// Run serves the passthrough listener and the admin listener and runs the
// xDS client until ctx ends. Then it drains: it stops accepting, lets the
// spliced connections finish for up to DrainTimeout and closes those still
// open, and only then stops the xDS client and the admin server, so routes
// keep arriving and /ready answers "draining" meanwhile. It returns nil
// once ctx has ended. It returns early, after draining, with an error if
// the xDS client cannot run (the gateway could never get routes) or a
// listener fails. Run needs Config.ListenAddr and may be called once.
func (g *Gateway) Run(ctx context.Context) error {
	if g.ln == nil {
		return errors.New("gateway: Run needs a listen address (Config.ListenAddr)")
	}
	if !g.running.CompareAndSwap(false, true) {
		return errors.New("gateway: Run called twice")
	}
	defer g.closeFixed()
	// The xDS client outlives the drain: it stops after it, not with ctx.
	xctx, stopXDS := context.WithCancel(context.WithoutCancel(ctx))
	defer stopXDS()
	var admin *http.Server
	if g.adminLn != nil {
		var status func() any
		if g.xds != nil {
			status = func() any { return g.xds.Status() }
		}
		admin = &http.Server{Handler: g.AdminHandler(g.gather, status), ReadHeaderTimeout: 10 * time.Second}
	}

	grp, gctx := errgroup.WithContext(ctx)
	if g.xds != nil {
		grp.Go(func() error { return g.xds.Run(xctx) })
	}
	grp.Go(func() error {
		if err := g.Serve(g.ln); err != nil {
			return fmt.Errorf("gateway: accept: %w", err)
		}
		return nil
	})
	if admin != nil {
		grp.Go(func() error {
			if err := admin.Serve(g.adminLn); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("gateway: admin: %w", err)
			}
			return nil
		})
	}
	grp.Go(func() error {
		<-gctx.Done()
		err := g.drain(ctx)
		stopXDS()
		if admin != nil {
			_ = admin.Close()
		}
		return err
	})
	err := grp.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// drain shuts the gateway down within DrainTimeout. A passed deadline is
// no error: Shutdown has closed the connections still open.
func (g *Gateway) drain(ctx context.Context) error {
	g.log.Info("draining", "timeout", g.cfg.DrainTimeout)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.DrainTimeout)
	defer cancel()
	if err := g.Shutdown(dctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
