package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serve starts an HTTP server on loopback port 0 that answers 200 with the
// request body, counting requests; it is closed when the test ends.
func serve(t *testing.T, n *atomic.Int64) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = io.Copy(w, r.Body)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "http://" + l.Addr().String() + "/"
}

func TestLoadOpenLoop(t *testing.T) {
	var n atomic.Int64
	url := serve(t, &n)
	res, err := load(context.Background(), loadConfig{url: url, body: 1024, conns: 4, rate: 200, duration: 250 * time.Millisecond, timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// 200/s for 0.25 s: exactly 50 requests, all due and all answered.
	if res.sent != 50 || res.ok != 50 || n.Load() != 50 {
		t.Errorf("sent %d, ok %d, served %d; want 50 each", res.sent, res.ok, n.Load())
	}
	if len(res.latencies) != 50 || res.latencies[0] > res.latencies[49] {
		t.Errorf("latencies not recorded sorted: %v", res.latencies)
	}
}

func TestLoadClosedLoop(t *testing.T) {
	var n atomic.Int64
	url := serve(t, &n)
	res, err := load(context.Background(), loadConfig{url: url, conns: 2, duration: 100 * time.Millisecond, timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.sent == 0 || res.ok != res.sent || int64(res.sent) != n.Load() {
		t.Errorf("sent %d, ok %d, served %d; want all answered", res.sent, res.ok, n.Load())
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {0, 1}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("p99 of none = %v, want 0", got)
	}
}

func TestReport(t *testing.T) {
	in := strings.Join([]string{
		"1\tdirect\tget_max\t1000", "1\thaproxy\tget_max\t500", "1\tfedmesh\tget_max\t250",
		"2\tdirect\tget_max\t1000", "2\thaproxy\tget_max\t400", "2\tfedmesh\tget_max\t400",
		"1\tdirect\tp99\t1", "1\thaproxy\tp99\t2", "1\tfedmesh\tp99\t3",
		"2\tdirect\tp99\t1", "2\thaproxy\tp99\t3", "2\tfedmesh\tp99\t3",
	}, "\n")
	r, err := parseRows(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := r.write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| max rate /s, keep-alive GET | 250 / 325 / 400 | 400 / 450 / 500 | 0.50 / 0.75 / 1.00 | >= 0.6 |",
		"| added p99 ms at fixed rate | 2.000 / 2.000 / 2.000 | 1.000 / 1.500 / 2.000 | 1.00 / 1.50 / 2.00 | <= 1.5 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestParseRowsRejects(t *testing.T) {
	for _, in := range []string{"1\tdirect\tget_max", "x\tdirect\tget_max\t1", "1\tdirect\tget_max\tfast"} {
		if _, err := parseRows(strings.NewReader(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func FuzzParseRows(f *testing.F) {
	f.Add("1\tfedmesh\tget_max\t1000\n2\thaproxy\tp99\t1.5\n")
	f.Add("x\ty\tz\tw")
	f.Fuzz(func(t *testing.T, in string) {
		r, err := parseRows(strings.NewReader(in))
		if err != nil {
			return
		}
		var b strings.Builder
		if err := r.write(&b); err != nil {
			t.Fatal(err)
		}
	})
}
