package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/controlplane/quota"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/controlplane/xds"
	"github.com/fedmesh/fedmesh/internal/httpjson"
	"github.com/fedmesh/fedmesh/policy"
)

// QuotaConfig tunes the split of clusterset quotas (docs/quota.md).
type QuotaConfig struct {
	// Period is how often every quota is split again; default 2s.
	Period time.Duration
	// ReportInterval is how often sidecars send their quota demand
	// (LRS load reports); default 2s.
	ReportInterval time.Duration
	// Hold is how long a raise of this cluster's share waits, so that
	// peers cut their shares first; it must exceed the replication lag
	// between control planes. Default Period.
	Hold time.Duration
	// Window is how far back sidecars' reports are averaged into their
	// demand; default twice ReportInterval.
	Window time.Duration
}

func (c QuotaConfig) withDefaults() (QuotaConfig, error) {
	if c.Period < 0 || c.ReportInterval < 0 || c.Hold < 0 || c.Window < 0 {
		return c, errors.New("quota: period, report interval, hold and window must not be negative")
	}
	if c.Period == 0 {
		c.Period = 2 * time.Second
	}
	if c.ReportInterval == 0 {
		c.ReportInterval = xds.DefaultLoadReportInterval
	}
	if c.Hold == 0 {
		c.Hold = c.Period
	}
	if c.Window == 0 {
		c.Window = 2 * c.ReportInterval
	}
	if c.Window < c.ReportInterval {
		return c, fmt.Errorf("quota: window %v is shorter than the report interval %v", c.Window, c.ReportInterval)
	}
	return c, nil
}

// quotaDef is a quota of the local traffic set and the services it
// limits.
type quotaDef struct {
	quota.Def
	namespace string
	targets   []policy.TargetRef // empty: every service of the namespace
}

func (d *quotaDef) limits(k catalog.ServiceKey) bool {
	return k.Namespace == d.namespace && (len(d.targets) == 0 || policy.Targets(d.targets, d.namespace, k.Namespace, k.Name))
}

// quotaBalancer splits this cluster's clusterset quotas: it takes the
// sidecars' load reports, publishes the cluster's demand and share with
// the exports, splits every quota each Period (package quota) and gives
// the sidecars their shares through the plan (QuotaShares).
type quotaBalancer struct {
	cluster string
	cfg     QuotaConfig
	log     *slog.Logger
	now     func() time.Time
	m       quotaMetrics

	mu      sync.Mutex // guards the following
	defs    map[string]*quotaDef
	tracker *quota.Tracker
	states  map[string]quota.State
	// shares are the node shares in force, by quota and node, for the
	// quotas this cluster takes part in; applied is the cluster's share
	// in force and records what it publishes, by quota.
	shares  map[string]map[string]int64
	applied map[string]int64
	records map[string]catalog.QuotaRecord
	status  []QuotaStatus
	// minority is the quotas whose split this cluster is in a minority
	// of; gauged the label sets of the last round's gauges.
	minority map[string]bool
	gauged   map[[2]string]bool
}

type quotaMetrics struct {
	admitted, refused *prometheus.CounterVec
	share, demand     *prometheus.GaugeVec
	minority          *prometheus.GaugeVec
	unknown           prometheus.Counter
}

func newQuotaMetrics() quotaMetrics {
	return quotaMetrics{
		admitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_quota_admitted_total", Help: "Requests this cluster's sidecars admitted under a clusterset quota, as they reported them.",
		}, []string{"quota"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_quota_refused_total", Help: "Requests this cluster's sidecars refused under a clusterset quota, as they reported them.",
		}, []string{"quota"}),
		share: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_quota_share", Help: "Requests per quota interval each live cluster holds of a clusterset quota, as this control plane splits it (this cluster: the share in force).",
		}, []string{"quota", "cluster"}),
		demand: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_quota_demand", Help: "Recent demand (admitted + refused requests per quota interval) each cluster published for a clusterset quota.",
		}, []string{"quota", "cluster"}),
		minority: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_quota_minority", Help: "1 while no more than half of a quota's clusters are live from here: this cluster keeps at most the share it had.",
		}, []string{"quota"}),
		unknown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_quota_reports_unknown_total", Help: "Sidecar load reports of quotas no RateLimitPolicy of this cluster defines (dropped).",
		}),
	}
}

func (m quotaMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.admitted, m.refused, m.share, m.demand, m.minority, m.unknown}
}

func newQuotaBalancer(cluster string, cfg QuotaConfig, log *slog.Logger, now func() time.Time) *quotaBalancer {
	return &quotaBalancer{
		cluster: cluster, cfg: cfg, now: now,
		log:      log.With("component", "quota"),
		m:        newQuotaMetrics(),
		defs:     map[string]*quotaDef{},
		tracker:  quota.NewTracker(cfg.Window),
		states:   map[string]quota.State{},
		shares:   map[string]map[string]int64{},
		applied:  map[string]int64{},
		records:  map[string]catalog.QuotaRecord{},
		minority: map[string]bool{},
		gauged:   map[[2]string]bool{},
	}
}

// setTraffic takes the quotas of the local traffic set. A quota that is
// gone is forgotten, with its state and metrics.
func (b *quotaBalancer) setTraffic(t policy.Traffic) {
	defs := map[string]*quotaDef{}
	for i := range t.RateLimits {
		rp := &t.RateLimits[i]
		for _, q := range rp.Spec.Quotas {
			id := plan.QuotaID(rp.Namespace, rp.Name, q.Name)
			defs[id] = &quotaDef{
				Def:       quota.Def{ID: id, Requests: q.Requests, Interval: q.Interval.Duration},
				namespace: rp.Namespace, targets: rp.Spec.TargetRefs,
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.defs {
		if _, ok := defs[id]; !ok {
			delete(b.states, id)
			delete(b.shares, id)
			delete(b.applied, id)
			delete(b.records, id)
			b.m.admitted.DeleteLabelValues(id)
			b.m.refused.DeleteLabelValues(id)
		}
	}
	b.defs = defs
}

// followTraffic feeds src's traffic sets to setTraffic until ctx ends.
func (b *quotaBalancer) followTraffic(ctx context.Context, src source.TrafficSource) {
	for {
		t, ready, changed := src.Traffic()
		if ready {
			b.setTraffic(t)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// onLoad takes a sidecar's load report (the LRS server's OnLoad).
func (b *quotaBalancer) onLoad(r xds.LoadReport) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.defs[r.Load.Quota]; !ok {
		// Labels stay bounded: only quotas of the local policies count.
		b.m.unknown.Inc()
		b.log.Debug("load report of an unknown quota dropped", "node", r.Node, "quota", r.Load.Quota)
		return
	}
	b.tracker.Add(quota.Report{Node: r.Node, Quota: r.Load.Quota, Admitted: r.Load.Admitted, Refused: r.Load.Refused,
		Interval: r.Load.Interval, At: r.Received})
	b.m.admitted.WithLabelValues(r.Load.Quota).Add(float64(r.Load.Admitted))
	b.m.refused.WithLabelValues(r.Load.Quota).Add(float64(r.Load.Refused))
}

// onGone forgets a sidecar whose load reporting stream ended.
func (b *quotaBalancer) onGone(node string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tracker.Forget(node)
}

// recordsFor returns this cluster's records of the quotas that limit
// service k, for its export; nil when there are none.
func (b *quotaBalancer) recordsFor(k catalog.ServiceKey) []catalog.QuotaRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []catalog.QuotaRecord
	for _, id := range slices.Sorted(maps.Keys(b.records)) {
		if d := b.defs[id]; d != nil && d.limits(k) {
			out = append(out, b.records[id])
		}
	}
	return out
}

// shareOf is the plan's QuotaShares: node's share of quota. A node with
// no share of a quota this cluster takes part in (a sidecar that has not
// reported yet) gets the floor of a split among one more node; a share of
// zero is one request per ten intervals, the least a token bucket holds.
func (b *quotaBalancer) shareOf(quotaID, node string) (plan.QuotaShare, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.defs[quotaID]
	nodes, ok := b.shares[quotaID]
	if d == nil || !ok {
		return plan.QuotaShare{}, false
	}
	n, ok := nodes[node]
	if !ok {
		n = max(quota.Floor(b.applied[quotaID], len(nodes)+1), 1)
	}
	if n == 0 {
		return plan.QuotaShare{Requests: 1, Interval: 10 * d.Interval}, true
	}
	return plan.QuotaShare{Requests: n, Interval: d.Interval}, true
}

// round splits every quota once from view and reports whether this
// cluster's records (to publish) or its nodes' shares (to push) changed.
func (b *quotaBalancer) round(view *catalog.View) (recordsChanged, sharesChanged bool) {
	now := b.now()
	peers := peerRecords(view, b.cluster)
	b.mu.Lock()
	defer b.mu.Unlock()
	var status []QuotaStatus
	gauged := map[[2]string]bool{}
	for _, id := range slices.Sorted(maps.Keys(b.defs)) {
		d := b.defs[id]
		nodes := b.tracker.Nodes(id, d.Interval, now, 3*b.cfg.ReportInterval+b.cfg.Window)
		if len(nodes) == 0 {
			// No sidecar here enforces the quota: this cluster takes no
			// part in its split and publishes nothing.
			if _, ok := b.records[id]; ok {
				delete(b.records, id)
				recordsChanged = true
			}
			if _, ok := b.shares[id]; ok {
				delete(b.shares, id)
				sharesChanged = true
			}
			delete(b.states, id)
			delete(b.applied, id)
			continue
		}
		// The published demand is quantized so that a steady load does
		// not rewrite the exports every round.
		in := quota.Input{Def: d.Def, Local: b.cluster, LocalRate: quota.SumRates(nodes).Quantized(), Nodes: nodes, Now: now, Hold: b.cfg.Hold}
		fenced := map[string]bool{}
		for _, p := range peers[id] {
			p.Fenced = view.Clusters[p.Cluster].Fenced
			fenced[p.Cluster] = p.Fenced
			in.Peers = append(in.Peers, p)
		}
		prev, ok := b.states[id]
		if !ok {
			prev = resumeState(view, b.cluster, d)
		}
		res := quota.Run(in, prev)
		b.states[id] = res.State
		b.applied[id] = res.Share
		pub := res.State.Published
		rec := catalog.QuotaRecord{Quota: id, Requests: pub.Requests, Interval: pub.Interval,
			Admitted: pub.Rate.Admitted, Refused: pub.Rate.Refused, Share: pub.Share}
		if b.records[id] != rec {
			b.records[id] = rec
			recordsChanged = true
		}
		ns := make(map[string]int64, len(res.Nodes))
		for _, s := range res.Nodes {
			ns[s.ID] = s.Requests
		}
		if !maps.Equal(b.shares[id], ns) {
			b.shares[id] = ns
			sharesChanged = true
		}
		st := b.statusOf(d, in, res, fenced, now)
		status = append(status, st)
		for _, c := range st.Clusters {
			b.m.share.WithLabelValues(id, c.Cluster).Set(float64(c.Share))
			b.m.demand.WithLabelValues(id, c.Cluster).Set(float64(c.Admitted + c.Refused))
			gauged[[2]string{id, c.Cluster}] = true
		}
		b.setMinorityLocked(id, res.Minority, res.Share)
	}
	// Gauges of quotas and clusters no longer split go, so that no
	// stale share stays on show.
	for k := range b.gauged {
		if !gauged[k] {
			b.m.share.DeleteLabelValues(k[0], k[1])
			b.m.demand.DeleteLabelValues(k[0], k[1])
		}
	}
	b.gauged = gauged
	for id := range b.minority {
		if _, ok := b.states[id]; !ok {
			delete(b.minority, id)
			b.m.minority.DeleteLabelValues(id)
		}
	}
	b.status = status
	return recordsChanged, sharesChanged
}

// resumeState is the state of a quota this control plane has no state of
// yet: from the record this cluster published before (a restarted control
// plane finds it in its etcd, through the view), so that its sidecars keep
// the share the peers count it with instead of starting from nothing;
// the zero state when there is none.
func resumeState(v *catalog.View, local string, d *quotaDef) quota.State {
	if v == nil {
		return quota.State{}
	}
	for i := range v.Services {
		for _, q := range v.Services[i].Quotas {
			if q.Cluster != local || q.Quota != d.ID || q.Requests != d.Requests || q.Interval != d.Interval {
				continue
			}
			rec := quota.Record{Requests: q.Requests, Interval: q.Interval,
				Rate: quota.Rate{Admitted: q.Admitted, Refused: q.Refused}, Share: q.Share}
			return quota.State{Started: true, Published: rec, Applied: q.Share, MajorityShare: q.Share}
		}
	}
	return quota.State{}
}

// setMinorityLocked records whether this cluster is in a minority of
// quota id's clusters, and logs when that changes.
func (b *quotaBalancer) setMinorityLocked(id string, minority bool, share int64) {
	v := 0.0
	if minority {
		v = 1
	}
	b.m.minority.WithLabelValues(id).Set(v)
	if b.minority[id] == minority {
		return
	}
	b.minority[id] = minority
	if minority {
		b.log.Warn("no more than half of a quota's clusters are live from here: this cluster keeps at most the share it had", "quota", id, "share", share)
	} else {
		b.log.Info("a majority of a quota's clusters is live again: the split follows the demand", "quota", id, "share", share)
	}
}

// peerRecords collects the other clusters' quota records from the view,
// by quota, one per cluster (a record on several services' exports is
// the same record), sorted by cluster.
func peerRecords(v *catalog.View, local string) map[string][]quota.Peer {
	out := map[string][]quota.Peer{}
	if v == nil {
		return out
	}
	seen := map[[2]string]bool{}
	for i := range v.Services {
		for _, q := range v.Services[i].Quotas {
			k := [2]string{q.Quota, q.Cluster}
			if q.Cluster == local || seen[k] {
				continue
			}
			seen[k] = true
			out[q.Quota] = append(out[q.Quota], quota.Peer{Cluster: q.Cluster, Record: quota.Record{
				Requests: q.Requests, Interval: q.Interval,
				Rate: quota.Rate{Admitted: q.Admitted, Refused: q.Refused}, Share: q.Share,
			}})
		}
	}
	for _, ps := range out {
		slices.SortFunc(ps, func(a, b quota.Peer) int { return strings.Compare(a.Cluster, b.Cluster) })
	}
	return out
}

// run splits the quotas every Period from view() until ctx ends; it
// calls publish when this cluster's records changed and push when its
// nodes' shares did.
func (b *quotaBalancer) run(ctx context.Context, view func() *catalog.View, publish, push func()) {
	t := time.NewTicker(b.cfg.Period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		recs, shares := b.round(view())
		if recs {
			publish()
		}
		if shares {
			push()
		}
	}
}

// register adds the balancer's metrics to reg.
func (b *quotaBalancer) register(reg prometheus.Registerer) error {
	return registerAll(reg, b.m.collectors()...)
}

// serveQuotas writes the quota report (GET /debug/quotas).
func (b *quotaBalancer) serveQuotas(w http.ResponseWriter, _ *http.Request) {
	b.mu.Lock()
	page := QuotaPage{Cluster: b.cluster, Quotas: slices.Clone(b.status)}
	b.mu.Unlock()
	if page.Quotas == nil {
		page.Quotas = []QuotaStatus{}
	}
	httpjson.Write(w, http.StatusOK, page)
}

// newLRS builds the load reporting server whose reports feed the
// balancer; it authenticates nodes as xDS does.
func (s *Server) newLRS(authn xds.Authenticator, mc *MeshConfig) (*xds.LRSServer, error) {
	return xds.NewLRSServer(xds.LRSConfig{
		Cluster:           s.cfg.Cluster,
		Authenticator:     authn,
		GatewayIdentities: mc.GatewayIdentities,
		Interval:          mc.Quota.ReportInterval,
		OnLoad:            s.quotas.onLoad,
		OnGone:            s.quotas.onGone,
		Logger:            s.log,
		Registerer:        s.cfg.Registry,
	})
}
