package proxy

import (
	"context"
	"io"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/fedmesh/fedmesh/sidecar/config"
)

// FaultHeader marks a response the sidecar shaped by fault injection:
// "abort" on a response it made itself, "delay" on a delayed one.
const FaultHeader = "X-Fedmesh-Fault"

// maxMirrors bounds the mirrored requests in flight in one proxy; a
// request mirrored beyond it is not mirrored (counted, reason
// mirror_overflow).
const maxMirrors = 64

// Reasons of requests the sidecar answers itself on a route in force.
const (
	reasonNoRouteMatch    = "no_route_match"
	reasonFaultInjected   = "fault_injected"
	reasonBackendNotFound = "backend_not_found"
)

// serveRouted serves a request to host, a service with a route in force:
// the first rule that matches decides (Envoy's router, Gateway API's 404
// when none does); then the rule's fault, its redirect or direct
// response, or its route: a weighted backend, header modifiers,
// rewrites, mirrors, hash key, timeout and retry policy.
func (o *outbound) serveRouted(w http.ResponseWriter, r *http.Request, host *config.Service, c *call) {
	p := o.p
	hu := p.upstream(host.Cluster)
	rule := host.Routes.Match(r)
	if rule == nil {
		c.info.setFlag(flagNoRoute)
		o.answer(w, hu, reasonNoRouteMatch, http.StatusNotFound, "fedmesh: no route rule matches "+r.Method+" "+r.URL.Path+"\n")
		return
	}
	delayed := false
	if f := rule.Fault; f != nil && config.MatchHeaders(f.Headers, r) {
		if f.Delay > 0 && sample(f.DelayPerMillion) {
			p.m.faults.WithLabelValues(host.Port.String(), "delay").Inc()
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
			delayed = true
			c.info.setFlag(flagFaultDelay)
		}
		if f.HasAbort() && sample(f.AbortPerMillion) {
			c.info.setFlag(flagFaultAbort)
			p.m.faults.WithLabelValues(host.Port.String(), "abort").Inc()
			o.abort(w, r, hu, f)
			return
		}
	}
	switch rule.Kind {
	case config.ActionDirect:
		rule.ResponseHeaders.Apply(w.Header())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(rule.Direct.Status)
		_, _ = io.WriteString(w, rule.Direct.Body)
		return
	case config.ActionRedirect:
		rule.ResponseHeaders.Apply(w.Header())
		w.Header().Set("Location", redirectLocation(r, &rule.Match, rule.Redirect))
		w.WriteHeader(rule.Redirect.Code)
		return
	}
	a := rule.Route
	b := &a.Backends[0]
	if len(a.Backends) > 1 {
		b = a.Pick(rand.Uint64N(a.TotalWeight))
	}
	if b.Service == nil {
		c.info.setFlag(flagNoCluster)
		o.answer(w, hu, reasonBackendNotFound, http.StatusInternalServerError, "fedmesh: backend "+b.Cluster+" does not exist\n")
		return
	}
	rule.RequestHeaders.Apply(r.Header)
	b.RequestHeaders.Apply(r.Header)
	rewritePath(r, &rule.Match, a)
	if a.HostRewrite != "" {
		r.Host = a.HostRewrite
	}
	c.svc, c.retry, c.rule, c.backend, c.delayed = b.Service, &a.Retry, rule, b, delayed
	if len(a.Hash) > 0 {
		c.hash, c.hashed = hashKey(r, a.Hash)
	}
	o.send(w, r, b.Service, a.Timeout, c)
}

// answer writes a response the sidecar makes itself and counts it with
// reason on u's series (u may be nil while the service is configured).
func (o *outbound) answer(w http.ResponseWriter, u *upstream, reason string, code int, body string) {
	if u != nil {
		u.series.failed(reason)
	} else {
		o.p.m.errors.WithLabelValues("outbound", "", reason).Inc()
	}
	w.Header().Set("X-Fedmesh-Error", reason)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

// abort answers an aborted request (envoy.filters.http.fault): a gRPC
// request gets a trailers-only response with grpc-status when the fault
// has a gRPC status, any other its HTTP status. Counted with reason
// fault_injected, apart from real errors (and not as a request).
func (o *outbound) abort(w http.ResponseWriter, r *http.Request, u *upstream, f *config.Fault) {
	if u != nil {
		u.series.failed(reasonFaultInjected)
	}
	h := w.Header()
	h.Set(FaultHeader, "abort")
	isGRPC := strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
	if f.AbortGRPC >= 0 && isGRPC || f.AbortHTTP == 0 {
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", strconv.Itoa(f.AbortGRPC))
		h.Set("Grpc-Message", "fault filter abort")
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(f.AbortHTTP)
	_, _ = io.WriteString(w, "fault filter abort\n")
}

// sample reports true for perMillion in a million calls, at random.
func sample(perMillion uint32) bool {
	return perMillion >= 1_000_000 || rand.Uint32N(1_000_000) < perMillion
}

// rewritePath applies a route's prefix or regex rewrite to r's path.
func rewritePath(r *http.Request, m *config.RouteMatch, a *config.RouteAction) {
	switch {
	case a.PrefixRewrite != "":
		path := r.URL.Path
		rest := ""
		switch m.PathKind {
		case config.PathPrefix, config.PathSeparatedPrefix:
			if len(path) >= len(m.Path) {
				rest = path[len(m.Path):]
			}
		case config.PathRegex:
			rest = ""
		}
		np := a.PrefixRewrite + rest
		// "/" replacing the prefix /foo of /foo/bar gives /bar, not //bar.
		if strings.HasSuffix(a.PrefixRewrite, "/") && strings.HasPrefix(rest, "/") {
			np = a.PrefixRewrite + rest[1:]
		}
		r.URL.Path, r.URL.RawPath = np, ""
	case a.RegexRewrite != nil:
		r.URL.Path, r.URL.RawPath = a.RegexRewrite.ReplaceAllString(r.URL.Path, a.RegexSubstitution), ""
	}
}

// redirectLocation builds a redirect's Location from the request.
func redirectLocation(r *http.Request, m *config.RouteMatch, rd *config.Redirect) string {
	scheme := "http"
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	authority := r.Host
	if r.URL.Host != "" {
		authority = r.URL.Host
	}
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		host, port = authority, ""
	}
	if rd.Host != "" {
		host, port = rd.Host, ""
	}
	if rd.Port != 0 {
		port = strconv.Itoa(int(rd.Port))
	}
	path := r.URL.EscapedPath()
	switch {
	case rd.HasPath:
		path = rd.Path
	case rd.HasPrefix && (m.PathKind == config.PathPrefix || m.PathKind == config.PathSeparatedPrefix) && len(path) >= len(m.Path):
		rest := path[len(m.Path):]
		path = rd.PrefixRewrite + rest
		if strings.HasSuffix(rd.PrefixRewrite, "/") && strings.HasPrefix(rest, "/") {
			path = rd.PrefixRewrite + rest[1:]
		}
	case rd.HasPrefix:
		path = rd.PrefixRewrite
	}
	if path == "" {
		path = "/"
	}
	loc := scheme + "://" + host
	if port != "" {
		loc = scheme + "://" + net.JoinHostPort(host, port)
	}
	loc += path
	if r.URL.RawQuery != "" && !rd.StripQuery {
		loc += "?" + r.URL.RawQuery
	}
	return loc
}

// hashKey computes a request's hash from the route's hash policies as
// Envoy does: each policy that yields a value mixes its xxhash in
// (rotate left by one, xor); a terminal policy that yields one ends it.
func hashKey(r *http.Request, hs []config.HashPolicy) (uint64, bool) {
	var h uint64
	found := false
	for _, hp := range hs {
		var v string
		ok := false
		switch hp.Kind {
		case config.HashHeader:
			v, ok = config.HeaderValue(r, hp.Name)
		case config.HashCookie:
			if c, err := r.Cookie(hp.Name); err == nil {
				v, ok = c.Value, true
			}
		case config.HashQuery:
			v, ok = config.QueryValue(r.URL.RawQuery, hp.Name)
		case config.HashSourceIP:
			if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				v, ok = host, true
			}
		}
		if !ok {
			continue
		}
		k := xxhash.Sum64String(v)
		if found {
			h = bits.RotateLeft64(h, 1) ^ k
		} else {
			h = k
		}
		found = true
		if hp.Terminal {
			break
		}
	}
	return h, found
}

// modifyResponse applies a routed request's response header modifiers
// (the backend's, then the rule's) and marks a delayed response.
func modifyResponse(resp *http.Response) error {
	c, _ := resp.Request.Context().Value(ctxKey{}).(*call)
	if c == nil || c.rule == nil {
		return nil
	}
	c.backend.ResponseHeaders.Apply(resp.Header)
	c.rule.ResponseHeaders.Apply(resp.Header)
	if c.delayed {
		resp.Header.Set(FaultHeader, "delay")
	}
	return nil
}

// mirror sends a copy of r to each sampled mirror of the route, fire and
// forget: bounded by maxMirrors in flight, the answer discarded, never
// waited for. Only a request whose body can be replayed is mirrored
// (Envoy's shadowing adds "-shadow" to the host, as here).
func (p *Proxy) mirror(r *http.Request, a *config.RouteAction, timeout time.Duration) {
	for i := range a.Mirrors {
		m := &a.Mirrors[i]
		if m.Service == nil || !sample(m.PerMillion) {
			continue
		}
		if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
			continue
		}
		u := p.upstream(m.Cluster)
		if u == nil || p.mirrorCtx.Err() != nil {
			continue
		}
		select {
		case p.mirrors <- struct{}{}:
		default:
			u.series.failed("mirror_overflow")
			continue
		}
		if timeout <= 0 {
			timeout = config.DefaultTimeout
		}
		ctx, cancel := context.WithTimeout(p.mirrorCtx, timeout)
		c := &call{Context: ctx, u: u, svc: m.Service, retry: &noRetry}
		req := r.Clone(c)
		req.Host = shadowHost(r.Host)
		req.URL.Scheme, req.URL.Host = "https", "upstream.invalid"
		req.RequestURI = ""
		if r.GetBody != nil {
			req.Body, _ = r.GetBody()
		}
		p.mirrorWG.Add(1)
		go func() {
			defer p.mirrorWG.Done()
			defer func() { <-p.mirrors }()
			defer cancel()
			resp, err := p.RoundTrip(req)
			if err != nil {
				p.log.Debug("mirrored request failed", "service", u.name, "err", err)
				return
			}
			drain(resp.Body)
		}()
	}
}

// noRetry is the retry policy of mirrored requests.
var noRetry = config.RetryPolicy{HostAttempts: 1}

func shadowHost(h string) string {
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		return h + "-shadow"
	}
	return net.JoinHostPort(host+"-shadow", port)
}
