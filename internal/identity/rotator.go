package identity

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
)

// RotatorConfig configures a Rotator.
type RotatorConfig struct {
	// Renew obtains a fresh certificate: leaf first in Certificate, then
	// intermediates, with the private key. Leaf may be left nil; it is
	// parsed. Called only from Run's goroutine. Required.
	Renew func(ctx context.Context) (*tls.Certificate, error)
	// Now tells the time; default time.Now.
	Now func() time.Time
	// After sends on the returned channel once d has passed; default
	// time.After. Tests pass a fake clock's Now and After.
	After func(d time.Duration) <-chan time.Time
	// RetryInitial is the first wait after a failed renewal. Default 1s.
	RetryInitial time.Duration
	// RetryMax caps the (exponentially growing, jittered) wait between
	// failed renewals. Default 1m.
	RetryMax time.Duration
	// Logger receives renewal failures (warn) and renewals (debug).
	// Default: discard.
	Logger *slog.Logger
	// Registerer, if set, registers the rotator's metrics
	// (fedmesh_identity_renewals_total{result}, fedmesh_identity_cert_expiry_seconds).
	Registerer prometheus.Registerer
	// ConstLabels are added to the metrics, to tell rotators apart in one
	// registry (for example {"identity": "sidecar"}).
	ConstLabels prometheus.Labels
}

// Rotator holds the current certificate and trust bundle of one identity
// and renews the certificate at half its lifetime. Handshakes read the
// newest certificate through Certificate, GetCertificate or
// GetClientCertificate, so a renewed certificate is used for new
// connections while established ones keep going (TLS never re-reads the
// certificate of an established connection). All methods are safe for
// concurrent use.
type Rotator struct {
	cfg RotatorConfig

	cert    atomic.Pointer[tls.Certificate]
	bundle  atomic.Pointer[x509bundle.Bundle]
	running atomic.Bool

	mu   sync.Mutex // guards the following
	subs map[chan struct{}]struct{}

	renewals *prometheus.CounterVec
	expiry   prometheus.Gauge
}

var (
	_ CertSource   = (*Rotator)(nil)
	_ BundleSource = (*Rotator)(nil)
)

// NewRotator validates cfg and returns a Rotator with no certificate and no
// bundle; set them with SetCertificate and SetBundle, or let Run fetch the
// first certificate.
func NewRotator(cfg RotatorConfig) (*Rotator, error) {
	if cfg.Renew == nil {
		return nil, errors.New("rotator: Renew is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial = time.Second
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = time.Minute
	}
	if cfg.RetryInitial < 0 || cfg.RetryMax < cfg.RetryInitial {
		return nil, fmt.Errorf("rotator: bad retry bounds %s..%s", cfg.RetryInitial, cfg.RetryMax)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Rotator{
		cfg:  cfg,
		subs: make(map[chan struct{}]struct{}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "fedmesh_identity_renewals_total",
			Help:        "Certificate renewals by result (ok, error).",
			ConstLabels: cfg.ConstLabels,
		}, []string{"result"}),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "fedmesh_identity_cert_expiry_seconds",
			Help:        "Expiry of the current certificate, as Unix seconds.",
			ConstLabels: cfg.ConstLabels,
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.renewals, r.expiry} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("rotator: register metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Certificate returns the current certificate, or ErrNoLocalCertificate.
func (r *Rotator) Certificate() (*tls.Certificate, error) {
	c := r.cert.Load()
	if c == nil {
		return nil, ErrNoLocalCertificate
	}
	return c, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate()
}

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (r *Rotator) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.Certificate()
}

// Bundle returns the current trust bundle, nil before SetBundle.
func (r *Rotator) Bundle() *x509bundle.Bundle { return r.bundle.Load() }

// SetBundle replaces the trust bundle and notifies subscribers.
func (r *Rotator) SetBundle(b *x509bundle.Bundle) {
	r.bundle.Store(b)
	r.notify()
}

// SetCertificate checks c (a chain with a parseable leaf and the private
// key of that leaf) and makes it current, then notifies subscribers. A bad
// certificate is refused with an error and the current one is kept.
func (r *Rotator) SetCertificate(c *tls.Certificate) error {
	if c == nil || len(c.Certificate) == 0 {
		return errors.New("rotator: empty certificate")
	}
	if c.PrivateKey == nil {
		return errors.New("rotator: certificate without private key")
	}
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return fmt.Errorf("rotator: parse leaf: %w", err)
		}
		cc := *c
		cc.Leaf = leaf
		c = &cc
	}
	signer, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("rotator: private key of type %T cannot sign", c.PrivateKey)
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		return errors.New("rotator: private key does not match the leaf certificate")
	}
	if !leaf.NotAfter.After(leaf.NotBefore) {
		return fmt.Errorf("rotator: leaf validity %s..%s is empty", leaf.NotBefore, leaf.NotAfter)
	}
	r.cert.Store(c)
	r.expiry.Set(float64(leaf.NotAfter.Unix()))
	r.notify()
	return nil
}

// RenewalTime is when a certificate should be renewed: half way through
// its validity.
func RenewalTime(leaf *x509.Certificate) time.Time {
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
}

// Subscribe returns a channel that receives a value after each change of
// certificate or bundle (changes coalesce: one value may stand for
// several), and a function to unsubscribe.
func (r *Rotator) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.subs, ch)
			r.mu.Unlock()
		})
	}
}

func (r *Rotator) notify() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Run renews the certificate at half its lifetime until ctx is done, and
// right away when there is none yet. A failed renewal keeps the current
// certificate and is retried with exponential backoff. Run blocks; call it
// once, from a goroutine the caller waits for. It returns nil when ctx is
// done.
func (r *Rotator) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("rotator: Run called twice")
	}
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.cfg.RetryInitial),
		backoff.WithMaxInterval(r.cfg.RetryMax),
		backoff.WithMaxElapsedTime(0),
	)
	justRenewed := false
	for {
		var wait time.Duration
		if c := r.cert.Load(); c != nil {
			wait = RenewalTime(c.Leaf).Sub(r.cfg.Now())
			if wait <= 0 && justRenewed {
				// The CA handed out a certificate already past half life:
				// do not spin, back off.
				wait = bo.NextBackOff()
			}
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-r.cfg.After(wait):
			}
		}
		c, err := r.cfg.Renew(ctx)
		if err == nil {
			err = r.SetCertificate(c)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.renewals.WithLabelValues("error").Inc()
			d := bo.NextBackOff()
			r.cfg.Logger.Warn("certificate renewal failed", "err", err, "retry_in", d)
			select {
			case <-ctx.Done():
				return nil
			case <-r.cfg.After(d):
			}
			justRenewed = false
			continue
		}
		r.renewals.WithLabelValues("ok").Inc()
		leaf, _ := r.Certificate()
		r.cfg.Logger.Debug("certificate renewed", "serial", leaf.Leaf.SerialNumber.String(), "not_after", leaf.Leaf.NotAfter)
		bo.Reset()
		justRenewed = true
	}
}
