// Package faultproxy is a TCP proxy on loopback for tests that break a
// connection in the middle, an etcd watch say: Block closes every open
// connection and refuses new ones until Unblock.
//
// It is for tests only: New takes a testing.TB and stops the proxy in the
// test's cleanup.
//
//	p := faultproxy.New(t, "127.0.0.1:2379")
//	cli := dial("http://" + p.Addr())
//	p.Block()   // the client's connections drop
//	p.Unblock() // and may come back
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a target; see the package doc.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup // the accept loop and every pipe

	mu      sync.Mutex // guards the following
	blocked bool
	conns   map[net.Conn]struct{}
}

// New listens on 127.0.0.1 (port 0) and forwards what it accepts to
// target, host:port, until the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.open(c) {
			c.Close()
		}
	}
}

// open connects c to the target and starts the two pipes, or reports
// false when blocked or the target does not answer.
func (p *Proxy) open(c net.Conn) bool {
	if p.isBlocked() {
		return false
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blocked { // blocked while dialing
		up.Close()
		return false
	}
	p.conns[c] = struct{}{}
	p.conns[up] = struct{}{}
	p.wg.Add(2)
	go p.pipe(c, up)
	go p.pipe(up, c)
	return true
}

func (p *Proxy) isBlocked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocked
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src) // the connection ends either way
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Block closes every open connection and refuses new ones until Unblock.
func (p *Proxy) Block() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = true
	for c := range p.conns {
		c.Close()
	}
}

// Unblock lets new connections through again.
func (p *Proxy) Unblock() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = false
}

func (p *Proxy) close() {
	if err := p.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		panic(err)
	}
	p.Block()
	p.wg.Wait()
}
