package gwprobe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/fedmesh/fedmesh/internal/identity"
)

// Defaults of Config.
const (
	// DefaultInterval is the mean time between two probe rounds.
	DefaultInterval = time.Second
	// DefaultTimeout bounds one probe of one gateway.
	DefaultTimeout = time.Second
	// DefaultConcurrency bounds the probes in flight at once.
	DefaultConcurrency = 8
	// DefaultServicesPerProbe is how many of a peer's services one probe
	// tries before it counts as failed.
	DefaultServicesPerProbe = 3
	// Jitter is the fraction of the interval by which each wait varies
	// (either way), so that the probes of many clusters spread out.
	Jitter = 0.2
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid gateway probe config")

// Config configures a Prober.
type Config struct {
	// Bundle is the federation's trust bundle: a probe succeeds only when
	// the sidecar behind the peer's gateway presents a workload SVID
	// chained to it. Required.
	Bundle identity.BundleSource
	// Certificate is this control plane's SVID, presented in probes of a
	// peer's gateway itself (naming.GatewayProbeSNI), which a gateway
	// answers only for a control plane of the federation. Nil: a peer
	// with no service to probe through is not probed.
	Certificate identity.CertSource
	// Interval is the mean time between two probe rounds, jittered by
	// Jitter. Default DefaultInterval.
	Interval time.Duration
	// Timeout bounds one probe of one gateway (all the services it
	// tries). Default DefaultTimeout.
	Timeout time.Duration
	// Concurrency bounds the probes in flight at once. Default
	// DefaultConcurrency.
	Concurrency int
	// ServicesPerProbe is how many of a peer's services one probe tries
	// in turn before it counts as failed. Default
	// DefaultServicesPerProbe.
	ServicesPerProbe int
	// Dial opens the TCP connection to a gateway. Default a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnRound is called after every round that changed a result, from
	// the prober's goroutine; it must not block.
	OnRound func()
	// Now tells the time; default time.Now.
	Now func() time.Time
	// Rand returns a float in [0, 1) for the jitter; default
	// math/rand/v2.Float64.
	Rand func() float64
	// Logger receives the prober's logs; default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Bundle == nil {
		return c, fmt.Errorf("%w: a trust bundle is required", ErrConfig)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"interval", &c.Interval, DefaultInterval}, {"timeout", &c.Timeout, DefaultTimeout}} {
		if *d.v < 0 {
			return c, fmt.Errorf("%w: negative %s %s", ErrConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Concurrency < 0 || c.ServicesPerProbe < 0 {
		return c, fmt.Errorf("%w: negative concurrency %d or services per probe %d", ErrConfig, c.Concurrency, c.ServicesPerProbe)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ServicesPerProbe == 0 {
		c.ServicesPerProbe = DefaultServicesPerProbe
	}
	if c.Dial == nil {
		d := &net.Dialer{}
		c.Dial = d.DialContext
	}
	if c.OnRound == nil {
		c.OnRound = func() {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = randFloat
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
