package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fedmesh/fedmesh/federation"
)

// The bounds scenario (`fedmesh demo --scenario bounds`) measures what the
// federation promises when a cluster fails, with given gossip and fencing
// timings, on a fresh demo each time:
//
//   - fence: east-1's echo is down, so east-1's client is served by
//     east-2; east-2's control plane and gateway are killed (SIGKILL).
//     How long until east-1 and west-1 fence east-2, and the client's
//     errors in the first 5s and after (until every observer fenced it
//     and 5s more). Then both are started again: how long until every
//     observer trusts east-2 again (heal), and until the client is
//     served by east-2 again.
//   - partition: the same with east-2's control plane and gateway frozen
//     (SIGSTOP) instead of killed, and resumed (SIGCONT): to the other
//     clusters east-2 is cut off and comes back with its state, as
//     across a partition. The demo runs on loopback addresses, without
//     network namespaces; the e2e partition test cuts real links.
//   - reconnect: east-1's control plane is killed and started again after
//     each of ReconnectOutages: how long from its /readyz answering until
//     the first, and every, proxy of east-1 has its xDS stream again. A
//     longer outage lets the proxies' reconnect backoff grow.
//
// Times are read by polling every 100ms (the admin API, the proxies'
// answers), so they are good to about 0.2s.

// ReconnectOutages are how long the control plane stays down in the
// reconnect measurements.
var ReconnectOutages = []time.Duration{5 * time.Second, 30 * time.Second}

// boundsTimeout bounds each wait of the bounds scenario.
const boundsTimeout = 3 * time.Minute

// Bounds is what the bounds scenario measured with one Federation. A
// time of -1 means it did not happen within the scenario's bound.
type Bounds struct {
	Federation Federation `json:"federation"`
	// Fence is the peer whose control plane and gateway were killed, then
	// restarted.
	Fence Outage `json:"fence"`
	// Partition is the peer whose control plane and gateway were frozen,
	// then resumed.
	Partition Outage `json:"partition"`
	// Reconnect is east-1's proxies reconnecting to its restarted
	// control plane, once per ReconnectOutages.
	Reconnect []Reconnect `json:"reconnect"`
}

// Outage is one failure of a peer as the others and a client saw it.
type Outage struct {
	// Fault is what was done to the peer.
	Fault string `json:"fault"`
	// FencedSeconds is, per observing cluster, from the fault until it
	// fenced the peer.
	FencedSeconds map[string]float64 `json:"fencedSeconds"`
	// Requests and Errors of the client in the first 5s after the fault,
	// and from then until every observer had fenced the peer and 5s
	// more.
	RequestsFirst5s int `json:"requestsFirst5s"`
	ErrorsFirst5s   int `json:"errorsFirst5s"`
	RequestsAfter   int `json:"requestsAfter"`
	ErrorsAfter     int `json:"errorsAfter"`
	// LastError is the last failed request's error, for humans.
	LastError string `json:"lastError,omitempty"`
	// Recovery is what was done to bring the peer back.
	Recovery string `json:"recovery"`
	// HealedSeconds is, per observer, from the recovery until it trusts
	// the peer again (alive, connected, not fenced).
	HealedSeconds map[string]float64 `json:"healedSeconds"`
	// TrafficBackSeconds is from the recovery until the client is served
	// by the peer again.
	TrafficBackSeconds float64 `json:"trafficBackSeconds"`
	// ErrorsInRecovery counts the client's errors from the recovery
	// until every observer trusted the peer and 5s more.
	ErrorsInRecovery int `json:"errorsInRecovery"`
}

// Reconnect is proxies reconnecting to a restarted control plane.
type Reconnect struct {
	// OutageSeconds is how long the control plane was down.
	OutageSeconds float64 `json:"outageSeconds"`
	// ReadySeconds is from its start until /readyz answered.
	ReadySeconds float64 `json:"readySeconds"`
	// Proxies is how many of the cluster's proxies run.
	Proxies int `json:"proxies"`
	// FirstSeconds and AllSeconds are from /readyz answering until the
	// first and every proxy had its xDS stream again.
	FirstSeconds float64 `json:"firstSeconds"`
	AllSeconds   float64 `json:"allSeconds"`
}

// RunBounds runs the bounds scenario once per federation timings, each on
// a fresh demo in its own directory under cfg.Dir, and returns what it
// measured. cfg.Federation is ignored.
func RunBounds(ctx context.Context, cfg Config, feds []Federation) ([]Bounds, error) {
	var out []Bounds
	for i, f := range feds {
		c := cfg
		c.Federation = &f
		c.Dir = filepath.Join(cfg.Dir, fmt.Sprintf("bounds-%d", i+1))
		b, err := runBounds(ctx, c)
		if err != nil {
			return out, fmt.Errorf("bounds with %s timings: %w (logs in %s)", f.Name, err, filepath.Join(c.Dir, "logs"))
		}
		out = append(out, *b)
	}
	return out, nil
}

func runBounds(ctx context.Context, cfg Config) (_ *Bounds, err error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 2
	}
	if cfg.Rate == 0 {
		cfg.Rate = 50
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if !cfg.BaseAddress.IsValid() {
		cfg.BaseAddress = DefaultBaseAddress
	}
	clusters, err := LayoutAt(cfg.Clusters, cfg.BaseAddress)
	if err != nil {
		return nil, err
	}
	logDir := filepath.Join(cfg.Dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	d := &demo{cfg: cfg, tm: DefaultTimings, clusters: clusters, procs: &Procs{Binary: cfg.Binary, LogDir: logDir}}
	ctx, stopSupervising := d.supervise(ctx)
	defer stopSupervising()
	defer d.procs.StopAll(10 * time.Second)
	defer func() {
		if err != nil {
			err = d.failure(ctx, err)
		}
	}()
	if err := d.checkAddresses(); err != nil {
		return nil, err
	}
	d.progress("bounds with %s timings (control plane flags: %s)", cfg.Federation.Name, strings.Join(cfg.Federation.args(), " "))
	if err := d.setUp(ctx); err != nil {
		return nil, err
	}
	b := &Bounds{Federation: *cfg.Federation}
	east1, east2 := clusters[0], clusters[1]

	load := &Load{URL: echoURL, Rate: d.cfg.Rate, MaxRequests: d.cfg.Rate * int(6*boundsTimeout/time.Second), Client: d.client(east1)}
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		load.Run(lctx)
	}()
	defer func() { stopLoad(); wg.Wait() }()

	// east-1's client is served by east-2, through east-2's gateway.
	if err := d.killEcho(east1); err != nil {
		return nil, err
	}
	if err := d.waitServedBy(ctx, load, east2.Name, time.Now()); err != nil {
		return nil, err
	}

	procs := []string{"controlplane-" + east2.Name, "gateway-" + east2.Name}
	d.progress("fence: killing %s's control plane and gateway (SIGKILL)", east2.Name)
	b.Fence, err = d.outage(ctx, load, east2,
		"SIGKILL of the control plane and gateway", func() error { return d.signal(procs, syscall.SIGKILL) },
		"both started again", func() error { return d.restart(procs) })
	if err != nil {
		return nil, err
	}
	d.progress("partition: freezing %s's control plane and gateway (SIGSTOP)", east2.Name)
	b.Partition, err = d.outage(ctx, load, east2,
		"SIGSTOP of the control plane and gateway", func() error { return d.signal(procs, syscall.SIGSTOP) },
		"both resumed (SIGCONT)", func() error { return d.signal(procs, syscall.SIGCONT) })
	if err != nil {
		return nil, err
	}
	for _, outage := range ReconnectOutages {
		d.progress("reconnect: killing %s's control plane for %v", east1.Name, outage)
		r, err := d.reconnect(ctx, east1, outage)
		if err != nil {
			return nil, err
		}
		b.Reconnect = append(b.Reconnect, r)
	}
	return b, nil
}

// outage applies fault to peer, measures until every other cluster fenced
// it, applies recovery and measures until they trust it again.
func (d *demo) outage(ctx context.Context, load *Load, peer Cluster, fault string, apply func() error,
	recovery string, heal func() error) (Outage, error) {
	o := Outage{Fault: fault, Recovery: recovery}
	var observers []Cluster
	for _, c := range d.clusters {
		if c.Name != peer.Name {
			observers = append(observers, c)
		}
	}
	t0 := time.Now()
	if err := apply(); err != nil {
		return o, err
	}
	fenced, err := d.watchPeer(ctx, observers, peer.Name, t0, func(m federation.MemberStatus) bool { return m.Fenced })
	if err != nil {
		return o, err
	}
	o.FencedSeconds = fenced
	if err := sleep(ctx, time.Until(t0.Add(seconds(maxOf(fenced))+5*time.Second))); err != nil {
		return o, err
	}
	first, after := load.Between(t0, t0.Add(5*time.Second)), load.Between(t0.Add(5*time.Second), time.Now())
	o.RequestsFirst5s, o.ErrorsFirst5s = len(first), countErrors(first, &o.LastError)
	o.RequestsAfter, o.ErrorsAfter = len(after), countErrors(after, &o.LastError)
	d.progress("  fenced after %s; client errors %d of %d in the first 5s, %d of %d after",
		secondsString(fenced), o.ErrorsFirst5s, o.RequestsFirst5s, o.ErrorsAfter, o.RequestsAfter)

	t1 := time.Now()
	if err := heal(); err != nil {
		return o, err
	}
	healed, err := d.watchPeer(ctx, observers, peer.Name, t1, func(m federation.MemberStatus) bool {
		return !m.Fenced && m.Connected && m.State == "alive"
	})
	if err != nil {
		return o, err
	}
	o.HealedSeconds = healed
	o.TrafficBackSeconds = -1
	if err := d.waitServedBy(ctx, load, peer.Name, t1); err == nil {
		for _, s := range load.Since(t1) {
			if s.Cluster == peer.Name {
				o.TrafficBackSeconds = s.At.Sub(t1).Seconds()
				break
			}
		}
	} else if ctx.Err() != nil {
		return o, err
	}
	if err := sleep(ctx, time.Until(t1.Add(seconds(maxOf(healed))+5*time.Second))); err != nil {
		return o, err
	}
	var last string
	o.ErrorsInRecovery = countErrors(load.Since(t1), &last)
	d.progress("  healed after %s; client served by %s again after %.1fs; %d errors",
		secondsString(healed), peer.Name, o.TrafficBackSeconds, o.ErrorsInRecovery)
	return o, nil
}

// watchPeer polls every observer's federation status from t0 until cond
// holds for peer's member, and returns the seconds from t0 per observer
// (-1 for one where it did not within boundsTimeout).
func (d *demo) watchPeer(ctx context.Context, observers []Cluster, peer string, t0 time.Time,
	cond func(federation.MemberStatus) bool) (map[string]float64, error) {
	out := map[string]float64{}
	for _, o := range observers {
		out[o.Name] = -1
	}
	deadline := t0.Add(boundsTimeout)
	for time.Now().Before(deadline) {
		pending := 0
		for _, o := range observers {
			if out[o.Name] >= 0 {
				continue
			}
			var st federation.Status
			if err := d.getJSON(o.Admin()+federation.StatusPath, &st); err == nil {
				for _, m := range st.Members {
					if m.Name == peer && cond(m) {
						out[o.Name] = time.Since(t0).Seconds()
					}
				}
			}
			if out[o.Name] < 0 {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return out, err
		}
	}
	return out, nil
}

// reconnect kills c's control plane, starts it again after outage and
// measures its proxies reconnecting.
func (d *demo) reconnect(ctx context.Context, c Cluster, outage time.Duration) (Reconnect, error) {
	r := Reconnect{FirstSeconds: -1, AllSeconds: -1}
	for _, name := range d.procs.names() {
		if (strings.HasPrefix(name, c.Name+"-") && strings.HasSuffix(name, "-sidecar")) || name == "gateway-"+c.Name {
			if p := d.procs.Get(name); p != nil && !p.Exited() {
				r.Proxies++
			}
		}
	}
	name := "controlplane-" + c.Name
	t0 := time.Now()
	if err := d.signal([]string{name}, syscall.SIGKILL); err != nil {
		return r, err
	}
	if err := sleep(ctx, outage); err != nil {
		return r, err
	}
	t1 := time.Now()
	r.OutageSeconds = t1.Sub(t0).Seconds()
	if err := d.restart([]string{name}); err != nil {
		return r, err
	}
	if err := d.waitHTTP(ctx, "control plane "+c.Name, c.Admin()+"/readyz", boundsTimeout); err != nil {
		return r, err
	}
	ready := time.Now()
	r.ReadySeconds = ready.Sub(t1).Seconds()
	err := poll(ctx, boundsTimeout, "proxies of "+c.Name+" reconnected", func() error {
		n, err := d.gauge(c.Admin()+"/metrics", "fedmesh_xds_connected_nodes")
		if err != nil {
			return err
		}
		if n >= 1 && r.FirstSeconds < 0 {
			r.FirstSeconds = time.Since(ready).Seconds()
		}
		if int(n) < r.Proxies {
			return fmt.Errorf("%v of %d proxies connected", n, r.Proxies)
		}
		r.AllSeconds = time.Since(ready).Seconds()
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return r, err
	}
	d.progress("  ready %.1fs after its start; first proxy back after %.1fs, all %d after %.1fs",
		r.ReadySeconds, r.FirstSeconds, r.Proxies, r.AllSeconds)
	return r, nil
}

// waitServedBy waits until a request of load started after since is
// served by cluster.
func (d *demo) waitServedBy(ctx context.Context, load *Load, cluster string, since time.Time) error {
	return poll(ctx, boundsTimeout, "the client served by "+cluster, func() error {
		for _, s := range load.Since(since) {
			if s.Cluster == cluster {
				return nil
			}
		}
		return fmt.Errorf("no request served by %s yet", cluster)
	})
}

// signal sends sig to the named processes; SIGKILL goes through Kill, so
// that their exit is not taken for a failure.
func (d *demo) signal(names []string, sig syscall.Signal) error {
	for _, name := range names {
		p := d.procs.Get(name)
		if p == nil {
			return fmt.Errorf("no process %s", name)
		}
		if sig == syscall.SIGKILL {
			p.Kill()
			continue
		}
		if err := p.cmd.Process.Signal(sig); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func (d *demo) restart(names []string) error {
	for _, name := range names {
		if _, err := d.procs.Restart(name); err != nil {
			return err
		}
	}
	return nil
}

// gauge reads one unlabelled sample of a Prometheus text page.
func (d *demo) gauge(url, name string) (float64, error) {
	code, body, err := d.httpGet(url)
	if err != nil {
		return 0, err
	}
	if code != 200 {
		return 0, fmt.Errorf("%s: %d", url, code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s has no %s", url, name)
}

func countErrors(ss []Sample, last *string) int {
	n := 0
	for _, s := range ss {
		if s.Err != nil {
			n++
			*last = s.Err.Error()
		}
	}
	return n
}

// maxOf is the largest value of m; -1 when one is -1 (it never
// happened).
func maxOf(m map[string]float64) float64 {
	out := 0.0
	for _, v := range m {
		if v < 0 {
			return -1
		}
		out = max(out, v)
	}
	return out
}

func seconds(s float64) time.Duration {
	if s < 0 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// secondsString is "1.2s by east-1, 3.4s by west-1".
func secondsString(m map[string]float64) string {
	var names []string
	for name := range m {
		names = append(names, name)
	}
	sortStrings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%.1fs by %s", m[name], name)
		if m[name] < 0 {
			parts[i] = "never by " + name
		}
	}
	return strings.Join(parts, ", ")
}

// sleep waits d or until ctx ends: the length of an outage or of a
// window of traffic, never a wait for state.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
