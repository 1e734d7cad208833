package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// loadConfig is one measurement.
type loadConfig struct {
	url, host string
	body      int           // POST body size; 0 sends GETs
	conns     int           // connections (and requests in flight) at most
	rate      float64       // requests per second; 0 is as fast as possible
	duration  time.Duration // how long requests are started
	timeout   time.Duration // bound of each request
}

// result is what a measurement saw.
type result struct {
	sent, ok  int
	elapsed   time.Duration
	latencies []time.Duration // of every request answered 200, sorted
}

func runLoad(mode string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	cfg := loadConfig{}
	fs.StringVar(&cfg.url, "url", "", "the URL to load (required)")
	fs.StringVar(&cfg.host, "host", "", "the Host header; empty: the URL's")
	fs.IntVar(&cfg.body, "body", 0, "POST bodies of this many bytes; 0: GETs")
	fs.IntVar(&cfg.conns, "conns", 32, "connections, and requests in flight, at most")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "how long requests are started")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "bound of each request")
	if mode == "rate" {
		fs.Float64Var(&cfg.rate, "rate", 1000, "requests per second")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case cfg.url == "":
		return errors.New("-url is required")
	case cfg.conns < 1:
		return fmt.Errorf("-conns %d: want at least 1", cfg.conns)
	case cfg.duration <= 0 || cfg.timeout <= 0:
		return errors.New("-duration and -timeout must be positive")
	case mode == "rate" && cfg.rate <= 0:
		return fmt.Errorf("-rate %v: want a positive rate", cfg.rate)
	}
	res, err := load(context.Background(), cfg)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, res.line())
	return err
}

// line is the result as key=value pairs; latencies in milliseconds.
func (r result) line() string {
	return fmt.Sprintf("sent=%d ok=%d rate=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f",
		r.sent, r.ok, float64(r.sent)/r.elapsed.Seconds(),
		ms(percentile(r.latencies, 50)), ms(percentile(r.latencies, 90)), ms(percentile(r.latencies, 99)), ms(percentile(r.latencies, 100)))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile returns the p-th percentile of sorted (nearest rank), 0 for
// none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// load runs one measurement: closed loop when cfg.rate is 0, open loop
// otherwise.
func load(ctx context.Context, cfg loadConfig) (result, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: cfg.conns, MaxConnsPerHost: cfg.conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.timeout}
	payload := bytes.Repeat([]byte("x"), cfg.body)
	do := func() bool {
		method, body := http.MethodGet, io.Reader(nil)
		if cfg.body > 0 {
			method, body = http.MethodPost, bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, cfg.url, body)
		if err != nil {
			return false
		}
		if cfg.host != "" {
			req.Host = cfg.host
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err == nil && resp.StatusCode == http.StatusOK
	}

	var mu sync.Mutex // guards res
	res := result{}
	record := func(ok bool, lat time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		res.sent++
		if ok {
			res.ok++
			res.latencies = append(res.latencies, lat)
		}
	}
	start := time.Now()
	end := start.Add(cfg.duration)
	var wg sync.WaitGroup
	if cfg.rate == 0 {
		for range cfg.conns {
			wg.Go(func() {
				for time.Now().Before(end) {
					t0 := time.Now()
					ok := do()
					record(ok, time.Since(t0))
				}
			})
		}
		wg.Wait()
	} else {
		n := int(cfg.rate * cfg.duration.Seconds())
		interval := time.Duration(float64(time.Second) / cfg.rate)
		due := make(chan time.Time, n)
		for range cfg.conns {
			wg.Go(func() {
				for d := range due {
					ok := do()
					record(ok, time.Since(d))
				}
			})
		}
		for i := range n {
			d := start.Add(time.Duration(i) * interval)
			if wait := time.Until(d); wait > 0 {
				time.Sleep(wait)
			}
			due <- d
		}
		close(due)
		wg.Wait()
	}
	res.elapsed = time.Since(start)
	if cfg.rate == 0 {
		res.elapsed = cfg.duration
	}
	slices.Sort(res.latencies)
	if res.sent == 0 {
		return res, errors.New("no request was sent")
	}
	return res, nil
}
