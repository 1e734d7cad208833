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
//   - inbound: everything but the sidecar's own ports and the excluded
//     ports goes to the inbound port;
//   - outbound: everything but the sidecar's own traffic (by uid and gid)
//     and loopback goes to the outbound port.
func (in *Injector) rules(excludeInbound []int32) [][]string {
	c := in.cfg
	nat := func(args ...string) []string { return append([]string{"-t", "nat"}, args...) }
	r := [][]string{
		nat("-N", chainInbound),
		nat("-N", chainInRedirect),
		nat("-N", chainOutput),
		nat("-N", chainRedirect),
		nat("-A", chainInRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", itoa(c.InboundPort)),
		nat("-A", chainRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", itoa(c.OutboundPort)),
		nat("-A", "PREROUTING", "-p", "tcp", "-j", chainInbound),
	}
	skip := append([]int32{c.AdminPort, c.OutboundPort, c.InboundPort}, excludeInbound...)
	for _, p := range skip {
		r = append(r, nat("-A", chainInbound, "-p", "tcp", "--dport", itoa(p), "-j", "RETURN"))
	}
	r = append(r,
		nat("-A", chainInbound, "-p", "tcp", "-j", chainInRedirect),
		nat("-A", "OUTPUT", "-p", "tcp", "-j", chainOutput),
		nat("-A", chainOutput, "-m", "owner", "--uid-owner", itoa(c.ProxyUID), "-j", "RETURN"),
		nat("-A", chainOutput, "-m", "owner", "--gid-owner", itoa(c.ProxyUID), "-j", "RETURN"),
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
