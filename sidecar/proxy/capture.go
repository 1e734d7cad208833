package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// This file is the outbound side of transparent capture: connections the
// pod's capture rules redirected to the outbound listener, read by their
// original destination (Config.OriginalDst). Traffic to a service (its
// ClusterSetIP or ClusterIP, or an HTTP request whose Host names one) is
// meshed; everything else passes through untouched, a plain TCP relay to
// the original destination.

// DefaultSniffTimeout is how long a captured connection to a port some
// HTTP service uses may take to send its first request head before it is
// passed through as it is.
const DefaultSniffTimeout = time.Second

// maxSniff bounds the bytes read to find a request's Host.
const maxSniff = 16 << 10

// PlaintextPolicy says which inbound connections may arrive without TLS
// (PERMISSIVE): from anyone, to the original destination's port, relayed
// to that destination. The zero value takes none (STRICT).
type PlaintextPolicy struct {
	// All takes plaintext on every port.
	All bool
	// Ports take plaintext even when All is false.
	Ports []uint16
	// Own are the sidecar's own ports (outbound, admin, inbound, ready,
	// DNS), which never take plaintext from outside whatever All and
	// Ports say: relayed there, another pod would reach the outbound
	// proxy (with this workload's identity) or the admin pages should
	// they listen beyond loopback.
	Own []uint16
}

func (pp PlaintextPolicy) allows(port uint16) bool {
	for _, p := range pp.Own {
		if p == port {
			return false
		}
	}
	if pp.All {
		return true
	}
	for _, p := range pp.Ports {
		if p == port {
			return true
		}
	}
	return false
}

type origDstKey struct{}

// capturedConn is a redirected connection: its original destination, and
// the bytes read from it to classify it, which its reader gives again
// first.
type capturedConn struct {
	net.Conn
	dst netip.AddrPort
	r   io.Reader
}

func (c *capturedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// CloseWrite half-closes the underlying TCP connection, for splice.
func (c *capturedConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// redirected reports the original destination of conn, accepted on a
// listener whose connections may be redirected to it: false when capture
// is off, the kernel has none, or the client dialled the listener
// itself.
func (p *Proxy) redirected(conn net.Conn) (netip.AddrPort, bool) {
	if p.cfg.OriginalDst == nil {
		return netip.AddrPort{}, false
	}
	dst, err := p.cfg.OriginalDst(conn)
	if err != nil {
		return netip.AddrPort{}, false
	}
	if local, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil && local.Addr().Unmap() == dst.Addr() && local.Port() == dst.Port() {
		return netip.AddrPort{}, false
	}
	return dst, true
}

// ServeOutbound serves the outbound listener until ctx ends. Without
// Config.OriginalDst it is ServeOutboundHTTP. With it, a connection that
// dialled the listener itself is served as the HTTP proxy; a redirected
// one goes by its original destination:
//
//   - an address and port of a service (a ClusterSetIP, or a ClusterIP
//     the control plane gives as a domain of the service): HTTP routed
//     to it (by Host first), or an opaque TCP service's mTLS tunnel;
//   - another address, on a port where the mesh has an HTTP service and
//     that is not opaque (Config.OpaquePorts): the first request head is
//     read (within Config.SniffTimeout); when its Host names a service,
//     the connection is served as HTTP;
//   - anything else is relayed untouched to the original destination
//     (passthrough), the bytes already read first.
//
// It closes l and returns nil when ctx ends, after its connections end.
func (p *Proxy) ServeOutbound(ctx context.Context, l net.Listener) error {
	if p.cfg.OriginalDst == nil {
		return p.ServeOutboundHTTP(ctx, l)
	}
	direct := newChanListener(l.Addr())
	captured := newChanListener(l.Addr())
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = p.serveHTTP(ctx, direct, p.OutboundHandler(0))
	}()
	go func() {
		defer wg.Done()
		_ = p.serveHTTPConns(ctx, captured, p.OutboundHandler(0), func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*prefixConn); ok {
				c = pc.Conn // handed over by the fast path
			}
			if cc, ok := c.(*capturedConn); ok {
				return context.WithValue(ctx, origDstKey{}, cc.dst)
			}
			return ctx
		})
	}()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var conns sync.WaitGroup
	for {
		conn, err := l.Accept()
		if err != nil {
			break
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			p.outboundConn(ctx, conn, direct, captured)
		}()
	}
	l.Close()
	conns.Wait()
	direct.Close()
	captured.Close()
	return nil
}

func (p *Proxy) outboundConn(ctx context.Context, conn net.Conn, direct, captured *chanListener) {
	dst, ok := p.redirected(conn)
	if !ok {
		if !direct.deliver(conn) {
			conn.Close()
		}
		return
	}
	cc := &capturedConn{Conn: conn, dst: dst, r: conn}
	snap := p.snap.Load()
	port := int32(dst.Port())
	if svc, ok := snap.Lookup(dst.Addr().String(), port); ok {
		if !svc.Protocol.IsHTTP() {
			p.m.captured.WithLabelValues("address").Inc()
			p.serveTCPConn(ctx, cc, svc)
			return
		}
		p.m.captured.WithLabelValues("address").Inc()
		if !captured.deliver(cc) {
			conn.Close()
		}
		return
	}
	httpPort := false
	for _, svc := range snap.Port(port) {
		httpPort = httpPort || svc.Protocol.IsHTTP()
	}
	if httpPort && p.cfg.OpaquePorts.Contains(dst.Port()) {
		// A server-first protocol's client says nothing until the
		// server has: pass it through at once.
		p.m.detection.WithLabelValues("outbound", "skipped").Inc()
		httpPort = false
	}
	if httpPort {
		host, seen, result := p.sniffHost(conn)
		p.m.detection.WithLabelValues("outbound", result).Inc()
		cc.r = io.MultiReader(bytes.NewReader(seen), conn)
		if h, _, err := splitHost(host); err == nil && host != "" {
			if _, ok := snap.Lookup(clusterLocal(h), port); ok {
				p.m.captured.WithLabelValues("host").Inc()
				if !captured.deliver(cc) {
					conn.Close()
				}
				return
			}
		}
	}
	p.passthrough(ctx, cc)
}

// clusterLocalSuffix ends a Kubernetes Service's in-cluster name.
const clusterLocalSuffix = ".svc.cluster.local"

// clusterLocal maps NAME.NS.svc.cluster.local (the name apps in a
// cluster use, which resolves to the Service's ClusterIP) to NAME.NS, the
// service across the clusterset, as Istio's multi-cluster meshes do: on
// a captured connection the sidecar cannot tell a ClusterIP from any
// other address, but the name says which service is meant. Other hosts
// are returned as they are.
func clusterLocal(host string) string {
	h := strings.TrimSuffix(host, ".")
	if len(h) > len(clusterLocalSuffix) && strings.EqualFold(h[len(h)-len(clusterLocalSuffix):], clusterLocalSuffix) {
		return h[:len(h)-len(clusterLocalSuffix)]
	}
	return host
}

// splitHost takes the host from a Host header value.
func splitHost(hostport string) (string, string, error) {
	if h, port, err := net.SplitHostPort(hostport); err == nil {
		return h, port, nil
	}
	return hostport, "", nil
}

// sniffHost reads what the client sends first, up to one request head,
// within the sniff timeout, and returns its Host ("" when it is not an
// HTTP/1 request), every byte it read, and the detection's result for
// fedmesh_sidecar_protocol_detection_total: http, other or timeout.
func (p *Proxy) sniffHost(conn net.Conn) (string, []byte, string) {
	var seen bytes.Buffer
	_ = conn.SetReadDeadline(time.Now().Add(p.cfg.SniffTimeout))
	br := bufio.NewReader(io.TeeReader(io.LimitReader(conn, maxSniff), &seen))
	req, err := http.ReadRequest(br)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return "", seen.Bytes(), "timeout"
		}
		return "", seen.Bytes(), "other"
	}
	if req.Body != nil {
		req.Body.Close()
	}
	return req.Host, seen.Bytes(), "http"
}

// passthrough relays conn untouched to its original destination, as the
// pod would have reached it without the mesh. The sidecar's own
// connections are not captured, so this dial leaves the pod.
func (p *Proxy) passthrough(ctx context.Context, cc *capturedConn) {
	p.relay(ctx, cc, "outbound")
}

// relay dials cc's original destination and splices bytes both ways,
// counted as passthrough traffic of direction.
func (p *Proxy) relay(ctx context.Context, cc *capturedConn, direction string) {
	ctx, cancel := p.untilClosed(ctx)
	defer cancel()
	d := net.Dialer{Timeout: 10 * time.Second}
	up, err := d.DialContext(ctx, "tcp", cc.dst.String())
	if err != nil {
		p.m.passthroughErrors.WithLabelValues(direction, "connect").Inc()
		p.log.Debug("passthrough connect failed", "direction", direction, "destination", cc.dst, "err", err)
		cc.Close()
		return
	}
	p.m.passthrough.WithLabelValues(direction).Inc()
	p.m.passthroughActive.WithLabelValues(direction).Inc()
	sent, received := splice(cc, up, ctx.Done())
	p.m.passthroughActive.WithLabelValues(direction).Dec()
	p.m.passthroughBytes.WithLabelValues(direction, "sent").Add(float64(sent))
	p.m.passthroughBytes.WithLabelValues(direction, "received").Add(float64(received))
}

// serveHTTPConns is serveHTTP with a ConnContext.
func (p *Proxy) serveHTTPConns(ctx context.Context, l net.Listener, h http.Handler, connCtx func(context.Context, net.Conn) context.Context) error {
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: protos, ReadHeaderTimeout: 30 * time.Second, ErrorLog: p.errorLog, ConnContext: connCtx}
	if o, ok := h.(*outbound); ok && !p.cfg.NetHTTPOnly {
		return p.serveFastHTTP(ctx, l, o, srv)
	}
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
