package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// ServeOutboundHTTP serves the outbound HTTP proxy listener (port 15001 by
// default) on l until ctx ends: requests in origin form with a Host header,
// in absolute form as sent to an HTTP proxy (HTTP_PROXY), h2c with prior
// knowledge (gRPC), and CONNECT tunnels. It closes l and returns nil when
// ctx ends.
func (p *Proxy) ServeOutboundHTTP(ctx context.Context, l net.Listener) error {
	return p.serveHTTP(ctx, l, p.OutboundHandler(0))
}

// ServePort serves one service-port listener on l until ctx ends: HTTP
// (and h2c) when the port has an HTTP service, routed by Host, else the
// port's opaque TCP service (the first by name when several share it). It
// closes l and returns nil when ctx ends, after closing the connections it
// accepted (as the HTTP server does with its own).
func (p *Proxy) ServePort(ctx context.Context, l net.Listener, port int32) error {
	for _, svc := range p.snap.Load().Port(port) {
		if svc.Protocol.IsHTTP() {
			return p.serveHTTP(ctx, l, p.OutboundHandler(port))
		}
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			return nil
		}
		svcs := p.snap.Load().Port(port)
		if len(svcs) == 0 {
			p.m.errors.WithLabelValues("outbound", "", "no_route").Inc()
			conn.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.serveTCPConn(ctx, conn, svcs[0])
		}()
	}
}

func (p *Proxy) serveHTTP(ctx context.Context, l net.Listener, h http.Handler) error {
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: protos, ReadHeaderTimeout: 30 * time.Second, ErrorLog: p.errorLog}
	if o, ok := h.(*outbound); ok && !p.cfg.NetHTTPOnly {
		return p.serveFastHTTP(ctx, l, o, srv)
	}
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closed)
		_ = srv.Close()
	})
	err := srv.Serve(l)
	if stop() {
		_ = srv.Close()
	} else {
		<-closed
	}
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}
