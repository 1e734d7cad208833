package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/fedmesh/fedmesh/internal/portset"
	"github.com/fedmesh/fedmesh/sidecar/dns"
	"github.com/fedmesh/fedmesh/sidecar/internal/origdst"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
)

// This file holds what transparent capture adds to the sidecar (see
// docs/capture.md): the original destination of redirected connections,
// the IPv6 outbound listener, inbound plaintext, and the app's probes
// made for the kubelet.

// CaptureConfig turns transparent capture on, for a pod whose capture
// rules (controlplane/inject) redirect its TCP traffic to the sidecar.
type CaptureConfig struct {
	// OutboundAddrIPv6 is a second outbound listener, where ip6tables
	// REDIRECT delivers the app's IPv6 connections ([::1]:15001); empty
	// for none. Without IPv6 on the host the sidecar runs without it
	// (logged).
	OutboundAddrIPv6 string
	// InboundPlaintext says which ports take plaintext from callers
	// outside the mesh (PERMISSIVE); the zero value takes none
	// (STRICT).
	InboundPlaintext proxy.PlaintextPolicy
	// AppProbes are the app's probes (HTTP, HTTPS, TCP, gRPC), by the
	// path the injector gave each on the ready listener
	// (/app-health/CONTAINER/KIND); the sidecar makes the original check
	// of the app at AppHost and answers with its outcome (apphealth.go).
	AppProbes map[string]AppProbe
	// OpaquePorts are the ports where no protocol is detected
	// (proxy.Config.OpaquePorts): connections to them are passed
	// through, or relayed inbound, without waiting for their first
	// bytes. Empty: detection on every port.
	OpaquePorts portset.Set
	// AppHost is the address the app's probes go to: the pod IP.
	AppHost string
	// DNSUpstreams, host:port, get the DNS queries for names the
	// sidecar's DNS server does not own: with the pod's DNS captured to
	// the sidecar, they are the pod's own nameservers (resolv.conf).
	// Empty: such names are REFUSED.
	DNSUpstreams []string
}

// dnsForward is the DNS server's forwarder, nil without upstreams.
func (s *Sidecar) dnsForward() func(context.Context, []byte, bool) ([]byte, error) {
	if s.cfg.Capture == nil || len(s.cfg.Capture.DNSUpstreams) == 0 {
		return nil
	}
	return (&dns.Forwarder{Servers: s.cfg.Capture.DNSUpstreams}).Forward
}

// validate checks a capture configuration (nil is none).
func (c *CaptureConfig) validate() error {
	if c == nil {
		return nil
	}
	if err := validateAppProbes(c.AppProbes, c.AppHost); err != nil {
		return err
	}
	for _, u := range c.DNSUpstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return fmt.Errorf("DNS upstream %q: %w", u, err)
		}
	}
	return nil
}

// proxyCapture fills the capture fields of the proxy's configuration.
func proxyCapture(cfg Config, pc *proxy.Config) {
	if cfg.Capture == nil {
		return
	}
	pc.OriginalDst = origdst.Get
	pc.InboundPlaintext = cfg.Capture.InboundPlaintext
	pc.OpaquePorts = cfg.Capture.OpaquePorts
	pc.InboundPlaintext.Own = nil
	for _, addr := range []string{cfg.OutboundAddr, cfg.Capture.OutboundAddrIPv6, cfg.AdminAddr, cfg.ReadyAddr, cfg.InboundAddr, cfg.DNSAddr, cfg.DNSAddrIPv6} {
		if _, port, err := net.SplitHostPort(addr); err == nil {
			if n, err := strconv.ParseUint(port, 10, 16); err == nil && n != 0 {
				pc.InboundPlaintext.Own = append(pc.InboundPlaintext.Own, uint16(n))
			}
		}
	}
}

// listenOutboundIPv6 binds the IPv6 outbound listener, if any; a host
// without IPv6 has nothing to capture there, so its absence is no error.
func (s *Sidecar) listenOutboundIPv6() error {
	if s.cfg.Capture == nil || s.cfg.Capture.OutboundAddrIPv6 == "" {
		return nil
	}
	l, err := net.Listen("tcp", s.cfg.Capture.OutboundAddrIPv6)
	if err != nil {
		if errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) {
			s.log.Info("no IPv6 outbound listener: the host has no IPv6", "address", s.cfg.Capture.OutboundAddrIPv6, "err", err)
			return nil
		}
		return fmt.Errorf("sidecar: IPv6 outbound listener: %w", err)
	}
	s.outbound6 = l
	return nil
}
