package sim

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// catalogMeter is a TCP relay in front of one cluster's etcd: peers'
// replicators reach the catalog through it (it is the address gossip
// announces), and it counts the bytes each way. TLS passes through
// untouched, end to end between the replicator and etcd.
type catalogMeter struct {
	ln     net.Listener
	target string
	out    atomic.Uint64 // etcd to peers
	in     atomic.Uint64 // peers to etcd
	conns  atomic.Int64
	wg     sync.WaitGroup // the accept loop and every pipe

	mu     sync.Mutex // guards the following
	open   map[net.Conn]struct{}
	closed bool
}

func newCatalogMeter(listen, target string) (*catalogMeter, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	m := &catalogMeter{ln: ln, target: target, open: make(map[net.Conn]struct{})}
	m.wg.Add(1)
	go m.accept()
	return m, nil
}

func (m *catalogMeter) Addr() string { return m.ln.Addr().String() }

func (m *catalogMeter) accept() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.DialTimeout("tcp", m.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		if !m.track(c, u) {
			c.Close()
			u.Close()
			return
		}
		m.conns.Add(1)
		m.wg.Add(2)
		go m.pipe(u, c, &m.in)
		go m.pipe(c, u, &m.out)
	}
}

func (m *catalogMeter) track(cs ...net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	for _, c := range cs {
		m.open[c] = struct{}{}
	}
	return true
}

// pipe copies src to dst, counting, and closes both when either ends.
func (m *catalogMeter) pipe(dst, src net.Conn, n *atomic.Uint64) {
	defer m.wg.Done()
	// Small: the relay is the simulator's, not the control plane's, and
	// a federation of N holds N(N-1) of these connections.
	buf := make([]byte, 4<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.Add(uint64(k))
			if _, werr := dst.Write(buf[:k]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	m.mu.Lock()
	_, first := m.open[src]
	delete(m.open, src)
	delete(m.open, dst)
	m.mu.Unlock()
	if first {
		m.conns.Add(-1)
	}
	src.Close()
	dst.Close()
}

// Close stops accepting, cuts every connection (as a killed machine
// would) and waits for the pipes.
func (m *catalogMeter) Close() {
	m.mu.Lock()
	m.closed = true
	for c := range m.open {
		c.Close()
	}
	m.mu.Unlock()
	m.ln.Close()
	m.wg.Wait()
}

// gossipMeter wraps a member's memberlist transport and counts every
// byte it sends: UDP packets, and TCP streams it dials or accepts. The
// bytes sent by all members are the federation's gossip traffic.
type gossipMeter struct {
	inner memberlist.Transport
	sent  atomic.Uint64

	once    sync.Once
	streams chan net.Conn
	done    chan struct{}
	wg      sync.WaitGroup
}

var _ memberlist.Transport = (*gossipMeter)(nil)

func newGossipMeter(inner memberlist.Transport) *gossipMeter {
	return &gossipMeter{inner: inner, streams: make(chan net.Conn), done: make(chan struct{})}
}

func (g *gossipMeter) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return g.inner.FinalAdvertiseAddr(ip, port)
}

func (g *gossipMeter) WriteTo(b []byte, addr string) (time.Time, error) {
	g.sent.Add(uint64(len(b)))
	return g.inner.WriteTo(b, addr)
}

func (g *gossipMeter) PacketCh() <-chan *memberlist.Packet { return g.inner.PacketCh() }

func (g *gossipMeter) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := g.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, sent: &g.sent}, nil
}

// StreamCh hands on the inner transport's accepted streams, counted; the
// forwarding goroutine ends with Shutdown.
func (g *gossipMeter) StreamCh() <-chan net.Conn {
	g.once.Do(func() {
		in := g.inner.StreamCh()
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for {
				select {
				case c := <-in:
					select {
					case g.streams <- &countedConn{Conn: c, sent: &g.sent}:
					case <-g.done:
						c.Close()
						return
					}
				case <-g.done:
					return
				}
			}
		}()
	})
	return g.streams
}

func (g *gossipMeter) Shutdown() error {
	err := g.inner.Shutdown()
	select {
	case <-g.done:
	default:
		close(g.done)
	}
	g.wg.Wait()
	return err
}

type countedConn struct {
	net.Conn
	sent *atomic.Uint64
}

func (c *countedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent.Add(uint64(n))
	return n, err
}

var _ io.Writer = (*countedConn)(nil)
