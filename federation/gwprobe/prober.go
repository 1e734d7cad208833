package gwprobe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/naming"
)

func randFloat() float64 { return rand.Float64() }

// Target is what a peer's gateway is probed with.
type Target struct {
	// Gateway is the peer gateway's host:port.
	Gateway string
	// Services are the peer's exported service ports that have a ready
	// endpoint, the ones a probe may name. None: the probe names the
	// gateway itself (naming.GatewayProbeSNI), which needs
	// Config.Certificate.
	Services []Service
}

// Service is one exported service port of a peer.
type Service struct {
	// SNI is the server name that routes to the service port through the
	// gateway (naming.ServicePort.SNI).
	SNI string
	// IDs are the workload identities of its ready endpoints: the sidecar
	// that answers must present one of them. Empty accepts any workload
	// identity of the trust domain.
	IDs []spiffeid.ID
}

// Result is how probing of one peer's gateway is doing.
type Result struct {
	// Gateway is the address probed.
	Gateway string `json:"gateway"`
	// Since is when probing of this gateway began.
	Since time.Time `json:"since"`
	// Self is true while the probes name the gateway itself (the peer
	// exports no service with a ready endpoint to probe it through).
	Self bool `json:"self,omitempty"`
	// Failures counts the probes that failed in a row since the last
	// success.
	Failures int `json:"failures"`
	// Unanswered counts the probes in a row the gateway itself did not
	// answer (results unreachable and timeout); any other result resets
	// it.
	Unanswered int `json:"unanswered"`
	// Last is when the last probe ended; zero before the first.
	Last time.Time `json:"last,omitzero"`
	// LastOK is when a probe last succeeded.
	LastOK time.Time `json:"lastOK,omitzero"`
	// LastResult is the last probe's result label (Result*).
	LastResult string `json:"lastResult,omitempty"`
	// LastError is the last failure, for humans.
	LastError string `json:"lastError,omitempty"`
}

// Probe results, the result label of
// fedmesh_federation_gateway_probe_total.
const (
	// ResultOK: the gateway spliced the probe to a peer sidecar that
	// proved an expected workload identity.
	ResultOK = "ok"
	// ResultUnreachable: no TCP connection to the gateway.
	ResultUnreachable = "unreachable"
	// ResultRefused: the connection closed during the handshake (the
	// gateway refused the server name or found no healthy endpoint).
	ResultRefused = "refused"
	// ResultTimeout: no answer within the timeout.
	ResultTimeout = "timeout"
	// ResultBadIdentity: the sidecar that answered presented a
	// certificate that is not an expected workload SVID of the
	// federation.
	ResultBadIdentity = "bad_identity"
)

// errProbeDone ends a probe's handshake once the server has proved its
// identity, before this side presents any certificate.
var errProbeDone = errors.New("gateway probe: server verified")

// Prober probes peers' gateways. Run drives it; SetTargets, Results and
// Forget may be called from any goroutine.
type Prober struct {
	cfg   Config
	log   *slog.Logger
	total *prometheus.CounterVec

	mu      sync.Mutex // guards the following
	targets map[string]Target
	results map[string]Result
	next    map[string]int // rotating first service of each peer
}

// New validates cfg and returns a Prober; its metric is registered with
// reg (nil: not registered).
func New(cfg Config, reg prometheus.Registerer) (*Prober, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fedmesh_federation_gateway_probe_total",
		Help: "Probes of peers' east-west gateways through the mTLS path, by peer and result.",
	}, []string{"peer", "result"})
	if reg != nil {
		if err := reg.Register(total); err != nil {
			return nil, fmt.Errorf("register gateway probe metrics: %w", err)
		}
	}
	return &Prober{
		cfg: cfg, log: cfg.Logger.With("component", "gateway-probe"), total: total,
		targets: map[string]Target{}, results: map[string]Result{}, next: map[string]int{},
	}, nil
}

// SetTargets replaces the peers to probe. A peer that leaves the set
// loses its result; a peer whose gateway changes starts afresh.
func (p *Prober) SetTargets(targets map[string]Target) {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for peer := range p.targets {
		if _, ok := targets[peer]; !ok {
			delete(p.results, peer)
			delete(p.next, peer)
		}
	}
	next := make(map[string]Target, len(targets))
	for peer, t := range targets {
		if t.Gateway == "" || (len(t.Services) == 0 && p.cfg.Certificate == nil) {
			delete(p.results, peer)
			continue
		}
		next[peer] = t
		self := len(t.Services) == 0
		if r, ok := p.results[peer]; !ok || r.Gateway != t.Gateway {
			p.results[peer] = Result{Gateway: t.Gateway, Since: now, Self: self}
		} else if r.Self != self {
			// Evidence of the one path stands for the other: the
			// gateway's answer counts until the next probe.
			r.Self = self
			p.results[peer] = r
		}
	}
	p.targets = next
}

// Targets returns the current targets.
func (p *Prober) Targets() map[string]Target {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.targets)
}

// Result returns the result of the peer's gateway, and false when it is
// not probed.
func (p *Prober) Result(peer string) (Result, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.results[peer]
	return r, ok
}

// Forget drops the peer's metric series (a peer removed for good).
func (p *Prober) Forget(peer string) {
	p.total.DeletePartialMatch(prometheus.Labels{"peer": peer})
}

// Run probes every target once per jittered interval until ctx ends.
// A round waits for its probes (each bounded by Config.Timeout, at most
// Config.Concurrency at once) before the next wait begins, so probes
// never pile up.
func (p *Prober) Run(ctx context.Context) error {
	for {
		if !sleep(ctx, p.wait()) {
			return ctx.Err()
		}
		p.round(ctx)
	}
}

func (p *Prober) wait() time.Duration {
	f := 1 + Jitter*(2*p.cfg.Rand()-1)
	return time.Duration(float64(p.cfg.Interval) * f)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type job struct {
	peer     string
	target   Target
	services []Service
}

// round probes every target once.
func (p *Prober) round(ctx context.Context) {
	p.mu.Lock()
	jobs := make([]job, 0, len(p.targets))
	for _, peer := range slices.Sorted(maps.Keys(p.targets)) {
		t := p.targets[peer]
		var svcs []Service
		if len(t.Services) > 0 {
			n := min(p.cfg.ServicesPerProbe, len(t.Services))
			first := p.next[peer] % len(t.Services)
			p.next[peer] = first + 1
			svcs = make([]Service, 0, n)
			for i := range n {
				svcs = append(svcs, t.Services[(first+i)%len(t.Services)])
			}
		}
		jobs = append(jobs, job{peer: peer, target: t, services: svcs})
	}
	p.mu.Unlock()
	if len(jobs) == 0 {
		return
	}
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			result, err := p.probe(ctx, j.peer, j.target.Gateway, j.services)
			if ctx.Err() != nil {
				return // shutting down: not the gateway's fault
			}
			p.record(j.peer, j.target.Gateway, result, err)
		})
	}
	wg.Wait()
	p.cfg.OnRound()
}

func (p *Prober) record(peer, gateway, result string, err error) {
	p.total.WithLabelValues(peer, result).Inc()
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.results[peer]
	if !ok || r.Gateway != gateway {
		return // targets changed meanwhile
	}
	r.Last, r.LastResult = now, result
	if result == ResultUnreachable || result == ResultTimeout {
		r.Unanswered++
	} else {
		r.Unanswered = 0
	}
	if result == ResultOK {
		if r.Failures > 0 {
			p.log.Info("peer gateway answers probes again", "peer", peer, "gateway", gateway, "after_failures", r.Failures)
		}
		r.Failures, r.LastOK, r.LastError = 0, now, ""
	} else {
		r.Failures++
		r.LastError = err.Error()
		if r.Failures == 1 {
			p.log.Warn("peer gateway probe failed", "peer", peer, "gateway", gateway, "result", result, "err", err)
		}
	}
	p.results[peer] = r
}

// probe tries services in turn through the gateway until one answers,
// or, with no service, the gateway itself, within one Timeout; it
// returns the result label and, for a failure, the last error.
func (p *Prober) probe(ctx context.Context, peer, gateway string, services []Service) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	if len(services) == 0 {
		return p.probeGateway(ctx, peer, gateway)
	}
	result, err := ResultRefused, errors.New("no service to probe")
	for _, s := range services {
		result, err = p.probeService(ctx, gateway, s)
		if result == ResultOK || ctx.Err() != nil || result == ResultUnreachable {
			break
		}
	}
	return result, err
}

// dial connects to the gateway; on failure it returns the result label.
func (p *Prober) dial(ctx context.Context, gateway string) (net.Conn, string, error) {
	raw, err := p.cfg.Dial(ctx, "tcp", gateway)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, ResultTimeout, fmt.Errorf("dial gateway %s: %w", gateway, err)
		}
		return nil, ResultUnreachable, fmt.Errorf("dial gateway %s: %w", gateway, err)
	}
	return raw, "", nil
}

// failure labels a failed handshake or read: timeout or refused.
func (p *Prober) failure(ctx context.Context, what string, err error) (string, error) {
	if ctx.Err() != nil {
		return ResultTimeout, fmt.Errorf("%s: no answer within %s", what, p.cfg.Timeout)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ResultTimeout, fmt.Errorf("%s: %w", what, err)
	}
	return ResultRefused, fmt.Errorf("%s: %w", what, err)
}

func (p *Prober) probeService(ctx context.Context, gateway string, s Service) (string, error) {
	raw, result, err := p.dial(ctx, gateway)
	if err != nil {
		return result, err
	}
	defer raw.Close()
	verified := false
	var verifyErr error
	cfg := &tls.Config{
		ServerName: s.SNI,
		MinVersion: tls.VersionTLS13,
		// The marker first, so the gateway counts a probe, not traffic;
		// then what sidecars and gRPC servers pick.
		NextProtos:         []string{naming.ProbeALPN, "h2", "http/1.1"},
		InsecureSkipVerify: true, // SPIFFE verification in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			verifyErr = p.verify(cs, s.IDs)
			return verifyErr
		},
		// Called once the server's certificate, its signature over the
		// handshake and its Finished are checked: the sidecar proved its
		// identity. The probe ends here, before this side presents a
		// certificate, so the sidecar refuses (and counts) nothing.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			verified = verifyErr == nil
			return nil, errProbeDone
		},
	}
	conn := tls.Client(raw, cfg)
	err = conn.HandshakeContext(ctx)
	switch {
	case verifyErr != nil:
		return ResultBadIdentity, fmt.Errorf("service %s through gateway %s: %w", s.SNI, gateway, verifyErr)
	case verified || err == nil:
		return ResultOK, nil
	}
	return p.failure(ctx, fmt.Sprintf("service %s through gateway %s", s.SNI, gateway), err)
}

// verify accepts a workload SVID of the federation, one of ids when
// there are any.
func (p *Prober) verify(cs tls.ConnectionState, ids []spiffeid.ID) error {
	id, err := identity.VerifyPeerCertificates(cs.PeerCertificates, p.cfg.Bundle.Bundle(), p.cfg.Now())
	if err != nil {
		return err
	}
	if !identity.IsWorkload(id) {
		return fmt.Errorf("%w: %s is not a workload identity", identity.ErrUnauthorized, id)
	}
	if len(ids) > 0 && !slices.Contains(ids, id) {
		return fmt.Errorf("%w: %s is none of the service's %d endpoint identities", identity.ErrUnauthorized, id, len(ids))
	}
	return nil
}
