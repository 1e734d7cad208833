package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/config"
	"github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

func TestSplitHostPort(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantHost string
		wantPort int32
		wantErr  string
	}{
		{name: "host and port", in: "echo.demo.svc.clusterset.local:8080", wantHost: "echo.demo.svc.clusterset.local", wantPort: 8080},
		{name: "default port", in: "echo.demo", wantHost: "echo.demo", wantPort: 80},
		{name: "upper case and trailing dot", in: "ECHO.Demo.:81", wantHost: "echo.demo", wantPort: 81},
		{name: "ipv6", in: "[::1]:9000", wantHost: "::1", wantPort: 9000},
		{name: "ipv6 no port", in: "[::1]", wantHost: "::1", wantPort: 80},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "empty port", in: "echo:", wantErr: "empty port"},
		{name: "port zero", in: "echo:0", wantErr: "port"},
		{name: "port too big", in: "echo:65536", wantErr: "port"},
		{name: "bare ipv6", in: "::1", wantErr: "without brackets"},
		{name: "slash", in: "echo/x:80", wantErr: "bad character"},
		{name: "unclosed", in: "[::1", wantErr: "unclosed"},
		{name: "empty label inside", in: "echo..demo:80", wantErr: "empty label"},
		{name: "leading dot", in: ".echo.demo", wantErr: "empty label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, port, err := config.SplitHostPort(tt.in, 80)
			if tt.wantErr != "" {
				var bad config.ErrBadAuthority
				if !errors.As(err, &bad) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]any{tt.wantHost, tt.wantPort}, []any{host, port}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzSplitHostPort: any authority either fails with ErrBadAuthority or
// gives a lower-case host without a trailing dot and a port in range, and
// splitting the rendered result again gives the same answer.
func FuzzSplitHostPort(f *testing.F) {
	for _, s := range []string{"echo.demo.svc.clusterset.local:8080", "echo.demo", "[::1]:1", "a:65535", "", ":", "[", "[]:1", "x.:0", "ECHO:08080"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		host, port, err := config.SplitHostPort(in, 80)
		if err != nil {
			var bad config.ErrBadAuthority
			if !errors.As(err, &bad) {
				t.Fatalf("error %v is not ErrBadAuthority", err)
			}
			return
		}
		if host == "" || port < 1 || port > 65535 || host != strings.ToLower(host) || strings.HasSuffix(host, ".") {
			t.Fatalf("SplitHostPort(%q) = %q, %d", in, host, port)
		}
	})
}

// FuzzLookup feeds route matching: whatever the host, Lookup never panics,
// and it finds the one service only under one of its names.
func FuzzLookup(f *testing.F) {
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	b := config.NewBuilder(td)
	if _, err := b.Apply(update(xdsclient.ClusterType, "1", meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true}))); err != nil {
		f.Fatal(err)
	}
	snap, err := b.Apply(update(xdsclient.RouteType, "1", meshtest.Routes(8080, time.Second, 1, echo)))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"echo.demo:8080", "echo.demo.svc.clusterset.local:8080", "ECHO.DEMO.", "echo.demo:80", "x", "[::1]:8080"} {
		f.Add(s)
	}
	names := map[string]bool{"echo.demo": true, "echo.demo.svc.clusterset.local": true}
	f.Fuzz(func(t *testing.T, authority string) {
		host, port, err := config.SplitHostPort(authority, 8080)
		if err != nil {
			return
		}
		svc, ok := snap.Lookup(host, port)
		if ok != (names[host] && port == 8080) {
			t.Fatalf("Lookup(%q, %d) = %v", host, port, ok)
		}
		if ok && svc.Port != echo {
			t.Fatalf("Lookup(%q) found %v", host, svc.Port)
		}
	})
}

// FuzzEndpointHostname feeds arbitrary EDS Endpoint.hostname values: an
// update is either refused with ErrInvalid, or its endpoint's Workload is
// the hostname, a DNS-1123 subdomain of at most 253 characters (it
// becomes a metric label).
func FuzzEndpointHostname(f *testing.F) {
	for _, s := range []string{"echo-v1", "echo-127.0.1.1", "Echo", "a b", strings.Repeat("a", 254), "-x", "x.", "é"} {
		f.Add(s)
	}
	echo := naming.ServicePort{Namespace: "demo", Name: "echo", Port: 8080}
	id := "spiffe://fed.test/ns/demo/sa/echo"
	f.Fuzz(func(t *testing.T, hostname string) {
		b := config.NewBuilder(td)
		if _, err := b.Apply(update(xdsclient.ClusterType, "1", meshtest.OutboundCluster(echo, meshtest.ClusterOpts{HTTP: true, Identities: []string{id}}))); err != nil {
			t.Fatal(err)
		}
		snap, err := b.Apply(update(xdsclient.EndpointType, "1", meshtest.Assignment(echo,
			meshtest.Endpoint{Addr: "127.0.0.1:1", Identity: id, Healthy: true, Workload: hostname})))
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		svc, ok := snap.Lookup("echo.demo", 8080)
		if !ok || len(svc.Endpoints) != 1 {
			t.Fatalf("echo: %v %v, want one endpoint", svc, ok)
		}
		w := svc.Endpoints[0].Workload
		if w != hostname || len(w) > 253 || strings.Trim(w, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" {
			t.Fatalf("hostname %q accepted as workload %q", hostname, w)
		}
	})
}
