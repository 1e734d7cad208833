package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Sample is the outcome of one request.
type Sample struct {
	At      time.Time
	Latency time.Duration
	// Cluster is the cluster that served the request; empty on error.
	Cluster string
	Err     error
}

// Window aggregates the samples of one interval.
type Window struct {
	Start    time.Time      `json:"start"`
	Requests int            `json:"requests"`
	Errors   int            `json:"errors"`
	Served   map[string]int `json:"served"`
	P50      time.Duration  `json:"p50"`
	P99      time.Duration  `json:"p99"`
	// LastError is one error message of the window, for the live view.
	LastError string `json:"lastError,omitempty"`
}

// aggregate builds a Window from samples.
func aggregate(start time.Time, samples []Sample) Window {
	w := Window{Start: start, Served: map[string]int{}}
	lat := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		w.Requests++
		if s.Err != nil {
			w.Errors++
			w.LastError = s.Err.Error()
			continue
		}
		w.Served[s.Cluster]++
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

	mu      sync.Mutex // guards samples
	samples []Sample
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := l.one(ctx)
			l.mu.Lock()
			l.samples = append(l.samples, s)
			l.mu.Unlock()
		}()
	}
}

func (l *Load) one(ctx context.Context) Sample {
	start := time.Now()
	s := Sample{At: start}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL, nil)
	if err != nil {
		s.Err = err
		return s
	}
	if l.Host != "" {
		req.Host = l.Host
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
	if resp.StatusCode != http.StatusOK {
		s.Err = fmt.Errorf("HTTP %d", resp.StatusCode)
		return s
	}
	var rep struct {
		Cluster string `json:"cluster"`
	}
	if err := json.Unmarshal(body, &rep); err != nil || rep.Cluster == "" {
		s.Err = fmt.Errorf("reply is not the echo workload's: %q", body)
		return s
	}
	s.Cluster = rep.Cluster
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
