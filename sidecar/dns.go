package sidecar

import (
	"net"
	"net/netip"
)

// This file holds the sidecar's side of its DNS server (package dns):
// the listeners and the answers.

// dnsBindAttempts bounds the tries to find a port free for both UDP and
// TCP when the DNS address asks for any port.
const dnsBindAttempts = 8

// listenDNS binds UDP on addr and TCP on the port UDP got. With port 0 the
// kernel picks the UDP port without looking at TCP, so a port taken for
// TCP is given back and another one tried.
func listenDNS(addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 1; ; attempt++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if port != "0" || attempt == dnsBindAttempts {
			return nil, nil, err
		}
	}
}

// resolve answers DNS for known service names with the ClusterSetIP
// (Config.DNSClusterSetIP) or the service IP.
func (s *Sidecar) resolve(name string) (netip.Addr, bool) {
	snap := s.proxy.Snapshot()
	if s.cfg.DNSClusterSetIP {
		if ip, ok := snap.ClusterSetIP(name); ok {
			return ip, true
		}
	}
	if !s.svcIP.IsValid() || !snap.IsServiceName(name) {
		return netip.Addr{}, false
	}
	return s.svcIP, true
}
