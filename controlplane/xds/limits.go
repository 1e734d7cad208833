package xds

import (
	"errors"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Limits bound what the xDS server takes from the network before and after
// a node has authenticated. The zero value of a field means its default
// (DefaultLimits). They hold only when the gRPC server is built with
// Server.ServerOptions and serves Server.Listener.
type Limits struct {
	// MaxConnections is how many connections the listener keeps open at
	// once, authenticated or not. One more is accepted, closed at once and
	// counted (fedmesh_xds_connections_closed_total{reason="limit"}).
	// Default 8192: a proxy keeps one connection, so this is the number
	// of proxies one control plane serves, with room for reconnects.
	MaxConnections int
	// MaxStreamsPerConnection is HTTP/2 MAX_CONCURRENT_STREAMS of every
	// connection: a stream past it is refused (REFUSED_STREAM) by the
	// gRPC server. A sidecar or gateway opens one ADS stream and a
	// grpc-go client one per xDS server. Default 16.
	MaxStreamsPerConnection uint32
	// AuthTimeout is how long a new connection has to finish its TLS
	// handshake and authenticate a stream with its first discovery
	// request. A connection that has not is closed and counted
	// (reason="auth_timeout"), so idle or stalled sockets cannot pile
	// up. Default 10s.
	AuthTimeout time.Duration
	// IdleTimeout closes a connection that has had no open stream for
	// this long (gRPC MaxConnectionIdle), so an authenticated node that
	// stopped asking frees its slot. Default 5m.
	IdleTimeout time.Duration
}

// DefaultLimits returns the defaults documented on each field of Limits.
func DefaultLimits() Limits {
	return Limits{
		MaxConnections:          8192,
		MaxStreamsPerConnection: 16,
		AuthTimeout:             10 * time.Second,
		IdleTimeout:             5 * time.Minute,
	}
}

// withDefaults fills zero fields and refuses negative ones.
func (l Limits) withDefaults() (Limits, error) {
	if l.MaxConnections < 0 || l.AuthTimeout < 0 || l.IdleTimeout < 0 {
		return l, errors.New("limits: max connections, auth timeout and idle timeout must not be negative")
	}
	d := DefaultLimits()
	if l.MaxConnections == 0 {
		l.MaxConnections = d.MaxConnections
	}
	if l.MaxStreamsPerConnection == 0 {
		l.MaxStreamsPerConnection = d.MaxStreamsPerConnection
	}
	if l.AuthTimeout == 0 {
		l.AuthTimeout = d.AuthTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	return l, nil
}

// ServerOptions are the gRPC server options that enforce s's Limits: the
// stream cap, the handshake deadline and the idle timeout. Add transport
// credentials and keepalive enforcement to them.
func (s *Server) ServerOptions() []grpc.ServerOption {
	l := s.cfg.Limits
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(l.MaxStreamsPerConnection),
		// The listener's tracker closes and counts a connection that has
		// not authenticated at AuthTimeout; gRPC's own handshake deadline
		// is only the backstop (a server without Listener). Equal, it
		// could close a silent socket first and the close would not be
		// counted.
		grpc.ConnectionTimeout(2 * l.AuthTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: l.IdleTimeout}),
	}
}

// Listener wraps ln so that it keeps at most Limits.MaxConnections open
// connections and closes a connection that authenticates no stream within
// Limits.AuthTimeout. Serve the gRPC server on the returned listener.
func (s *Server) Listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, t: s.conns}
}

// connTracker counts the live connections of every listener a Server
// wrapped and finds a stream's connection by its addresses, so that the
// stream's authentication lifts the connection's deadline.
type connTracker struct {
	max     int
	timeout time.Duration
	m       *metrics

	mu    sync.Mutex // guards the following
	conns map[string]*limitConn
}

func newConnTracker(l Limits, m *metrics) *connTracker {
	return &connTracker{max: l.MaxConnections, timeout: l.AuthTimeout, m: m, conns: make(map[string]*limitConn)}
}

func connKey(local, remote net.Addr) string {
	if local == nil || remote == nil {
		return ""
	}
	return local.String() + "|" + remote.String()
}

// admit tracks c, or reports false when the cap is reached.
func (t *connTracker) admit(c net.Conn) (*limitConn, bool) {
	lc := &limitConn{Conn: c, t: t, key: connKey(c.LocalAddr(), c.RemoteAddr())}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.conns) >= t.max {
		return nil, false
	}
	t.conns[lc.key] = lc
	t.m.conns.Set(float64(len(t.conns)))
	// The timer's goroutine runs once and only closes the connection;
	// release stops it when the connection closes first.
	lc.timer = time.AfterFunc(t.timeout, lc.expire)
	return lc, true
}

// authenticated lifts the deadline of the connection local|remote; a
// connection the tracker does not know (a listener it did not wrap) is
// left alone.
func (t *connTracker) authenticated(local, remote net.Addr) {
	t.mu.Lock()
	lc := t.conns[connKey(local, remote)]
	if lc != nil && !lc.authed {
		lc.authed = true
		lc.timer.Stop()
	}
	t.mu.Unlock()
}

func (t *connTracker) release(lc *limitConn) {
	t.mu.Lock()
	if t.conns[lc.key] == lc {
		delete(t.conns, lc.key)
	}
	t.m.conns.Set(float64(len(t.conns)))
	lc.timer.Stop()
	t.mu.Unlock()
}

// limitListener refuses connections past the tracker's cap.
type limitListener struct {
	net.Listener
	t *connTracker
}

// Accept returns the next connection under the cap; a connection past it
// is closed and counted, and Accept waits for the next one.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc, ok := l.t.admit(c); ok {
			return lc, nil
		}
		l.t.m.connsClosed.WithLabelValues("limit").Inc()
		_ = c.Close()
	}
}

// limitConn is one tracked connection.
type limitConn struct {
	net.Conn
	t     *connTracker
	key   string
	timer *time.Timer // set by admit under t.mu
	once  sync.Once
	// authed is set under t.mu when a stream of the connection
	// authenticated.
	authed bool
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.t.release(c) })
	return err
}

// expire closes the connection unless it authenticated meanwhile.
func (c *limitConn) expire() {
	c.t.mu.Lock()
	authed := c.authed
	c.t.mu.Unlock()
	if authed {
		return
	}
	c.t.m.connsClosed.WithLabelValues("auth_timeout").Inc()
	_ = c.Close()
}
