package netns

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

// probeEnv carries a probe's JSON to this test binary run as a probe.
const probeEnv = "FEDMESH_NETNS_PROBE"

// probeTimeout bounds every connection and request of a probe.
const probeTimeout = 3 * time.Second

// A probe is what a process in a namespace tries: open a TCP connection
// (Dial), or GET a URL, optionally through an HTTP proxy (Proxy, host:port)
// or over a connection to Via instead of the URL's host (as an app whose
// traffic the capture rules redirect).
type probe struct {
	Dial  string `json:"dial,omitempty"`
	URL   string `json:"url,omitempty"`
	Proxy string `json:"proxy,omitempty"`
	Via   string `json:"via,omitempty"`
	// Match, when set, makes the outcome's Body the lines of the whole
	// response (up to 1 MiB) that contain it: for pages too long to
	// return whole (metrics, configuration dumps).
	Match string `json:"match,omitempty"`
	// DNS, when set, is a name to query (dns6_test.go): type DNSType (A
	// or AAAA; A when empty), to DNSServer (host:port; empty: the first
	// nameserver of /etc/resolv.conf), over TCP with DNSTCP, else UDP.
	DNS       string `json:"dns,omitempty"`
	DNSType   string `json:"dnsType,omitempty"`
	DNSServer string `json:"dnsServer,omitempty"`
	DNSTCP    bool   `json:"dnsTCP,omitempty"`
}

// outcome is what a probe saw. Err is empty when the connection (Dial) or
// the request (URL) succeeded; Status and Body are the response's.
type outcome struct {
	Err    string `json:"err,omitempty"`
	Status int    `json:"status,omitempty"`
	Body   string `json:"body,omitempty"`
}

func (o outcome) String() string {
	if o.Err != "" {
		return "error: " + o.Err
	}
	if o.Status == 0 {
		if o.Body != "" {
			return o.Body // a DNS probe's reply
		}
		return "connected"
	}
	return fmt.Sprintf("%d %q", o.Status, o.Body)
}

// runProbe does p from this process and returns what happened.
func runProbe(p probe) outcome {
	if p.DNS != "" {
		return runDNSProbe(p)
	}
	if p.Dial != "" {
		c, err := net.DialTimeout("tcp", p.Dial, probeTimeout)
		if err != nil {
			return outcome{Err: err.Error()}
		}
		c.Close()
		return outcome{}
	}
	tr := &http.Transport{DisableKeepAlives: true}
	d := &net.Dialer{Timeout: probeTimeout}
	if p.Proxy != "" {
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: p.Proxy})
	}
	if p.Via != "" {
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, p.Via)
		}
	} else {
		tr.DialContext = d.DialContext
	}
	c := &http.Client{Transport: tr, Timeout: probeTimeout}
	resp, err := c.Get(p.URL)
	if err != nil {
		return outcome{Err: err.Error()}
	}
	defer resp.Body.Close()
	limit := int64(4096)
	if p.Match != "" {
		limit = 1 << 20
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return outcome{Err: "reading the body: " + err.Error()}
	}
	if p.Match != "" {
		var lines []string
		for _, line := range strings.Split(string(body), "\n") {
			if strings.Contains(line, p.Match) {
				lines = append(lines, line)
			}
		}
		body = []byte(strings.Join(lines, "\n"))
	}
	return outcome{Status: resp.StatusCode, Body: string(body)}
}

// probeMain runs the probe in $FEDMESH_NETNS_PROBE and prints its outcome
// as JSON. It reports false when this process is not a probe.
func probeMain() bool {
	spec, ok := os.LookupEnv(probeEnv)
	if !ok {
		return false
	}
	var p probe
	o := outcome{Err: "bad probe"}
	if err := json.Unmarshal([]byte(spec), &p); err == nil {
		o = runProbe(p)
	}
	w := bufio.NewWriter(os.Stdout)
	_ = json.NewEncoder(w).Encode(o)
	_ = w.Flush()
	return true
}

// probeIn runs p in network namespace ns, as this test binary run again,
// and returns its outcome.
func probeIn(ns string, p probe) (outcome, error) {
	self, err := os.Executable()
	if err != nil {
		return outcome{}, err
	}
	spec, err := json.Marshal(p)
	if err != nil {
		return outcome{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self)
	cmd.Env = append(os.Environ(), probeEnv+"="+string(spec))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return outcome{}, fmt.Errorf("probe in %s: %w: %s", ns, err, ee.Stderr)
		}
		return outcome{}, fmt.Errorf("probe in %s: %w", ns, err)
	}
	var o outcome
	if err := json.Unmarshal(out, &o); err != nil {
		return outcome{}, fmt.Errorf("probe in %s: %w: %q", ns, err, out)
	}
	return o, nil
}
