package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// runSidecar serves a client sidecar and a server sidecar of one cluster.
// The server workload (demo/echo) serves an HTTP port and a gRPC port; the
// client's configuration holds those two services and -services minus two
// more HTTP services on the HTTP port, each with one endpoint, so that it
// is the size of a mesh of that many services.
func runSidecar(log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("sidecar", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:15010", "xDS listen address")
	caDir := fs.String("ca-dir", "", "cluster CA directory (fedmesh ca issue-cluster)")
	cluster := fs.String("cluster", "east-1", "the sidecars' cluster")
	clientNode := fs.String("client-node", "", "the client sidecar's node id")
	serverNode := fs.String("server-node", "", "the server sidecar's node id")
	inboundAddr := fs.String("inbound", "127.0.2.1:15006", "the server sidecar's inbound mTLS address")
	httpPort := fs.Int("http-port", 8080, "service port of the HTTP service echo.demo")
	httpApp := fs.String("http-app", "", "the HTTP app's address")
	grpcPort := fs.Int("grpc-port", 8079, "service port of the gRPC service echo-grpc.demo")
	grpcApp := fs.String("grpc-app", "", "the gRPC app's address")
	services := fs.Int("services", 2, "services in the client's configuration (at least 2)")
	lifetime := fs.Duration("lifetime", 10*time.Minute, "stop after this long at the latest")
	_ = fs.Parse(args)
	if *caDir == "" || *clientNode == "" || *serverNode == "" || *httpApp == "" || *grpcApp == "" {
		return errors.New("-ca-dir, -client-node, -server-node, -http-app and -grpc-app are required")
	}
	if *services < 2 {
		return fmt.Errorf("-services %d: want at least 2", *services)
	}
	auth, err := ca.LoadAuthority(*caDir)
	if err != nil {
		return err
	}
	sc := sidecarScene{
		cluster: *cluster, inbound: *inboundAddr,
		httpPort: int32(*httpPort), httpApp: *httpApp,
		grpcPort: int32(*grpcPort), grpcApp: *grpcApp,
		services: *services,
	}
	cl, srv, err := sc.build(auth)
	if err != nil {
		return err
	}
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	if err := setSnapshot(cache, *serverNode, srv); err != nil {
		return err
	}
	if err := setSnapshot(cache, *clientNode, cl); err != nil {
		return err
	}
	log.Info("sidecar scene", "client", *clientNode, "server", *serverNode, "services", *services)
	return serve(log, *listen, *lifetime, cache)
}

// sidecarScene is what runSidecar serves.
type sidecarScene struct {
	cluster            string
	inbound            string
	httpPort, grpcPort int32
	httpApp, grpcApp   string
	services           int
}

// build returns the client's and the server's resources, with SVIDs
// signed by auth.
func (sc sidecarScene) build(auth *ca.Authority) (cl, srv map[string][]types.Resource, err error) {
	bundle := auth.BundlePEM()
	clientSVID, err := auth.IssueWorkload("demo", "client", 24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	serverSVID, err := auth.IssueWorkload("demo", "echo", 24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	echoID := serverSVID.ID.String()
	hs := naming.ServicePort{Namespace: "demo", Name: "echo", Port: sc.httpPort}
	gs := naming.ServicePort{Namespace: "demo", Name: "echo-grpc", Port: sc.grpcPort}

	srv = map[string][]types.Resource{}
	ls, cs, err := inbound(sc.inbound, inboundPort{sp: hs, app: sc.httpApp}, inboundPort{sp: gs, app: sc.grpcApp, grpc: true})
	if err != nil {
		return nil, nil, err
	}
	srv[resourcev3.ListenerType] = ls
	srv[resourcev3.ClusterType] = cs
	srv[resourcev3.SecretType] = secrets(serverSVID.CertPEM, serverSVID.KeyPEM, bundle)

	cl = map[string][]types.Resource{}
	add := func(typ string, r types.Resource) { cl[typ] = append(cl[typ], r) }
	rc := routes(hs)
	sps := []naming.ServicePort{hs, gs}
	for i := range sc.services - 2 {
		sps = append(sps, naming.ServicePort{Namespace: "demo", Name: fmt.Sprintf("svc-%04d", i), Port: sc.httpPort})
	}
	for _, sp := range sps {
		add(resourcev3.ClusterType, outboundCluster(sp, echoID))
		cla, err := assignment(sp.OutboundCluster(), sc.cluster, echoID, sc.inbound)
		if err != nil {
			return nil, nil, err
		}
		add(resourcev3.EndpointType, cla)
		if sp.Port == hs.Port && sp != hs {
			rc.VirtualHosts = append(rc.VirtualHosts, routes(sp).VirtualHosts...)
		}
	}
	for _, sp := range []naming.ServicePort{hs, gs} {
		add(resourcev3.ListenerType, outboundListener(sp))
	}
	add(resourcev3.RouteType, rc)
	add(resourcev3.RouteType, routes(gs))
	for _, s := range secrets(clientSVID.CertPEM, clientSVID.KeyPEM, bundle) {
		add(resourcev3.SecretType, s)
	}

	return cl, srv, nil
}
