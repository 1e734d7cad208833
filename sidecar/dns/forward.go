package dns

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// This file forwards the queries the server does not own (Config.Forward)
// and reads the upstream servers of a pod from its resolv.conf.

// forwardUDP forwards one UDP query on its own goroutine (owned by wg),
// within MaxForwarding; a query over the bound is dropped and counted.
func (s *Server) forwardUDP(ctx context.Context, wg *sync.WaitGroup, udp net.PacketConn, addr net.Addr, query []byte) {
	select {
	case s.forwarding <- struct{}{}:
	default:
		s.queries.WithLabelValues("forward_dropped").Inc()
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { <-s.forwarding }()
		if resp := s.forward(ctx, query, false); resp != nil {
			_, _ = udp.WriteTo(resp, addr)
		}
	}()
}

// forward asks Config.Forward, and answers SERVFAIL when it fails.
func (s *Server) forward(ctx context.Context, query []byte, tcp bool) []byte {
	resp, err := s.cfg.Forward(ctx, query, tcp)
	if err == nil {
		s.queries.WithLabelValues("forwarded").Inc()
		return resp
	}
	s.queries.WithLabelValues("forward_error").Inc()
	s.log.Debug("dns forward failed", "err", err)
	var p dnsmessage.Parser
	h, perr := p.Start(query)
	if perr != nil {
		return nil
	}
	q, qerr := p.Question()
	fail := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RCode: dnsmessage.RCodeServerFailure}
	if qerr != nil {
		return build(fail, nil, nil, 512)
	}
	return build(fail, &q, nil, 512)
}

// Forwarder sends queries to upstream DNS servers, each tried in turn.
type Forwarder struct {
	// Servers are the upstreams, host:port. Required.
	Servers []string
	// Timeout bounds each exchange with one server; zero means 2s.
	Timeout time.Duration
}

// ErrNoUpstream is returned when no server answered.
var ErrNoUpstream = errors.New("no upstream DNS server answered")

// Forward sends query to each server in turn, over TCP when tcp is set
// (the client asked over TCP, for an answer too large for UDP), and
// returns the first response whose ID matches the query's.
func (f *Forwarder) Forward(ctx context.Context, query []byte, tcp bool) ([]byte, error) {
	if len(query) < 2 {
		return nil, fmt.Errorf("dns: query of %d bytes", len(query))
	}
	timeout := f.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	var errs []error
	for _, srv := range f.Servers {
		resp, err := exchange(ctx, srv, query, tcp, timeout)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: %w", ErrNoUpstream, errors.Join(errs...))
}

func exchange(ctx context.Context, server string, query []byte, tcp bool, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	network := "udp"
	if tcp {
		network = "tcp"
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if tcp {
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(query))), query...)); err != nil {
			return nil, err
		}
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return nil, err
		}
		resp := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, resp); err != nil {
			return nil, err
		}
		return matching(query, resp)
	}
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if resp, err := matching(query, buf[:n]); err == nil {
			return resp, nil
		}
		// Another ID: a stray answer; wait for ours.
	}
}

// matching returns resp when it answers query (the same ID).
func matching(query, resp []byte) ([]byte, error) {
	if len(resp) < 12 || resp[0] != query[0] || resp[1] != query[1] {
		return nil, errors.New("dns: response does not answer the query")
	}
	return resp, nil
}

// ParseResolvConf returns the nameservers of a resolv.conf, as host:53,
// in order. A line it cannot read is an error naming it.
func ParseResolvConf(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "nameserver" {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("resolv.conf line %d: nameserver without an address", n)
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("resolv.conf line %d: %w", n, err)
		}
		out = append(out, netip.AddrPortFrom(a, 53).String())
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
