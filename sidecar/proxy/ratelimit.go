package proxy

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/ratelimit"
)

// This file enforces inbound rate limits (docs/ratelimit.md), after
// authorization: a port's request limits on every HTTP request, its
// connection limits on every new connection. The refusals follow Envoy's
// local rate limit filter: 429 with body "local_rate_limited", or for
// gRPC a trailers-only RESOURCE_EXHAUSTED; headers are the IETF
// RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-
// headers), Retry-After, and Envoy's X-RateLimit-* (draft 03) when the
// filter asks for them.

// RateLimitedBody is the body of a refused request, Envoy's text; gRPC
// callers get it as grpc-message.
const RateLimitedBody = "local_rate_limited"

// Rate limit decisions, the decision label of
// fedmesh_ratelimit_requests_total.
const (
	decisionAdmitted = "admitted"
	decisionRefused  = "refused"
)

// rateLimitHTTP counts request r against the port's limits. A refused
// request is answered here and rateLimitHTTP returns false; an admitted
// one gets the rate limit headers its rules ask for on its response.
func (p *Proxy) rateLimitHTTP(w http.ResponseWriter, r *http.Request, port config.InboundPort, principal, cluster string) bool {
	path := cleanPath(r.URL.Path)
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	req := ratelimit.Request{Principal: principal, Cluster: cluster, Method: r.Method, Path: path, Authority: r.Host, Headers: r.Header}
	rules := port.RateLimit
	d := p.limiter.Check(rules, &req)
	if d.Limit == nil {
		return true
	}
	h := w.Header()
	if d.Allowed {
		if rules.XRateLimitHeaders {
			rateLimitHeaders(h, rules, &d)
		}
		return true
	}
	rateLimitHeaders(h, rules, &d)
	if rules.RetryAfter {
		h.Set("Retry-After", strconv.FormatInt(seconds(d.Reset), 10))
	}
	p.log.Debug("request refused by a rate limit", "service", port.Port.String(), "caller", principal, "limit", d.Limit.ID)
	if port.Protocol == config.GRPC || isGRPCContentType(r.Header.Get("Content-Type")) {
		code := "14" // UNAVAILABLE, gRPC's mapping of 429
		if rules.ResourceExhausted {
			code = "8" // RESOURCE_EXHAUSTED
		}
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", code)
		h.Set("Grpc-Message", RateLimitedBody)
		w.WriteHeader(http.StatusOK)
		return false
	}
	h.Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte(RateLimitedBody))
	return false
}

// rateLimitHeaders sets the IETF fields for the limit of d (the one that
// refused, or the admitting limit with the fewest tokens left), and
// Envoy's X-RateLimit-* when rules ask for them.
func rateLimitHeaders(h http.Header, rules *ratelimit.Rules, d *ratelimit.Decision) {
	b := d.Limit.Bucket
	name := strconv.Quote(d.Limit.ID)
	window := seconds(b.Interval)
	reset := strconv.FormatInt(seconds(d.Reset), 10)
	h.Set("RateLimit-Policy", name+";q="+strconv.FormatInt(b.PerFill, 10)+";w="+strconv.FormatInt(window, 10))
	h.Set("RateLimit", name+";r="+strconv.FormatInt(d.Remaining, 10)+";t="+reset)
	if rules.XRateLimitHeaders {
		h.Set("X-RateLimit-Limit", strconv.FormatInt(b.Max, 10)+", "+strconv.FormatInt(b.PerFill, 10)+";w="+strconv.FormatInt(window, 10))
		h.Set("X-RateLimit-Remaining", strconv.FormatInt(d.Remaining, 10))
		h.Set("X-RateLimit-Reset", reset)
	}
}

// seconds rounds d up to whole seconds, at least one.
func seconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// admitConn counts a new connection against the port's connection
// limits and reports whether it may go on.
func (p *Proxy) admitConn(port config.InboundPort, principal, cluster string) bool {
	d := p.limiter.Check(port.ConnectionLimit, &ratelimit.Request{Principal: principal, Cluster: cluster})
	if d.Allowed {
		return true
	}
	p.inboundSeries(port.Port).failed("rate_limited")
	p.log.Debug("connection refused by a rate limit", "service", port.Port.String(), "caller", principal, "limit", d.Limit.ID)
	return false
}

// declareLimits makes the limits of snap's ports known to the limiter,
// so that quotas no request used yet are reported, and drops the buckets
// of limits snap no longer has.
func (p *Proxy) declareLimits(snap *config.Snapshot) {
	active := map[string]bool{}
	for _, in := range snap.Inbound {
		for _, port := range in.Ports {
			p.limiter.Declare(port.RateLimit, port.ConnectionLimit)
			for _, r := range []*ratelimit.Rules{port.RateLimit, port.ConnectionLimit} {
				if r != nil {
					for _, l := range r.Limits {
						active[l.ID] = true
					}
				}
			}
		}
	}
	p.limiter.Prune(active)
}

// rateLimitCollector exports the limiters' counters as
// fedmesh_ratelimit_requests_total{limit, decision}: read at scrape time
// from the counters the limiters keep anyway, so the request path pays
// nothing for the metric.
type rateLimitCollector struct {
	desc *prometheus.Desc

	mu       sync.Mutex // guards the following
	limiters []*ratelimit.Limiter
}

func newRateLimitCollector() *rateLimitCollector {
	return &rateLimitCollector{desc: prometheus.NewDesc("fedmesh_ratelimit_requests_total",
		"Requests (or, for a TCP connection limit, connections) counted by each inbound rate limit of the sidecar, by limit (NAMESPACE/POLICY/NAME, NAMESPACE/POLICY/QUOTA for a quota's share, NAMESPACE/POLICY:tcp) and decision (admitted, refused).",
		[]string{"limit", "decision"}, nil)}
}

func (c *rateLimitCollector) add(l *ratelimit.Limiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limiters = append(c.limiters, l)
}

func (c *rateLimitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *rateLimitCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	ls := c.limiters
	c.mu.Unlock()
	sum := map[string][2]uint64{}
	var order []string
	for _, l := range ls {
		for _, n := range l.Counts() {
			v, seen := sum[n.Limit]
			if !seen {
				order = append(order, n.Limit)
			}
			sum[n.Limit] = [2]uint64{v[0] + n.Admitted, v[1] + n.Refused}
		}
	}
	for _, id := range order {
		v := sum[id]
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v[0]), id, decisionAdmitted)
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v[1]), id, decisionRefused)
	}
}
