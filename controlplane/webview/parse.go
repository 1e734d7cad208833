package webview

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The series the collector reads from a sidecar's or gateway's
// /stats/prometheus page. Every other family is skipped.
const (
	familyRequests    = "fedmesh_sidecar_requests_total"
	familyDuration    = "fedmesh_sidecar_request_duration_seconds"
	familyGatewayOpen = "fedmesh_gateway_connections_active"
	familyGatewayConn = "fedmesh_gateway_connections_total"
)

// ErrBadPage is wrapped by every error about a scraped page.
var ErrBadPage = errors.New("bad metrics page")

// EdgeKey names the traffic from one cluster to another (or to itself).
type EdgeKey struct {
	From, To string
}

// counts are the cumulative counters of one edge on one target: what
// the client side recorded since it started.
type counts struct {
	requests float64
	errors   float64
	// buckets are the latency histogram's cumulative bucket counts by
	// upper bound, +Inf included.
	buckets map[float64]float64
}

// page is what one scrape of one target holds for the web view.
type page struct {
	edges map[EdgeKey]*counts
	// gatewayOpen and gatewayConns are the gateway's open connections
	// and connections routed so far; hasGateway says the page had them.
	hasGateway   bool
	gatewayOpen  float64
	gatewayConns float64
}

func (p *page) edge(k EdgeKey) *counts {
	c := p.edges[k]
	if c == nil {
		c = &counts{buckets: map[float64]float64{}}
		p.edges[k] = c
	}
	return c
}

// maxEdgesPerPage bounds what one page may add: a sidecar labels its
// series with at most every cluster pair of the federation.
const maxEdgesPerPage = 4096

// maxBuckets bounds the distinct latency bucket bounds of one edge.
const maxBuckets = 64

// parsePage reads a Prometheus text page and keeps the client side of
// the sidecar's request series (direction="outbound", or the Istio-style
// reporter="source" or "client") by source and destination cluster, and
// the gateway's connection counts. A request is an error when its code
// (a class such as "5xx", or a number) is a 5xx or 0 (no response).
func parsePage(r io.Reader) (*page, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPage, err)
	}
	p := &page{edges: map[EdgeKey]*counts{}}
	if f := fams[familyRequests]; f != nil {
		for _, m := range f.GetMetric() {
			k, ok := clientEdge(m)
			if !ok {
				continue
			}
			v := value(m)
			if err := checkValue(familyRequests, v); err != nil {
				return nil, err
			}
			c := p.edge(k)
			c.requests += v
			if isError(label(m, "code"), label(m, "response_code")) {
				c.errors += v
			}
		}
	}
	if f := fams[familyDuration]; f != nil {
		for _, m := range f.GetMetric() {
			k, ok := clientEdge(m)
			if !ok || m.GetHistogram() == nil {
				continue
			}
			c := p.edge(k)
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				ub := b.GetUpperBound()
				if math.IsInf(ub, 1) {
					continue // the sample count below
				}
				v := b.GetCumulativeCountFloat() + float64(b.GetCumulativeCount())
				if err := checkValue(familyDuration, ub); err != nil {
					return nil, err
				}
				if err := checkValue(familyDuration, v); err != nil {
					return nil, err
				}
				c.buckets[ub] += v
			}
			if len(c.buckets) > maxBuckets {
				return nil, fmt.Errorf("%w: %s has more than %d buckets", ErrBadPage, familyDuration, maxBuckets)
			}
			n := h.GetSampleCountFloat() + float64(h.GetSampleCount())
			if err := checkValue(familyDuration, n); err != nil {
				return nil, err
			}
			c.buckets[math.Inf(1)] += n
		}
	}
	if len(p.edges) > maxEdgesPerPage {
		return nil, fmt.Errorf("%w: %d cluster pairs, more than %d", ErrBadPage, len(p.edges), maxEdgesPerPage)
	}
	if f := fams[familyGatewayOpen]; f != nil {
		p.hasGateway = true
		for _, m := range f.GetMetric() {
			p.gatewayOpen += value(m)
		}
	}
	if f := fams[familyGatewayConn]; f != nil {
		p.hasGateway = true
		for _, m := range f.GetMetric() {
			p.gatewayConns += value(m)
		}
	}
	if err := checkValue(familyGatewayOpen, p.gatewayOpen); err != nil {
		return nil, err
	}
	if err := checkValue(familyGatewayConn, p.gatewayConns); err != nil {
		return nil, err
	}
	return p, nil
}

// value is a counter's, gauge's or untyped sample's value (a page
// without TYPE lines is untyped).
func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// checkValue refuses what no counter holds: NaN, infinities, negatives.
func checkValue(family string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("%w: %s has value %v", ErrBadPage, family, v)
	}
	return nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// clientEdge returns the edge of a client-side series; ok is false for
// server-side series and for series without both clusters.
func clientEdge(m *dto.Metric) (EdgeKey, bool) {
	switch {
	case label(m, "direction") == "outbound":
	case label(m, "reporter") == "source", label(m, "reporter") == "client":
	default:
		return EdgeKey{}, false
	}
	k := EdgeKey{From: label(m, "source_cluster"), To: label(m, "destination_cluster")}
	if k.From == "" || k.To == "" || k.To == "unknown" {
		return EdgeKey{}, false
	}
	return k, true
}

// isError reports whether a status class ("5xx") or code ("503", "0")
// is a failed request.
func isError(class, code string) bool {
	for _, c := range []string{class, code} {
		if c == "" {
			continue
		}
		if c[0] == '5' {
			return true
		}
		if n, err := strconv.Atoi(c); err == nil && n == 0 {
			return true
		}
	}
	return false
}

// quantile estimates the q-quantile of a cumulative histogram (upper
// bound -> count, +Inf included) as Prometheus' histogram_quantile does:
// linear interpolation inside the bucket that holds the rank. It returns
// NaN when the histogram is empty. A rank in the +Inf bucket answers the
// highest finite bound.
func quantile(q float64, buckets map[float64]float64) float64 {
	bounds := make([]float64, 0, len(buckets))
	for b := range buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return math.NaN()
	}
	total := buckets[bounds[len(bounds)-1]]
	if total <= 0 || !math.IsInf(bounds[len(bounds)-1], 1) {
		return math.NaN()
	}
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, b := range bounds {
		c := buckets[b]
		if c >= rank {
			if math.IsInf(b, 1) {
				return prevBound
			}
			if c == prevCount {
				return b
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = b, c
	}
	return prevBound
}
