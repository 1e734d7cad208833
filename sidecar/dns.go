package sidecar

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/sidecar/dns"
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

// newDNS makes the DNS server and binds its listeners (Config.DNSAddr
// and DNSAddrIPv6), if any.
func (s *Sidecar) newDNS(log *slog.Logger, reg prometheus.Registerer) error {
	if s.cfg.DNSAddr != "" {
		var err error
		if s.dns, err = dns.New(dns.Config{Resolve: s.resolve, Logger: log, Forward: s.dnsForward()}, reg); err != nil {
			return err
		}
		if s.dnsUDP, s.dnsTCP, err = listenDNS(s.cfg.DNSAddr); err != nil {
			return fmt.Errorf("sidecar: dns: %w", err)
		}
	}
	return s.listenDNSIPv6()
}

// DNSAddr returns the bound DNS address (UDP and TCP), or "".
func (s *Sidecar) DNSAddr() string {
	if s.dnsUDP == nil {
		return ""
	}
	return s.dnsUDP.LocalAddr().String()
}

// listenDNSIPv6 binds the IPv6 DNS listener (Config.DNSAddrIPv6), if
// any: where a pod's capture rules deliver its IPv6 DNS queries (REDIRECT
// to ::1). A host without IPv6 (no ::1, or no IPv6 at all) sends no such
// queries: the sidecar answers on IPv4 alone and says so once.
func (s *Sidecar) listenDNSIPv6() error {
	addr := s.cfg.DNSAddrIPv6
	if addr == "" {
		return nil
	}
	if s.cfg.DNSAddr == "" {
		return fmt.Errorf("sidecar: DNSAddrIPv6 %q without DNSAddr: the IPv6 DNS listener is a second one", addr)
	}
	if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().Is6() || ap.Addr().Is4In6() {
		return fmt.Errorf("sidecar: DNSAddrIPv6 %q: want [IPv6]:PORT, as [::1]:15053", addr)
	}
	udp, tcp, err := listenDNS(addr)
	if err != nil {
		if noIPv6(err) {
			s.log.Info("no IPv6 DNS listener: the host has no IPv6; DNS is answered on IPv4 alone", "address", addr, "err", err)
			return nil
		}
		return fmt.Errorf("sidecar: IPv6 dns listener: %w", err)
	}
	s.dnsUDP6, s.dnsTCP6 = udp, tcp
	return nil
}

// noIPv6 reports whether err, from binding an IPv6 address, says the
// host has no IPv6: the address is not there (IPv6 disabled on the
// interface) or the kernel has no IPv6 sockets.
func noIPv6(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT)
}

// DNSAddrIPv6 returns the bound IPv6 DNS address (UDP and TCP), or ""
// when there is none (not asked for, or the host has no IPv6).
func (s *Sidecar) DNSAddrIPv6() string {
	if s.dnsUDP6 == nil {
		return ""
	}
	return s.dnsUDP6.LocalAddr().String()
}
