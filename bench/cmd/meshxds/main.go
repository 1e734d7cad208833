// Command meshxds stands in for fedmesh's control plane in the benchmark
// drivers (scripts/bench-sidecar.sh, scripts/bench-gateway.sh): a static
// xDS server on go-control-plane's SnapshotCache that serves the resources
// docs/xds.md describes for a fixed scene, and signs the certificates the
// reference proxies use, from a cluster CA made by `fedmesh ca`.
//
//	meshxds sidecar -listen 127.0.0.1:15010 -ca-dir CA -client-node C -server-node S \
//	    -inbound 127.0.2.1:15006 -http-app 127.0.2.1:18080 -grpc-app 127.0.2.1:18079 -services 1000
//	meshxds gateway -listen 127.0.0.1:15010 -node gateway~127.0.0.1:15443~east-1 \
//	    -route 9000.sink.demo.svc.clusterset.local=127.0.0.1:19000
//	meshxds issue -ca-dir CA -ns demo -sa echo -dns 8080.echo.demo.svc.clusterset.local -out DIR/echo
//
// The servers stop on SIGINT or SIGTERM, or after -lifetime at the latest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "meshxds")
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: meshxds sidecar|gateway|issue [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "sidecar":
		err = runSidecar(log, args)
	case "gateway":
		err = runGateway(log, args)
	case "issue":
		err = runIssue(args)
	default:
		err = fmt.Errorf("unknown command %q (want sidecar, gateway or issue)", cmd)
	}
	if err != nil {
		log.Error("failed", "err", err)
		os.Exit(1)
	}
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// serve runs an ADS server for cache on addr until a signal or lifetime.
func serve(log *slog.Logger, addr string, lifetime time.Duration, cache cachev3.SnapshotCache) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, lifetime)
	defer cancel()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, cache, nil))
	done := make(chan error, 1)
	go func() { done <- g.Serve(lis) }()
	log.Info("serving xDS", "addr", lis.Addr().String(), "lifetime", lifetime)
	select {
	case <-ctx.Done():
		g.Stop()
		<-done
		return nil
	case err := <-done:
		return err
	}
}

func setSnapshot(cache cachev3.SnapshotCache, node string, res map[string][]types.Resource) error {
	snap, err := cachev3.NewSnapshot("1", res)
	if err != nil {
		return fmt.Errorf("snapshot for %s: %w", node, err)
	}
	if err := snap.Consistent(); err != nil {
		return fmt.Errorf("snapshot for %s: %w", node, err)
	}
	return cache.SetSnapshot(context.Background(), node, snap)
}

func runGateway(log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:15010", "xDS listen address")
	node := fs.String("node", "", "the gateway's xDS node id (fedmesh gateway uses gateway~LISTEN~CLUSTER)")
	gwListen := fs.String("gateway-listen", "127.0.0.1:15443", "address the gateway's listener names")
	cluster := fs.String("cluster", "east-1", "the gateway's cluster")
	extra := fs.Int("extra-routes", 0, "additional routes (other SNIs to the first route's endpoints) to size the table")
	lifetime := fs.Duration("lifetime", 10*time.Minute, "stop after this long at the latest")
	var routesF multiFlag
	fs.Var(&routesF, "route", "SNI=HOST:PORT[,HOST:PORT...] (repeatable)")
	_ = fs.Parse(args)
	if *node == "" || len(routesF) == 0 {
		return errors.New("-node and at least one -route are required")
	}
	res, err := gatewayScene(*gwListen, *cluster, routesF, *extra)
	if err != nil {
		return err
	}
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	// The gateway subscribes to listeners and endpoints only, so the
	// snapshot is not checked for consistency (no clusters are sent).
	snap, err := cachev3.NewSnapshot("1", res)
	if err != nil {
		return err
	}
	if err := cache.SetSnapshot(context.Background(), *node, snap); err != nil {
		return err
	}
	log.Info("gateway scene", "node", *node, "routes", len(routesF)+*extra)
	return serve(log, *listen, *lifetime, cache)
}

// gatewayScene builds the gateway's listener and endpoints from -route
// values (SNI=HOST:PORT[,HOST:PORT...]) plus extra routes to the first
// route's endpoints.
func gatewayScene(listen, cluster string, routeFlags []string, extra int) (map[string][]types.Resource, error) {
	type route struct {
		sni   string
		addrs []string
	}
	var rs []route
	for _, r := range routeFlags {
		sni, addrs, ok := strings.Cut(r, "=")
		if !ok || sni == "" || addrs == "" {
			return nil, fmt.Errorf("-route %q: want SNI=HOST:PORT", r)
		}
		rs = append(rs, route{sni, strings.Split(addrs, ",")})
	}
	if len(rs) == 0 {
		return nil, errors.New("no -route given")
	}
	for i := range extra {
		rs = append(rs, route{fmt.Sprintf("%d.svc-%04d.bench.svc.clusterset.local", 9000, i), rs[0].addrs})
	}
	var snis []string
	res := map[string][]types.Resource{}
	for _, r := range rs {
		snis = append(snis, r.sni)
		cla, err := assignment(r.sni, cluster, "spiffe://bench/unused", r.addrs...)
		if err != nil {
			return nil, err
		}
		res[resourcev3.EndpointType] = append(res[resourcev3.EndpointType], cla)
	}
	l, err := gatewayListener(listen, snis)
	if err != nil {
		return nil, err
	}
	res[resourcev3.ListenerType] = []types.Resource{l}
	return res, nil
}
