package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runThroughput streams 64 KiB writes over -conns connections for
// -duration, then reads how many bytes the server received.
func runThroughput(args []string) error {
	fs := flag.NewFlagSet("throughput", flag.ExitOnError)
	cf := addClientFlags(fs)
	conns := fs.Int("conns", 1, "parallel connections (1..64)")
	_ = fs.Parse(args)
	cfg, err := cf.config()
	if err != nil {
		return err
	}
	if *conns < 1 || *conns > 64 {
		return fmt.Errorf("-conns %d: want 1..64", *conns)
	}
	buf := make([]byte, 64<<10)
	var (
		total atomic.Uint64
		wg    sync.WaitGroup
		errs  = make(chan error, *conns)
	)
	start := time.Now()
	end := start.Add(*cf.duration)
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialMode(&net.Dialer{Timeout: 5 * time.Second}, *cf.addr, cfg, 'D')
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(end.Add(10 * time.Second))
			for time.Now().Before(end) {
				if _, err := c.Write(buf); err != nil {
					errs <- err
					return
				}
			}
			if err := c.CloseWrite(); err != nil {
				errs <- err
				return
			}
			var n uint64
			if err := binary.Read(c, binary.BigEndian, &n); err != nil {
				errs <- fmt.Errorf("read count: %w", err)
				return
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("bytes=%d seconds=%.3f mbps=%.1f\n", total.Load(), elapsed.Seconds(), float64(total.Load())/1e6/elapsed.Seconds())
	return nil
}

// runLatency sends -size bytes and waits for the echo, one round trip at
// a time on one established connection, for -duration (at most 1e6
// round trips).
func runLatency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	cf := addClientFlags(fs)
	size := fs.Int("size", 1024, "bytes per round trip")
	_ = fs.Parse(args)
	cfg, err := cf.config()
	if err != nil {
		return err
	}
	c, err := dialMode(&net.Dialer{Timeout: 5 * time.Second}, *cf.addr, cfg, 'E')
	if err != nil {
		return err
	}
	defer c.Close()
	out, in := make([]byte, *size), make([]byte, *size)
	lat := make([]time.Duration, 0, 1<<16)
	end := time.Now().Add(*cf.duration)
	_ = c.SetDeadline(end.Add(10 * time.Second))
	for time.Now().Before(end) && len(lat) < 1_000_000 {
		t0 := time.Now()
		if _, err := c.Write(out); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, in); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	fmt.Printf("round_trips=%d p50_us=%.1f p90_us=%.1f p99_us=%.1f\n", len(lat), q(0.50), q(0.90), q(0.99))
	return nil
}

// runConnRate opens new TLS connections (full handshakes) from -workers
// goroutines for -duration, each answered by the server through the hop
// and closed.
func runConnRate(args []string) error {
	fs := flag.NewFlagSet("connrate", flag.ExitOnError)
	cf := addClientFlags(fs)
	workers := fs.Int("workers", 16, "concurrent connectors (1..256)")
	maxConns := fs.Int64("max", 200_000, "stop after this many connections")
	_ = fs.Parse(args)
	cfg, err := cf.config()
	if err != nil {
		return err
	}
	if *workers < 1 || *workers > 256 {
		return fmt.Errorf("-workers %d: want 1..256", *workers)
	}
	var (
		ok, failed atomic.Int64
		firstErr   atomic.Value
		wg         sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(*cf.duration)
	d := &net.Dialer{Timeout: 5 * time.Second}
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := make([]byte, 1)
			for time.Now().Before(end) && ok.Load()+failed.Load() < *maxConns {
				c, err := dialMode(d, *cf.addr, cfg, 'C')
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					_, err = io.ReadFull(c, one)
					c.Close()
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	fmt.Printf("connections=%d failed=%d seconds=%.3f per_second=%.0f\n", ok.Load(), failed.Load(), elapsed.Seconds(), float64(ok.Load())/elapsed.Seconds())
	if e, _ := firstErr.Load().(string); e != "" {
		fmt.Fprintln(os.Stderr, "tlsload: first failure:", e)
	}
	return nil
}

// runHold opens -n connections through the hop, proves each is spliced
// with one echoed byte, reads the resident memory of -watch-pid before and
// with them open, and closes them.
func runHold(args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	cf := addClientFlags(fs)
	n := fs.Int("n", 10_000, "connections to hold open (1..50000)")
	workers := fs.Int("workers", 32, "concurrent openers")
	pid := fs.Int("watch-pid", 0, "process whose RSS to read")
	timeout := fs.Duration("timeout", 90*time.Second, "give up opening after this long")
	_ = fs.Parse(args)
	cfg, err := cf.config()
	if err != nil {
		return err
	}
	if *n < 1 || *n > 50_000 {
		return fmt.Errorf("-n %d: want 1..50000", *n)
	}
	if *pid <= 0 {
		return errors.New("-watch-pid is required")
	}
	before, err := rssKiB(*pid)
	if err != nil {
		return err
	}
	var (
		mu    sync.Mutex // guards conns
		conns []net.Conn
		next  atomic.Int64
		fail  atomic.Value
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(*timeout)
	d := &net.Dialer{Timeout: 5 * time.Second}
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := make([]byte, 1)
			for next.Add(1) <= int64(*n) && time.Now().Before(deadline) && fail.Load() == nil {
				c, err := dialMode(d, *cf.addr, cfg, 'E')
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err = c.Write([]byte{'x'}); err == nil {
						_, err = io.ReadFull(c, one)
					}
					_ = c.SetDeadline(time.Time{})
				}
				if err != nil {
					fail.CompareAndSwap(nil, err)
					if c != nil {
						c.Close()
					}
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	opened := time.Since(start)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if e, _ := fail.Load().(error); e != nil {
		return fmt.Errorf("opened %d of %d: %w", len(conns), *n, e)
	}
	if len(conns) < *n {
		return fmt.Errorf("opened %d of %d in %s", len(conns), *n, *timeout)
	}
	// Let the hop's buffers settle, then read its memory twice.
	time.Sleep(time.Second)
	held, err := rssKiB(*pid)
	if err != nil {
		return err
	}
	fmt.Printf("connections=%d open_seconds=%.1f rss_before_kib=%d rss_held_kib=%d per_conn_kib=%.1f\n",
		len(conns), opened.Seconds(), before, held, float64(held-before)/float64(len(conns)))
	return nil
}

// rssKiB reads VmRSS of a process from /proc.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
