package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// LoadCount is a node's count of one quota's requests since it started:
// monotonic, never reset while the node runs.
type LoadCount struct {
	// Quota is the quota's ID, NAMESPACE/POLICY/QUOTA.
	Quota string
	// Admitted and Refused count the requests the node admitted and
	// refused under the quota.
	Admitted, Refused uint64
}

// MinLoadReportInterval is the shortest reporting interval the client
// follows; a control plane that asks for less gets reports this often.
const MinLoadReportInterval = 100 * time.Millisecond

// loadMetrics count the load reports a client sends.
type loadMetrics struct {
	sent prometheus.Counter
}

func newLoadMetrics() loadMetrics {
	return loadMetrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_xds_load_reports_sent_total",
			Help: "Load reports (LRS requests with quota load) sent to the control plane.",
		}),
	}
}

// loadReporter turns monotonic counts into the deltas that LRS reports
// carry. Owned by runLoadReports' goroutine.
type loadReporter struct {
	last   map[string]LoadCount // counts as of the last report sent
	lastAt time.Time
}

// next returns the reports of the counts now against the last ones sent,
// for every quota (zero deltas too: a node with no demand still takes part
// in its cluster's split). A count that went backwards (a limiter that was
// replaced) counts from zero.
func (r *loadReporter) next(counts []LoadCount, now time.Time) []*endpointv3.ClusterStats {
	interval := max(now.Sub(r.lastAt), time.Millisecond)
	out := make([]*endpointv3.ClusterStats, 0, len(counts))
	for _, c := range counts {
		prev := r.last[c.Quota]
		l := xdsresource.QuotaLoad{Quota: c.Quota, Interval: interval, Admitted: c.Admitted, Refused: c.Refused}
		if c.Admitted >= prev.Admitted {
			l.Admitted -= prev.Admitted
		}
		if c.Refused >= prev.Refused {
			l.Refused -= prev.Refused
		}
		out = append(out, xdsresource.QuotaClusterStats(l))
	}
	return out
}

// sent records counts as reported at now.
func (r *loadReporter) sent(counts []LoadCount, now time.Time) {
	r.last = make(map[string]LoadCount, len(counts))
	for _, c := range counts {
		r.last[c.Quota] = c
	}
	r.lastAt = now
}

// runLoadReports holds a load reporting stream (envoy.service.load_stats.v3)
// on conn until ctx ends, reconnecting with the client's backoff, and
// reports Config.LoadReports every interval the control plane asks for.
// No stream is opened while there is nothing to report (no quota here),
// and a control plane without LRS is asked again only every
// lrsUnimplementedBackoff.
func (c *Client) runLoadReports(ctx context.Context, conn *grpc.ClientConn) {
	r := &loadReporter{lastAt: time.Now()}
	bo := &backoffPolicy{initial: c.cfg.InitialBackoff, max: c.cfg.MaxBackoff, rand: rand.Float64}
	for {
		if !c.waitForLoad(ctx) {
			return
		}
		sent, err := c.runLoadStream(ctx, conn, r)
		if ctx.Err() != nil {
			return
		}
		if sent {
			bo.reset()
		}
		d := bo.next()
		if status.Code(err) == codes.Unimplemented {
			d = lrsUnimplementedBackoff
			c.log.Info("the control plane serves no load reports; quota demand is not reported", "retry", d)
		} else {
			c.log.Warn("load reporting stream ended; reconnecting", "err", err, "backoff", d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// lrsUnimplementedBackoff spaces the attempts to report load to a control
// plane that does not serve LRS.
const lrsUnimplementedBackoff = time.Minute

// waitForLoad returns true once Config.LoadReports has something to
// report, false when ctx ends first.
func (c *Client) waitForLoad(ctx context.Context) bool {
	if len(c.cfg.LoadReports()) > 0 {
		return true
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			if len(c.cfg.LoadReports()) > 0 {
				return true
			}
		}
	}
}

// runLoadStream serves one load reporting stream until it fails; sent
// reports whether a report went out on it.
func (c *Client) runLoadStream(ctx context.Context, conn *grpc.ClientConn, r *loadReporter) (sent bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := lrsv3.NewLoadReportingServiceClient(conn).StreamLoadStats(ctx, grpc.WaitForReady(true))
	if err != nil {
		return false, fmt.Errorf("open lrs stream: %w", err)
	}
	node, err := c.node()
	if err != nil {
		return false, err
	}
	if err := stream.Send(&lrsv3.LoadStatsRequest{Node: node}); err != nil {
		return false, fmt.Errorf("send lrs hello: %w", err)
	}
	// The control plane's answers set the interval; a goroutine owned
	// here reads them and ends with the stream.
	intervals := make(chan time.Duration, 1)
	recvErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			d := resp.GetLoadReportingInterval().AsDuration()
			select {
			case <-intervals: // keep only the newest
			default:
			}
			intervals <- max(d, MinLoadReportInterval)
		}
	}()
	defer func() { cancel(); <-done }()

	var tick <-chan time.Time
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case err := <-recvErr:
			if errors.Is(err, context.Canceled) {
				return sent, err
			}
			return sent, fmt.Errorf("receive: %w", err)
		case d := <-intervals:
			if ticker == nil {
				ticker = time.NewTicker(d)
				tick = ticker.C
			} else {
				ticker.Reset(d)
			}
		case <-tick:
			counts := c.cfg.LoadReports()
			if len(counts) == 0 {
				continue // nothing to report: no quota here (yet)
			}
			now := time.Now()
			if err := stream.Send(&lrsv3.LoadStatsRequest{ClusterStats: r.next(counts, now)}); err != nil {
				return sent, fmt.Errorf("send load report: %w", err)
			}
			r.sent(counts, now)
			sent = true
			c.loads.sent.Inc()
		}
	}
}
