package inject

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
)

func intOrString(p int32) intstr.IntOrString { return intstr.FromInt32(p) }

// Chains fedmesh adds to the nat table.
const (
	chainInbound    = "FEDMESH_INBOUND"
	chainInRedirect = "FEDMESH_IN_REDIRECT"
	chainOutput     = "FEDMESH_OUTPUT"
	chainRedirect   = "FEDMESH_REDIRECT"
)

// rules returns the iptables commands (each an argument list after
// "iptables") that send a pod's TCP traffic through its sidecar:
//
//   - inbound (nat PREROUTING, which sees only packets from outside the
//     pod): everything goes to the inbound port, where the sidecar demands
//     mTLS, except traffic to the inbound port itself, the ready port (the
//     kubelet's probe) and the excluded ports. The outbound and admin
//     ports are not excepted: a connection from another pod to them lands
//     on the inbound listener like any other, so no other pod reaches the
//     outbound proxy (which speaks with this pod's identity) or the admin
//     pages, even if they were bound beyond loopback;
//   - outbound (nat OUTPUT, the pod's own connections): everything but the
//     sidecar's own traffic (by uid and gid) and 127.0.0.1 goes to the
//     outbound port. REDIRECT of a locally generated packet rewrites its
//     destination to 127.0.0.1, where the outbound listener is.
//
// The rule set stays minimal: no filter-table rules are needed, because
// nothing from outside reaches a port the nat rules do not let through.
func (in *Injector) rules(excludeInbound []int32) [][]string {
	c := in.cfg
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
	// listener already, the kubelet's probe of the ready port, and the
	// ports the pod excludes (never the outbound or admin port: Inject
	// refuses those).
	pass := append([]int32{c.InboundPort, c.ReadyPort}, excludeInbound...)
	for _, p := range pass {
		r = append(r, nat("-A", chainInbound, "-p", "tcp", "--dport", itoa(p), "-j", "RETURN"))
	}
	r = append(r,
		// Everything else from outside, the outbound and admin ports
		// included, goes to the inbound listener.
		nat("-A", chainInbound, "-p", "tcp", "-j", chainInRedirect),
		// Every new TCP connection the pod opens is outbound...
		nat("-A", "OUTPUT", "-p", "tcp", "-j", chainOutput),
		// ...except the sidecar's own (no loop through itself)...
		nat("-A", chainOutput, "-m", "owner", "--uid-owner", itoa(c.ProxyUID), "-j", "RETURN"),
		nat("-A", chainOutput, "-m", "owner", "--gid-owner", itoa(c.ProxyUID), "-j", "RETURN"),
		// ...and the app's to 127.0.0.1, where it reaches the sidecar's
		// outbound and admin listeners (and itself) directly.
		nat("-A", chainOutput, "-d", "127.0.0.1/32", "-j", "RETURN"),
		nat("-A", chainOutput, "-j", chainRedirect),
	)
	return r
}

// RedirectScript renders iptables commands as a shell script that stops
// at the first failure. The rules are IPv4 only for now.
func RedirectScript(rules [][]string) string {
	var b strings.Builder
	b.WriteString("set -eu\n")
	for _, r := range rules {
		b.WriteString("iptables " + strings.Join(r, " ") + "\n")
	}
	return b.String()
}
