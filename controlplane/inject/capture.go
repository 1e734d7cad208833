package inject

import (
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
)

func intOrString(p int32) intstr.IntOrString { return intstr.FromInt32(p) }

// Chains fedmesh adds to the nat table (iptables) and the table of its
// nftables rules.
const (
	chainInbound    = "FEDMESH_INBOUND"
	chainInRedirect = "FEDMESH_IN_REDIRECT"
	chainOutput     = "FEDMESH_OUTPUT"
	chainRedirect   = "FEDMESH_REDIRECT"
	nftTable        = "fedmesh"
)

// CaptureEnv names the environment variable that forces the init
// script's backend: "nft", "iptables" or "iptables-legacy". Unset or
// "auto" detects it (see Script).
const CaptureEnv = "FEDMESH_CAPTURE"

// Capture is what a pod's init script installs: the rules that send its
// TCP traffic through the sidecar, and what they leave alone. It is
// pure; Rules, NFT and Script render it.
type Capture struct {
	// ProxyUID is the sidecar's uid and gid; its own connections are
	// never redirected.
	ProxyUID int64
	// OutboundPort, InboundPort and ReadyPort are the sidecar's.
	OutboundPort, InboundPort, ReadyPort int32
	// ExcludeInboundPorts reach the app directly from outside the pod.
	ExcludeInboundPorts []int32
	// ExcludeOutboundPorts and ExcludeOutboundCIDRs: connections the pod
	// opens to these ports or addresses bypass the sidecar.
	ExcludeOutboundPorts []int32
	ExcludeOutboundCIDRs []netip.Prefix
	// DNSPort, when not zero, captures the pod's DNS queries (UDP and
	// TCP port 53, whatever the nameserver, IPv4 and IPv6) to the
	// sidecar's DNS server on 127.0.0.1:DNSPort and [::1]:DNSPort (where
	// REDIRECT delivers each family), which answers clusterset names and
	// forwards the others to the pod's nameservers.
	DNSPort int32
}

// Family is an IP family of the rules.
type Family int

// The families: IPv4 rules are iptables', IPv6 ones ip6tables'.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) loopback() string {
	if f == IPv6 {
		return "::1/128"
	}
	return "127.0.0.1/32"
}

func (f Family) has(p netip.Prefix) bool { return p.Addr().Is4() == (f == IPv4) }

// Rules returns the iptables (IPv4) or ip6tables (IPv6) commands, each an
// argument list after the command's name, that send a pod's TCP traffic
// through its sidecar:
//
//   - inbound (nat PREROUTING, which sees only packets from outside the
//     pod): everything goes to the inbound port, where the sidecar takes
//     mTLS from mesh peers and, where the pod allows it, plaintext
//     (which it forwards to the original destination), except traffic to
//     the inbound port itself, the ready port (the kubelet's probes,
//     rewritten to it) and the excluded ports. The outbound and admin
//     ports are not excepted: a connection from another pod to them lands
//     on the inbound listener like any other, so no other pod reaches the
//     outbound proxy (which speaks with this pod's identity) or the admin
//     pages, even if they were bound beyond loopback;
//   - outbound (nat OUTPUT, the pod's own connections): everything but the
//     sidecar's own traffic (by uid and gid), loopback and the excluded
//     addresses and ports goes to the outbound port. REDIRECT of a
//     locally generated packet rewrites its destination to loopback
//     (127.0.0.1 or ::1), where the outbound listener is; the sidecar
//     reads the original destination (SO_ORIGINAL_DST) to tell mesh
//     traffic from traffic it passes through untouched.
//
// The rule set stays minimal: no filter-table rules are needed, because
// nothing from outside reaches a port the nat rules do not let through.
func (c Capture) Rules(f Family) [][]string {
	nat := func(args ...string) []string { return append([]string{"-t", "nat"}, args...) }
	r := [][]string{
		nat("-N", chainInbound),
		nat("-N", chainInRedirect),
		nat("-N", chainOutput),
		nat("-N", chainRedirect),
		// The two targets: inbound to the mTLS listener, outbound to the
		// proxy.
		nat("-A", chainInRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", itoa(c.InboundPort)),
		nat("-A", chainRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", itoa(c.OutboundPort)),
		// Every new TCP connection from outside the pod is inbound.
		nat("-A", "PREROUTING", "-p", "tcp", "-j", chainInbound),
	}
	// Let through, unchanged: mesh traffic addressed to the inbound
	// listener already, the kubelet's probes of the ready port, and the
	// ports the pod excludes (never the outbound or admin port: Inject
	// refuses those).
	for _, p := range c.inboundPass() {
		r = append(r, nat("-A", chainInbound, "-p", "tcp", "--dport", itoa(p), "-j", "RETURN"))
	}
	r = append(r,
		// Everything else from outside, the outbound and admin ports
		// included, goes to the inbound listener.
		nat("-A", chainInbound, "-p", "tcp", "-j", chainInRedirect),
		// Every new TCP connection the pod opens is outbound...
		nat("-A", "OUTPUT", "-p", "tcp", "-j", chainOutput),
	)
	dns := c.DNSPort != 0
	if dns {
		// ...and so are its DNS queries over UDP...
		r = append(r, nat("-A", "OUTPUT", "-p", "udp", "--dport", "53", "-j", chainOutput))
	}
	r = append(r,
		// ...except the sidecar's own (no loop through itself)...
		nat("-A", chainOutput, "-m", "owner", "--uid-owner", itoa(c.ProxyUID), "-j", "RETURN"),
		nat("-A", chainOutput, "-m", "owner", "--gid-owner", itoa(c.ProxyUID), "-j", "RETURN"),
	)
	if dns {
		// ...DNS goes to the sidecar's DNS server, whichever nameserver
		// it was for (before the opt-outs: a nameserver is often in an
		// excluded service range); REDIRECT delivers it to the family's
		// loopback, 127.0.0.1 or ::1, where the sidecar listens on both...
		r = append(r,
			nat("-A", chainOutput, "-p", "udp", "--dport", "53", "-j", "REDIRECT", "--to-ports", itoa(c.DNSPort)),
			nat("-A", chainOutput, "-p", "tcp", "--dport", "53", "-j", "REDIRECT", "--to-ports", itoa(c.DNSPort)),
		)
	}
	r = append(r,
		// ...the app's to loopback, where it reaches the sidecar's
		// outbound and admin listeners (and itself) directly...
		nat("-A", chainOutput, "-d", f.loopback(), "-j", "RETURN"),
	)
	// ...and what the pod opts out of.
	for _, p := range c.ExcludeOutboundCIDRs {
		if f.has(p) {
			r = append(r, nat("-A", chainOutput, "-d", p.String(), "-j", "RETURN"))
		}
	}
	for _, p := range c.ExcludeOutboundPorts {
		r = append(r, nat("-A", chainOutput, "-p", "tcp", "--dport", itoa(p), "-j", "RETURN"))
	}
	return append(r, nat("-A", chainOutput, "-j", chainRedirect))
}

func (c Capture) inboundPass() []int32 {
	return append([]int32{c.InboundPort, c.ReadyPort}, c.ExcludeInboundPorts...)
}

// NFT returns the same rules as Rules for both families, as one nftables
// ruleset (nft -f) of its own table (inet fedmesh), for nodes whose
// kernel and tools use nftables.
func (c Capture) NFT() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("table inet %s {", nftTable)
	w("  chain prerouting {")
	w("    type nat hook prerouting priority -100; policy accept;")
	w("    meta l4proto tcp tcp dport { %s } return", joinPorts(c.inboundPass()))
	w("    meta l4proto tcp redirect to :%d", c.InboundPort)
	w("  }")
	w("  chain output {")
	w("    type nat hook output priority -100; policy accept;")
	w("    meta skuid %d return", c.ProxyUID)
	w("    meta skgid %d return", c.ProxyUID)
	if c.DNSPort != 0 {
		// Both families: REDIRECT delivers IPv4 queries to 127.0.0.1
		// and IPv6 ones to ::1, the sidecar's two DNS listeners.
		w("    udp dport 53 redirect to :%d", c.DNSPort)
		w("    tcp dport 53 redirect to :%d", c.DNSPort)
	}
	w("    meta l4proto != tcp return")
	w("    ip daddr 127.0.0.1 return")
	w("    ip6 daddr ::1 return")
	for _, f := range []Family{IPv4, IPv6} {
		var set []string
		for _, p := range c.ExcludeOutboundCIDRs {
			if f.has(p) {
				set = append(set, p.String())
			}
		}
		if len(set) > 0 {
			kw := "ip"
			if f == IPv6 {
				kw = "ip6"
			}
			w("    %s daddr { %s } return", kw, strings.Join(set, ", "))
		}
	}
	if len(c.ExcludeOutboundPorts) > 0 {
		w("    tcp dport { %s } return", joinPorts(c.ExcludeOutboundPorts))
	}
	w("    meta l4proto tcp redirect to :%d", c.OutboundPort)
	w("  }")
	w("}")
	return b.String()
}

func joinPorts(ps []int32) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = itoa(p)
	}
	return strings.Join(s, ", ")
}

// Script renders the init container's shell script. It picks the backend
// the node uses, unless $FEDMESH_CAPTURE names one:
//
//   - iptables-legacy when the pod's network namespace already has legacy
//     nat rules (a CNI plugin's): mixing legacy and nftables rules in one
//     namespace makes their order undefined;
//   - else nft, a ruleset of its own table, when nft is there and the
//     kernel answers it;
//   - else iptables and ip6tables (whichever backend they are built for).
//
// The IPv6 rules are skipped when the pod has no IPv6 (no
// /proc/net/if_inet6). The script stops at the first failure.
func (c Capture) Script() string {
	var b strings.Builder
	b.WriteString(`set -eu
mode="${` + CaptureEnv + `:-auto}"
if [ "$mode" = auto ]; then
  mode=iptables
  if command -v iptables-legacy-save >/dev/null 2>&1 && iptables-legacy-save -t nat 2>/dev/null | grep -q '^-A'; then
    mode=iptables-legacy
  elif command -v nft >/dev/null 2>&1 && nft list tables >/dev/null 2>&1; then
    mode=nft
  fi
fi
echo "fedmesh-init: capture with $mode"
case "$mode" in
nft)
  nft -f - <<'FEDMESH_NFT'
`)
	b.WriteString(c.NFT())
	b.WriteString(`FEDMESH_NFT
  ;;
iptables | iptables-legacy)
  v4=iptables
  v6=ip6tables
  if [ "$mode" = iptables-legacy ]; then
    v4=iptables-legacy
    v6=ip6tables-legacy
  fi
`)
	for _, r := range c.Rules(IPv4) {
		b.WriteString("  \"$v4\" " + strings.Join(r, " ") + "\n")
	}
	b.WriteString("  if [ -e /proc/net/if_inet6 ]; then\n")
	for _, r := range c.Rules(IPv6) {
		b.WriteString("    \"$v6\" " + strings.Join(r, " ") + "\n")
	}
	b.WriteString(`  fi
  ;;
*)
  echo "fedmesh-init: ` + CaptureEnv + `=$mode is not nft, iptables or iptables-legacy" >&2
  exit 2
  ;;
esac
`)
	return b.String()
}
