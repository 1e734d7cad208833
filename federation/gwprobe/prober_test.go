package gwprobe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/federation/proof/prooftest"
	"github.com/fedmesh/fedmesh/gateway/gatewaytest"
	"github.com/fedmesh/fedmesh/internal/identity"
	"github.com/fedmesh/fedmesh/internal/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runProber starts a prober with a short interval; it is stopped and
// waited for when the test ends.
func runProber(t *testing.T, reg prometheus.Registerer) *Prober {
	t.Helper()
	return startProber(t, Config{
		Bundle:   identity.StaticBundle(prooftest.Default(t).Bundle()),
		Interval: 20 * time.Millisecond,
		Timeout:  2 * time.Second,
	}, reg)
}

// startProber starts a prober with cfg; it is stopped and waited for
// when the test ends.
func startProber(t *testing.T, cfg Config, reg prometheus.Registerer) *Prober {
	t.Helper()
	p, err := New(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := p.Run(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return p
}

// count reads fedmesh_federation_gateway_probe_total{peer, result}.
func count(t *testing.T, p *Prober, peer, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := p.total.WithLabelValues(peer, result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func target(d *gatewaytest.DataPlane, ids ...string) Target {
	s := Service{SNI: d.Service.SNI()}
	for _, id := range ids {
		s.IDs = append(s.IDs, spiffeid.RequireFromString(id))
	}
	return Target{Gateway: d.Gateway(), Services: []Service{s}}
}

// waitResult polls the peer's result until check accepts it.
func waitResult(t *testing.T, p *Prober, peer, what string, check func(Result) error) Result {
	t.Helper()
	var r Result
	poll.Until(t, 30*time.Second, what, func() error {
		var ok bool
		if r, ok = p.Result(peer); !ok {
			return errors.New("not probed")
		}
		return check(r)
	})
	return r
}

func succeeded(r Result) error {
	if r.LastOK.IsZero() || r.Failures != 0 {
		return fmt.Errorf("result %+v", r)
	}
	return nil
}

func failedTimes(n int, label string) func(Result) error {
	return func(r Result) error {
		if r.Failures < n || r.LastResult != label {
			return fmt.Errorf("result %+v, want %d failures %s", r, n, label)
		}
		return nil
	}
}

// TestProbeThroughRealGateway: the probe reaches the workload through
// the gateway and is accepted on the workload's identity; the workload
// refuses (and counts) nothing, since the probe ends before presenting a
// certificate.
func TestProbeThroughRealGateway(t *testing.T) {
	d := startDataPlane(t, "c01")
	reg := prometheus.NewRegistry()
	p := runProber(t, reg)
	p.SetTargets(map[string]Target{"c01": target(d, workloadID)})
	waitResult(t, p, "c01", "a probe succeeds", succeeded)
	if n := count(t, p, "c01", ResultOK); n < 1 {
		t.Errorf("probe_total{result=ok} = %v", n)
	}
	if n := d.Refused.Load(); n != 0 {
		t.Errorf("the workload refused %d probe handshakes, want 0", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	registered := false
	for _, mf := range mfs {
		registered = registered || mf.GetName() == "fedmesh_federation_gateway_probe_total"
	}
	if !registered {
		t.Error("fedmesh_federation_gateway_probe_total not registered")
	}
}

func TestProbeFailures(t *testing.T) {
	t.Run("wrong identity", func(t *testing.T) {
		d := startDataPlane(t, "c01")
		p := runProber(t, nil)
		p.SetTargets(map[string]Target{"c01": target(d, "spiffe://"+prooftest.TrustDomain+"/ns/demo/sa/other")})
		r := waitResult(t, p, "c01", "probes fail on the identity", failedTimes(3, ResultBadIdentity))
		if !strings.Contains(r.LastError, "none of the service's") {
			t.Errorf("last error %q", r.LastError)
		}
	})
	t.Run("no healthy endpoint behind the gateway", func(t *testing.T) {
		d := startDataPlane(t, "c01")
		d.Route(t, false)
		p := runProber(t, nil)
		p.SetTargets(map[string]Target{"c01": target(d, workloadID)})
		waitResult(t, p, "c01", "probes refused", failedTimes(3, ResultRefused))
	})
	t.Run("gateway gone, then back", func(t *testing.T) {
		d := startDataPlane(t, "c01")
		p := runProber(t, nil)
		p.SetTargets(map[string]Target{"c01": target(d, workloadID)})
		waitResult(t, p, "c01", "a probe succeeds", succeeded)
		d.StopGateway()
		r := waitResult(t, p, "c01", "probes unreachable", failedTimes(3, ResultUnreachable))
		if r.LastOK.IsZero() || !r.Last.After(r.LastOK) {
			t.Errorf("result %+v: want the last success kept, before the last probe", r)
		}
	})
	t.Run("one service refused, another answers", func(t *testing.T) {
		d := startDataPlane(t, "c01")
		p := runProber(t, nil)
		good := target(d, workloadID)
		bad := Service{SNI: "9999.nothing.demo.svc.clusterset.local"}
		good.Services = []Service{bad, good.Services[0]}
		p.SetTargets(map[string]Target{"c01": good})
		// Every probe starts from another service; each succeeds.
		waitResult(t, p, "c01", "probes succeed", func(r Result) error {
			if err := succeeded(r); err != nil {
				return err
			}
			if n := count(t, p, "c01", ResultOK); n < 4 {
				return fmt.Errorf("%v probes ok so far", n)
			}
			if n := count(t, p, "c01", ResultRefused); n != 0 {
				return fmt.Errorf("%v probes failed", n)
			}
			return nil
		})
	})
}

// TestSetTargets: a peer that leaves the targets loses its result; one
// with no service is not probed.
func TestSetTargets(t *testing.T) {
	p, err := New(Config{Bundle: identity.StaticBundle(prooftest.Default(t).Bundle())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.SetTargets(map[string]Target{
		"a": {Gateway: "127.0.0.1:1", Services: []Service{{SNI: "8080.echo.demo.svc.clusterset.local"}}},
		"b": {Gateway: "127.0.0.1:2"},
	})
	if _, ok := p.Result("a"); !ok {
		t.Error("a not probed")
	}
	if _, ok := p.Result("b"); ok {
		t.Error("b probed without a service")
	}
	p.SetTargets(nil)
	if _, ok := p.Result("a"); ok {
		t.Error("a still probed")
	}
}

func TestConfigErrors(t *testing.T) {
	bundle := identity.StaticBundle(prooftest.Default(t).Bundle())
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no bundle", Config{}, "trust bundle is required"},
		{"negative interval", Config{Bundle: bundle, Interval: -time.Second}, "negative interval"},
		{"negative timeout", Config{Bundle: bundle, Timeout: -time.Second}, "negative timeout"},
		{"negative concurrency", Config{Bundle: bundle, Concurrency: -1}, "negative concurrency"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, nil)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want ErrConfig with %q", err, tt.want)
			}
		})
	}
}

// TestJitter: waits stay within the jitter of the interval.
func TestJitter(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		p, err := New(Config{Bundle: identity.StaticBundle(prooftest.Default(t).Bundle()), Rand: func() float64 { return r }}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if w := p.wait(); w < 800*time.Millisecond || w > 1200*time.Millisecond {
			t.Errorf("rand %v: wait %v outside 1s ± 20%%", r, w)
		}
	}
}
