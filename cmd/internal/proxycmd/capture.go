package proxycmd

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/fedmesh/fedmesh/internal/portset"
	"github.com/fedmesh/fedmesh/sidecar"
	"github.com/fedmesh/fedmesh/sidecar/dns"
	"github.com/fedmesh/fedmesh/sidecar/proxy"
)

// captureFlags are the sidecar's flags for transparent capture, which the
// injector sets in a pod.
type captureFlags struct {
	on        bool
	outbound6 string
	plaintext string
	appProbes string
	upstream  string
	opaque    string
}

func (c *captureFlags) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&c.on, "capture", false, "the pod's capture rules redirect its traffic to the sidecar: read each connection's original destination, mesh what goes to services, pass the rest through")
	f.StringVar(&c.outbound6, "outbound-ipv6", "", "with --capture: a second outbound listener for the app's IPv6 connections (ip6tables REDIRECT delivers them to [::1]); skipped when the host has no IPv6")
	f.StringVar(&c.plaintext, "inbound-plaintext", "none", "with --capture: which inbound ports take plaintext from callers outside the mesh, relayed to the app: all (PERMISSIVE), none (STRICT) or PORT[,PORT...]")
	f.StringVar(&c.upstream, "dns-upstream", "", "with --capture: where DNS queries for names the sidecar does not own go (the pod's DNS is captured to it): file:RESOLV.CONF (its nameservers) or HOST:PORT[,...]; empty answers them REFUSED")
	f.StringVar(&c.opaque, "opaque-ports", portset.DefaultOpaque, "with --capture: ports where no protocol is detected (server-first protocols such as SMTP and MySQL), PORT or LO-HI, comma-separated, or none: connections to them pass through, or in as plaintext where allowed, without waiting for their first bytes")
	f.StringVar(&c.appProbes, "app-probes", "", "with --capture: the app's probes as JSON, {\"/app-health/CONTAINER/KIND\": {\"kind\": \"\"|\"tcp\"|\"grpc\", \"port\": N, \"scheme\": \"HTTPS\", \"path\": P, \"headers\": {...}, \"service\": S, \"timeoutSeconds\": T}}, served on --ready for the kubelet")
}

// config returns the capture configuration, nil without --capture.
// address is the workload's (the pod IP), where the app's probes go.
func (c *captureFlags) config(address string) (*sidecar.CaptureConfig, error) {
	if !c.on {
		if c.outbound6 != "" || c.appProbes != "" || c.upstream != "" || (c.plaintext != "" && c.plaintext != "none") || c.opaque != portset.DefaultOpaque {
			return nil, fmt.Errorf("--outbound-ipv6, --inbound-plaintext, --dns-upstream, --opaque-ports and --app-probes need --capture")
		}
		return nil, nil
	}
	pp, err := parsePlaintext(c.plaintext)
	if err != nil {
		return nil, err
	}
	opaque, err := portset.Parse(c.opaque)
	if err != nil {
		return nil, fmt.Errorf("--opaque-ports: %w", err)
	}
	cc := &sidecar.CaptureConfig{OutboundAddrIPv6: c.outbound6, InboundPlaintext: pp, OpaquePorts: opaque, AppHost: address}
	if cc.DNSUpstreams, err = parseUpstreams(c.upstream); err != nil {
		return nil, err
	}
	if c.appProbes != "" {
		if cc.AppProbes, err = sidecar.ParseAppProbes(c.appProbes); err != nil {
			return nil, fmt.Errorf("--app-probes: %w", err)
		}
	}
	return cc, nil
}

// parsePlaintext reads --inbound-plaintext.
func parsePlaintext(s string) (proxy.PlaintextPolicy, error) {
	switch s {
	case "all":
		return proxy.PlaintextPolicy{All: true}, nil
	case "none", "":
		return proxy.PlaintextPolicy{}, nil
	}
	var pp proxy.PlaintextPolicy
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
		if err != nil || p == 0 {
			return pp, fmt.Errorf("--inbound-plaintext: %q is not all, none or a list of ports", s)
		}
		pp.Ports = append(pp.Ports, uint16(p))
	}
	return pp, nil
}

// parseUpstreams reads --dns-upstream: file:PATH (a resolv.conf) or a
// list of host:port.
func parseUpstreams(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if path, ok := strings.CutPrefix(s, "file:"); ok {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--dns-upstream: %w", err)
		}
		defer f.Close()
		ups, err := dns.ParseResolvConf(f)
		if err != nil {
			return nil, fmt.Errorf("--dns-upstream: %s: %w", path, err)
		}
		return ups, nil
	}
	var out []string
	for _, hp := range strings.Split(s, ",") {
		hp = strings.TrimSpace(hp)
		if _, err := netip.ParseAddrPort(hp); err != nil {
			return nil, fmt.Errorf("--dns-upstream: %q is not IP:PORT or file:PATH", hp)
		}
		out = append(out, hp)
	}
	return out, nil
}
