package sidecar

import (
	"log/slog"
	"net"
	"net/netip"
)

// warnExposed logs a warning for every listener of cfg that proxies with
// the workload's identity or shows its configuration (outbound, service
// ports, DNS, admin) on an address that is not loopback: anyone who
// reaches such an address can send requests as the workload. Local-mode
// tests that reach a sidecar in another network namespace do this on
// purpose, so it is a warning, not an error.
func warnExposed(log *slog.Logger, cfg Config) {
	for _, l := range []struct{ name, addr string }{
		{"outbound", cfg.OutboundAddr},
		{"service-ip", cfg.ServiceIP},
		{"dns", cfg.DNSAddr},
		{"dns-ipv6", cfg.DNSAddrIPv6},
		{"admin", cfg.AdminAddr},
	} {
		if l.addr != "" && !isLoopback(l.addr) {
			log.Warn("listener is not on a loopback address: whoever reaches it acts with this workload's identity",
				"listener", l.name, "address", l.addr)
		}
	}
}

// isLoopback reports whether addr (host:port, or a bare IP) names a
// loopback address or "localhost". An empty host (all addresses) is not.
func isLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
