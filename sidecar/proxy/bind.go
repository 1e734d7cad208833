package proxy

import (
	"net"
	"net/netip"

	"github.com/fedmesh/fedmesh/internal/hostport"
)

// dialer returns the dialer for connections to addr (an endpoint's
// sidecar or a gateway, host:port): bound to Config.OutboundBindAddr
// when that is set and can reach addr, so that the peer sees the
// workload's own address (the gateway's source_cluster, see
// docs/telemetry.md). A loopback source reaches only loopback
// destinations and a non-loopback one only non-loopback ones, of its own
// family; other destinations (and host names) are dialled unbound.
func (p *Proxy) dialer(addr string) *net.Dialer {
	src := p.cfg.OutboundBindAddr
	if !src.IsValid() {
		return &net.Dialer{}
	}
	host, _, err := hostport.Split(addr)
	if err != nil {
		return &net.Dialer{}
	}
	dst, err := netip.ParseAddr(host)
	if err != nil {
		return &net.Dialer{}
	}
	dst = dst.Unmap()
	if dst.Is4() != src.Is4() || dst.IsLoopback() != src.IsLoopback() {
		return &net.Dialer{}
	}
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
}
