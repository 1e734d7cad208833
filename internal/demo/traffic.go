package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fedmesh/fedmesh/internal/echo"
)

// VariantHeader is the request header of the demo's A/B route: requests
// with "x-variant: b" go to echo-v2.
const VariantHeader = "x-variant"

// FaultHeader is the header the caller's sidecar adds to a response it
// made or delayed because of an injected fault: "abort" or "delay".
const FaultHeader = "x-fedmesh-fault"

// Sample is the outcome of one request.
type Sample struct {
	At      time.Time
	Latency time.Duration
	// Variant is the VariantHeader the request carried; "" for none.
	Variant string
	// Cluster is the cluster that served the request; empty on error
	// and when an injected fault aborted it.
	Cluster string
	// Service and Version are what the echo replica that answered runs
	// as (echo v1 or echo-v2 v2).
	Service string
	Version string
	// Fault is the answer's FaultHeader values, comma-separated: it
	// holds "abort" when the caller's sidecar answered itself because of
	// an injected fault (Code is its status, Err is nil: an injected
	// fault is not an error), "delay" when it delayed the request.
	Fault string
	// Code is the HTTP status; 0 when the request failed.
	Code int
	// Err is why the request failed: no answer, an error status that no
	// injected fault explains, or a reply that is not the echo
	// workload's.
	Err error
}

// Aborted reports whether an injected fault aborted the request.
func (s Sample) Aborted() bool {
	return s.Err == nil && s.Code != http.StatusOK && hasToken(s.Fault, "abort")
}

// Delayed reports whether an injected fault delayed the request.
func (s Sample) Delayed() bool { return hasToken(s.Fault, "delay") }

// answered reports whether an echo replica answered the request.
func (s Sample) answered() bool { return s.Err == nil && !s.Aborted() }

func hasToken(list, tok string) bool {
	for _, t := range strings.Split(list, ",") {
		if strings.TrimSpace(t) == tok {
			return true
		}
	}
	return false
}

// Window aggregates the samples of one interval.
type Window struct {
	Start    time.Time `json:"start"`
	Requests int       `json:"requests"`
	Errors   int       `json:"errors"`
	// Faults counts requests aborted by an injected fault (not in
	// Errors), Delayed those an injected fault delayed.
	Faults  int `json:"faults"`
	Delayed int `json:"delayed"`
	// Served counts answered requests per serving cluster; V2 those of
	// them echo-v2 answered.
	Served map[string]int `json:"served"`
	V2     int            `json:"v2"`
	P50    time.Duration  `json:"p50"`
	P99    time.Duration  `json:"p99"`
	// LastError is one error message of the window, for the live view.
	LastError string `json:"lastError,omitempty"`
}

// aggregate builds a Window from samples.
func aggregate(start time.Time, samples []Sample) Window {
	w := Window{Start: start, Served: map[string]int{}}
	lat := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		w.Requests++
		if s.Delayed() {
			w.Delayed++
		}
		switch {
		case s.Err != nil:
			w.Errors++
			w.LastError = s.Err.Error()
			continue
		case s.Aborted():
			w.Faults++
		default:
			w.Served[s.Cluster]++
			if s.Service == CanaryService {
				w.V2++
			}
		}
		lat = append(lat, s.Latency)
	}
	w.P50, w.P99 = percentile(lat, 50), percentile(lat, 99)
	return w
}

// percentile returns the p-th percentile (nearest rank) of ds; it sorts ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	rank := (p*len(ds) + 99) / 100
	if rank < 1 {
		rank = 1
	}
	return ds[rank-1]
}

// Load sends requests at a steady rate and records every outcome. It is
// bounded: it stops at ctx's end or after MaxRequests, whichever is first.
type Load struct {
	// URL is requested with GET; the reply is the echo workload's JSON.
	URL string
	// Host, when set, is the Host header.
	Host string
	// Rate is requests per second.
	Rate int
	// MaxRequests bounds the run.
	MaxRequests int
	// Client sends the requests.
	Client *http.Client

	mu      sync.Mutex // guards the following
	samples []Sample
	variant func(n int) string
	nth     int // requests sent since SetVariant
}

// SetVariant makes the n-th request from now on (n from 0) carry
// VariantHeader f(n), none when f returns "" or f is nil.
func (l *Load) SetVariant(f func(n int) string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.variant, l.nth = f, 0
}

func (l *Load) nextVariant() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.nth
	l.nth++
	if l.variant == nil {
		return ""
	}
	return l.variant(n)
}

// Alternate is a SetVariant function: every other request is variant b.
func Alternate(n int) string {
	if n%2 == 0 {
		return "b"
	}
	return ""
}

// Run sends requests until ctx is done or MaxRequests were sent. Requests
// run concurrently (a slow request does not hold the rate back), each
// bounded by the client's timeout.
func (l *Load) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second / time.Duration(l.Rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for sent := 0; sent < l.MaxRequests; sent++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		variant := l.nextVariant()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := l.one(ctx, variant)
			l.mu.Lock()
			l.samples = append(l.samples, s)
			l.mu.Unlock()
		}()
	}
}

// one sends one request with VariantHeader variant ("" for none).
func (l *Load) one(ctx context.Context, variant string) Sample {
	start := time.Now()
	s := Sample{At: start, Variant: variant}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL, nil)
	if err != nil {
		s.Err = err
		return s
	}
	if l.Host != "" {
		req.Host = l.Host
	}
	if variant != "" {
		req.Header.Set(VariantHeader, variant)
	}
	resp, err := l.Client.Do(req)
	if err != nil {
		s.Err = err
		s.Latency = time.Since(start)
		return s
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	s.Latency = time.Since(start)
	if err != nil {
		s.Err = err
		return s
	}
	s.Code = resp.StatusCode
	s.Fault = strings.Join(resp.Header.Values(FaultHeader), ",")
	if resp.StatusCode != http.StatusOK {
		if !s.Aborted() {
			s.Err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return s
	}
	var rep echo.Reply
	if err := json.Unmarshal(body, &rep); err != nil || rep.Cluster == "" {
		s.Err = fmt.Errorf("reply is not the echo workload's: %q", body)
		return s
	}
	s.Cluster, s.Service, s.Version = rep.Cluster, rep.Service, rep.Version
	return s
}

// Since returns the samples of requests started at or after t.
func (l *Load) Since(t time.Time) []Sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Sample
	for _, s := range l.samples {
		if !s.At.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// Between returns the samples of requests started in [from, to).
func (l *Load) Between(from, to time.Time) []Sample {
	var out []Sample
	for _, s := range l.Since(from) {
		if s.At.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// since returns the samples of ss that began at from or later.
func since(ss []Sample, from time.Time) []Sample {
	var out []Sample
	for _, s := range ss {
		if !s.At.Before(from) {
			out = append(out, s)
		}
	}
	return out
}
