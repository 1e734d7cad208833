package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

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
	// AppProbes are the app's HTTP probes, by the path the injector gave
	// each on the ready listener (/app-health/CONTAINER/KIND); the
	// sidecar makes the original request to AppHost and answers with
	// its status.
	AppProbes map[string]AppProbe
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

// AppProbe is one HTTP probe of the app: GET Path on Port, with Headers.
type AppProbe struct {
	Port    int32             `json:"port"`
	Path    string            `json:"path,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// validate checks a capture configuration (nil is none).
func (c *CaptureConfig) validate() error {
	if c == nil {
		return nil
	}
	for path, p := range c.AppProbes {
		if !strings.HasPrefix(path, "/app-health/") || p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("app probe %q to port %d: want a path under /app-health/ and a port from 1 to 65535", path, p.Port)
		}
	}
	if len(c.AppProbes) > 0 && net.ParseIP(c.AppHost) == nil {
		return fmt.Errorf("app probes need the app's address, not %q", c.AppHost)
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

// readyHandler is the ready listener's handler: /ready and
// /stats/prometheus, and the app's probes under /app-health/.
func (s *Sidecar) readyHandler(ready http.Handler) http.Handler {
	if s.cfg.Capture == nil || len(s.cfg.Capture.AppProbes) == 0 {
		return ready
	}
	mux := http.NewServeMux()
	mux.Handle("/", ready)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 30 * time.Second}
	mux.HandleFunc("GET /app-health/", func(w http.ResponseWriter, r *http.Request) {
		pr, ok := s.cfg.Capture.AppProbes[r.URL.Path]
		if !ok {
			http.Error(w, "fedmesh: no such app probe", http.StatusNotFound)
			return
		}
		code, err := probeApp(r.Context(), client, s.cfg.Capture.AppHost, pr)
		if err != nil {
			s.log.Debug("app probe failed", "probe", r.URL.Path, "err", err)
			http.Error(w, "fedmesh: app probe: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(code)
	})
	return mux
}

// probeApp makes the probe's request to the app and returns its status,
// as the kubelet would see it.
func probeApp(ctx context.Context, c *http.Client, host string, pr AppProbe) (int, error) {
	path := pr.Path
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, strconv.Itoa(int(pr.Port)))+path, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range pr.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", "fedmesh-probe")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}
