package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/dns/dnsmessage"
)

// Config configures a Server.
type Config struct {
	// Resolve maps a lower-case name without the trailing dot to the
	// address to answer; ok false means the name is unknown. Required.
	// Called concurrently.
	Resolve func(name string) (addr netip.Addr, ok bool)
	// Domains are the suffixes the server is authoritative for; empty
	// means svc.clusterset.local. Other names are REFUSED unless Resolve
	// knows them (NAME.NS short names).
	Domains []string
	// TTL of answers; zero means 5s.
	TTL time.Duration
	// Logger receives debug logs of bad queries; nil discards.
	Logger *slog.Logger
	// Forward, when set, answers the queries for names the server does
	// not own (else REFUSED): a pod whose DNS is captured to the sidecar
	// still resolves every other name (forward.go). It gets the query as
	// received and whether it came over TCP, and returns the upstream's
	// response. Called concurrently; a failure answers SERVFAIL.
	Forward func(ctx context.Context, query []byte, tcp bool) ([]byte, error)
	// MaxForwarding bounds the UDP queries being forwarded at once;
	// more are dropped (counted; the client retries). Zero means 256.
	MaxForwarding int
}

// Server answers DNS queries.
type Server struct {
	cfg        Config
	log        *slog.Logger
	queries    *prometheus.CounterVec
	readErrors *prometheus.CounterVec
	forwarding chan struct{} // a token per UDP query being forwarded
}

// New validates cfg and returns a Server; its metrics are registered with
// reg when not nil.
func New(cfg Config, reg prometheus.Registerer) (*Server, error) {
	if cfg.Resolve == nil {
		return nil, errors.New("dns: Resolve is required")
	}
	if len(cfg.Domains) == 0 {
		cfg.Domains = []string{"svc.clusterset.local"}
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5 * time.Second
	}
	if cfg.MaxForwarding == 0 {
		cfg.MaxForwarding = 256
	}
	if cfg.MaxForwarding < 0 {
		return nil, errors.New("dns: MaxForwarding is negative")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log.With("component", "dns"), queries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fedmesh_sidecar_dns_queries_total",
		Help: "DNS queries by result (answer, nodata, nxdomain, refused, formerr, malformed; with forwarding: forwarded, forward_error, forward_dropped).",
	}, []string{"result"}),
		readErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_sidecar_dns_read_errors_total",
			Help: "Transient errors reading a UDP query or accepting a TCP connection, by transport (udp, tcp); the server goes on after each.",
		}, []string{"transport"}),
	}
	s.forwarding = make(chan struct{}, cfg.MaxForwarding)
	if reg != nil {
		for _, c := range []prometheus.Collector{s.queries, s.readErrors} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("dns: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Serve answers on udp and tcp (either may be nil) until ctx ends, then
// closes them and returns nil after in-flight TCP connections end. A read
// or accept error other than the conn being closed is counted, logged at
// debug level and followed by a short pause (so an error that repeats does
// not spin a core); only a closed conn, or ctx ending, stops a loop.
func (s *Server) Serve(ctx context.Context, udp net.PacketConn, tcp net.Listener) error {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() {
		if udp != nil {
			udp.Close()
		}
		if tcp != nil {
			tcp.Close()
		}
	})
	defer stop()
	if udp != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			pause := newErrorPause()
			for {
				n, addr, err := udp.ReadFrom(buf)
				if err != nil {
					if !s.readFailed(ctx, "udp", err, pause) {
						return
					}
					continue
				}
				pause.Reset()
				resp, fwd := s.answer(buf[:n], 512)
				if fwd {
					s.forwardUDP(ctx, &wg, udp, addr, append([]byte(nil), buf[:n]...))
					continue
				}
				if resp != nil {
					_, _ = udp.WriteTo(resp, addr)
				}
			}
		}()
	}
	if tcp != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conns sync.WaitGroup
			defer conns.Wait()
			pause := newErrorPause()
			for {
				c, err := tcp.Accept()
				if err != nil {
					if !s.readFailed(ctx, "tcp", err, pause) {
						return
					}
					continue
				}
				pause.Reset()
				conns.Add(1)
				go func() {
					defer conns.Done()
					s.serveTCP(ctx, c)
				}()
			}
		}()
	}
	wg.Wait()
	return nil
}

// Pauses after a transient read or accept error: the first is
// minErrorPause, each next one in a row doubles, up to maxErrorPause (as
// net/http's Server does for temporary Accept errors).
const (
	minErrorPause = 5 * time.Millisecond
	maxErrorPause = time.Second
)

// newErrorPause returns the pauses of one read or accept loop: reset
// after a read that succeeds.
func newErrorPause() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(minErrorPause),
		backoff.WithMaxInterval(maxErrorPause),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0),
	)
}

// readFailed handles err from a read or accept loop of transport and
// reports whether the loop goes on: false when the conn is closed or ctx
// has ended. Otherwise it counts the error and waits pause's next interval
// or until ctx ends.
func (s *Server) readFailed(ctx context.Context, transport string, err error, pause backoff.BackOff) bool {
	if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
		return false
	}
	s.readErrors.WithLabelValues(transport).Inc()
	d := pause.NextBackOff()
	s.log.Debug("dns read failed; retrying", "transport", transport, "err", err, "pause", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Server) serveTCP(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp, fwd := s.answer(msg, 65535)
		if fwd {
			resp = s.forward(ctx, msg, true)
		}
		if resp == nil {
			return
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// Answer builds the response to one query message, or nil when the
// message is too broken to answer. maxSize truncates UDP answers.
func (s *Server) Answer(query []byte, maxSize int) []byte {
	resp, _ := s.answer(query, maxSize)
	return resp
}

// answer is Answer, and whether the query is to be forwarded instead
// (Config.Forward is set and the name is not the server's).
func (s *Server) answer(query []byte, maxSize int) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		s.queries.WithLabelValues("malformed").Inc()
		return nil, false
	}
	if h.Response {
		s.queries.WithLabelValues("malformed").Inc()
		return nil, false
	}
	resp := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired}
	q, err := p.Question()
	if err != nil || h.OpCode != 0 {
		s.queries.WithLabelValues("formerr").Inc()
		resp.RCode = dnsmessage.RCodeFormatError
		if h.OpCode != 0 {
			resp.RCode = dnsmessage.RCodeNotImplemented
		}
		return build(resp, nil, nil, maxSize), false
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	addr, known := s.cfg.Resolve(name)
	if !known {
		if s.owns(name) {
			s.queries.WithLabelValues("nxdomain").Inc()
			resp.Authoritative = true
			resp.RCode = dnsmessage.RCodeNameError
		} else {
			if s.cfg.Forward != nil {
				return nil, true
			}
			s.queries.WithLabelValues("refused").Inc()
			resp.RCode = dnsmessage.RCodeRefused
		}
		return build(resp, &q, nil, maxSize), false
	}
	resp.Authoritative = true
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: uint32(s.cfg.TTL / time.Second)}
	var ans func(b *dnsmessage.Builder) error
	switch {
	case q.Type == dnsmessage.TypeA && addr.Is4():
		ans = func(b *dnsmessage.Builder) error { return b.AResource(rh, dnsmessage.AResource{A: addr.As4()}) }
	case q.Type == dnsmessage.TypeAAAA && addr.Is6() && !addr.Is4In6():
		ans = func(b *dnsmessage.Builder) error {
			return b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: addr.As16()})
		}
	}
	if ans == nil {
		s.queries.WithLabelValues("nodata").Inc()
	} else {
		s.queries.WithLabelValues("answer").Inc()
	}
	return build(resp, &q, ans, maxSize), false
}

func (s *Server) owns(name string) bool {
	for _, d := range s.cfg.Domains {
		if name == d || strings.HasSuffix(name, "."+d) {
			return true
		}
	}
	return false
}

func build(h dnsmessage.Header, q *dnsmessage.Question, ans func(*dnsmessage.Builder) error, maxSize int) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if q != nil {
		if b.StartQuestions() != nil || b.Question(*q) != nil {
			return nil
		}
	}
	if ans != nil {
		if b.StartAnswers() != nil || ans(&b) != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil || len(out) > maxSize {
		return nil
	}
	return out
}
