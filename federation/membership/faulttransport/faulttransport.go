// Package faulttransport wraps memberlist's network transport so that
// tests can cut gossip between chosen members and heal it again: a fault
// proxy for serf, which carries UDP packets and TCP streams on one port.
//
// A Network holds the cuts; every member's transport, wrapped with
// Network.Wrap, drops the packets it would send across a cut and fails the
// streams it would open across one. Cutting both directions (Partition)
// makes a clean partition; nothing is delayed or reordered.
//
//	net := faulttransport.NewNetwork()
//	cfg.WrapTransport = net.Wrap
//	...
//	net.Partition([]string{a.Local().Addr}, []string{b.Local().Addr, c.Local().Addr})
//	net.Heal()
package faulttransport

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrCut is returned when a stream would cross a cut.
var ErrCut = errors.New("faulttransport: link is cut")

// Network is a set of cut links between gossip addresses (host:port).
// Safe for concurrent use.
type Network struct {
	mu   sync.Mutex // guards cut
	cut  map[[2]string]bool
	drop uint64 // guarded by mu; packets and streams dropped
}

// NewNetwork returns a network with no cuts.
func NewNetwork() *Network {
	return &Network{cut: make(map[[2]string]bool)}
}

// Partition cuts every link between a member of side a and a member of
// side b, in both directions.
func (n *Network) Partition(a, b []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			n.cut[[2]string{x, y}] = true
			n.cut[[2]string{y, x}] = true
		}
	}
}

// Heal removes every cut.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
}

// Dropped returns how many packets and streams were dropped so far.
func (n *Network) Dropped() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.drop
}

func (n *Network) isCut(from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut[[2]string{from, to}] {
		n.drop++
		return true
	}
	return false
}

// Wrap returns t with this network's cuts applied to what it sends. Its
// own address is the one memberlist advertises.
func (n *Network) Wrap(t memberlist.Transport) memberlist.Transport {
	return &Transport{net: n, inner: t}
}

// Transport is a memberlist transport that drops traffic across cuts.
type Transport struct {
	net   *Network
	inner memberlist.Transport

	mu   sync.Mutex // guards self
	self string
}

var _ memberlist.Transport = (*Transport)(nil)

func (t *Transport) from() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.self
}

// FinalAdvertiseAddr implements memberlist.Transport and records the
// address this member is known by.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	aip, aport, err := t.inner.FinalAdvertiseAddr(ip, port)
	if err == nil {
		t.mu.Lock()
		t.self = net.JoinHostPort(aip.String(), strconv.Itoa(aport))
		t.mu.Unlock()
	}
	return aip, aport, err
}

// WriteTo implements memberlist.Transport; packets across a cut are lost.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.net.isCut(t.from(), addr) {
		return time.Now(), nil
	}
	return t.inner.WriteTo(b, addr)
}

// PacketCh implements memberlist.Transport.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.inner.PacketCh() }

// DialTimeout implements memberlist.Transport; streams across a cut fail.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.net.isCut(t.from(), addr) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ErrCut}
	}
	return t.inner.DialTimeout(addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *Transport) StreamCh() <-chan net.Conn { return t.inner.StreamCh() }

// Shutdown implements memberlist.Transport.
func (t *Transport) Shutdown() error { return t.inner.Shutdown() }
