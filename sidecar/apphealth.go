package sidecar

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// This file is the app-health half of probe rewriting (see
// docs/capture.md, "Probes"): the injector points the kubelet's probes of
// the app at the ready port, /app-health/CONTAINER/KIND, and the sidecar
// makes each original check of the app, from its own uid, which the
// capture rules leave alone, so the probes work in STRICT too.

// AppProbe is one probe of the app, by Kind:
//   - "" (HTTP): GET Path on Port with Headers; over TLS when Scheme is
//     HTTPS, without verifying the app's certificate, as the kubelet
//     does;
//   - "tcp": a TCP connection to Port;
//   - "grpc": the grpc.health.v1 Check of Service on Port, in plaintext,
//     as the kubelet does.
//
// It is the JSON the injector writes (controlplane/inject.AppProbe).
type AppProbe struct {
	Kind    string            `json:"kind,omitempty"`
	Port    int32             `json:"port"`
	Scheme  string            `json:"scheme,omitempty"`
	Path    string            `json:"path,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Service string            `json:"service,omitempty"`
	// TimeoutSeconds bounds the check (0: the kubelet's wait alone).
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
}

// The kinds of AppProbe.
const (
	ProbeHTTP = ""
	ProbeTCP  = "tcp"
	ProbeGRPC = "grpc"
)

// appHealthPrefix starts every app probe's path on the ready listener.
const appHealthPrefix = "/app-health/"

// maxProbeTimeout bounds a probe whatever it says, as the ready
// listener's requests are bounded.
const maxProbeTimeout = 30 * time.Second

// ParseAppProbes reads the injector's --app-probes JSON: app probes by
// their path on the ready listener. Each is checked as validate does.
func ParseAppProbes(s string) (map[string]AppProbe, error) {
	var probes map[string]AppProbe
	if err := json.Unmarshal([]byte(s), &probes); err != nil {
		return nil, fmt.Errorf("not JSON of probes by path: %w", err)
	}
	for path, p := range probes {
		if err := p.validate(path); err != nil {
			return nil, err
		}
	}
	return probes, nil
}

// validate checks one probe, served at path.
func (p AppProbe) validate(path string) error {
	if !strings.HasPrefix(path, appHealthPrefix) || p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("app probe %q to port %d: want a path under %s and a port from 1 to 65535", path, p.Port, appHealthPrefix)
	}
	switch p.Kind {
	case ProbeHTTP:
		if p.Scheme != "" && p.Scheme != "HTTP" && p.Scheme != "HTTPS" {
			return fmt.Errorf("app probe %q: scheme %q, want HTTP or HTTPS", path, p.Scheme)
		}
		if p.Service != "" {
			return fmt.Errorf("app probe %q: an HTTP probe has no gRPC service", path)
		}
	case ProbeTCP, ProbeGRPC:
		if p.Scheme != "" || p.Path != "" || len(p.Headers) > 0 {
			return fmt.Errorf("app probe %q: a %s probe has no scheme, path or headers", path, p.Kind)
		}
		if p.Kind == ProbeTCP && p.Service != "" {
			return fmt.Errorf("app probe %q: a tcp probe has no gRPC service", path)
		}
	default:
		return fmt.Errorf("app probe %q: kind %q, want http (empty), tcp or grpc", path, p.Kind)
	}
	if p.TimeoutSeconds < 0 {
		return fmt.Errorf("app probe %q: negative timeout %d", path, p.TimeoutSeconds)
	}
	return nil
}

// validateAppProbes checks the probes and that they have an address to
// go to.
func validateAppProbes(probes map[string]AppProbe, host string) error {
	for path, p := range probes {
		if err := p.validate(path); err != nil {
			return err
		}
	}
	if len(probes) > 0 && net.ParseIP(host) == nil {
		return fmt.Errorf("app probes need the app's address, not %q", host)
	}
	return nil
}

// appProber makes the app's probes.
type appProber struct {
	host       string
	plain, tls *http.Client
}

func newAppProber(host string) *appProber {
	return &appProber{
		host:  host,
		plain: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: maxProbeTimeout},
		// The kubelet checks no certificate of the app (it has nothing
		// to check it against), and neither does its stand-in.
		tls: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: maxProbeTimeout}, //nolint:gosec // as the kubelet
	}
}

// readyHandler is the ready listener's handler: /ready and
// /stats/prometheus, and the app's probes under /app-health/.
func (s *Sidecar) readyHandler(ready http.Handler) http.Handler {
	if s.cfg.Capture == nil || len(s.cfg.Capture.AppProbes) == 0 {
		return ready
	}
	mux := http.NewServeMux()
	mux.Handle("/", ready)
	prober := newAppProber(s.cfg.Capture.AppHost)
	mux.HandleFunc("GET "+appHealthPrefix, func(w http.ResponseWriter, r *http.Request) {
		pr, ok := s.cfg.Capture.AppProbes[r.URL.Path]
		if !ok {
			http.Error(w, "fedmesh: no such app probe", http.StatusNotFound)
			return
		}
		code, err := prober.probe(r.Context(), pr)
		if err != nil {
			s.log.Debug("app probe failed", "probe", r.URL.Path, "kind", pr.Kind, "err", err)
			http.Error(w, "fedmesh: app probe: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(code)
	})
	return mux
}

// probe makes pr's check of the app and returns the status the kubelet
// should see: the app's own for HTTP, 200 for a TCP connection made or a
// gRPC service SERVING; an error when the check failed.
func (a *appProber) probe(ctx context.Context, pr AppProbe) (int, error) {
	if pr.TimeoutSeconds > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, min(time.Duration(pr.TimeoutSeconds)*time.Second, maxProbeTimeout))
		defer cancel()
	}
	addr := net.JoinHostPort(a.host, strconv.Itoa(int(pr.Port)))
	switch pr.Kind {
	case ProbeTCP:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return 0, err
		}
		c.Close()
		return http.StatusOK, nil
	case ProbeGRPC:
		return probeGRPC(ctx, addr, pr.Service)
	}
	return a.probeHTTP(ctx, addr, pr)
}

// probeHTTP makes an HTTP probe's request to the app and returns its
// status, as the kubelet would see it.
func (a *appProber) probeHTTP(ctx context.Context, addr string, pr AppProbe) (int, error) {
	path := pr.Path
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	scheme, client := "http", a.plain
	if pr.Scheme == "HTTPS" {
		scheme, client = "https", a.tls
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+path, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range pr.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", "fedmesh-probe")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// errNotServing is a gRPC health check's answer other than SERVING.
var errNotServing = errors.New("not serving")

// probeGRPC runs the standard grpc.health.v1 Check of service against
// the app at addr, in plaintext, as the kubelet's gRPC probe does.
func probeGRPC(ctx context.Context, addr, service string) (int, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent("fedmesh-probe"))
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(false))
	if err != nil {
		return 0, fmt.Errorf("grpc health check of %q: %w", service, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return 0, fmt.Errorf("grpc health check of %q: %w: %s", service, errNotServing, resp.GetStatus())
	}
	return http.StatusOK, nil
}
