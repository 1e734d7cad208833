package demo

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
)

// ErrAddressInUse is what CheckFree's error wraps when an address the demo
// needs is taken.
var ErrAddressInUse = errors.New("address in use")

// Binding is one address a demo process listens on.
type Binding struct {
	// Network is "tcp" or "udp".
	Network string
	// Addr is HOST:PORT.
	Addr string
	// What names the process and the listener, for the error.
	What string
}

// The ports of the demo's processes (the defaults of `fedmesh
// controlplane`, `gateway`, `sidecar` and `echo`).
const (
	portAdmin       = 15014
	portXDS         = 15010
	portEtcd        = 2379
	portSerf        = 7946
	portGateway     = 15443
	portGatewayAdm  = 15021
	portSidecarAdm  = 15000
	portOutbound    = 15001
	portInbound     = 15006
	portServiceEcho = 8080
)

// Bindings lists every address the processes of a demo of clusters bind,
// with replicas echo replicas per cluster, canary echo-v2 replicas in
// canaryCluster and a client in each of callers. The embedded etcd's raft
// peer listener takes a free port, and connections out take ephemeral
// ones: neither is listed.
func Bindings(clusters []Cluster, replicas, canary int, canaryCluster string, callers []string) []Binding {
	var bs []Binding
	add := func(network, host string, port int, what string) {
		bs = append(bs, Binding{Network: network, Addr: net.JoinHostPort(host, strconv.Itoa(port)), What: what})
	}
	sidecar := func(host, what string) {
		add("tcp", host, portSidecarAdm, what+" sidecar admin")
		add("tcp", host, portOutbound, what+" sidecar outbound")
		add("tcp", host, portInbound, what+" sidecar inbound")
	}
	for _, c := range clusters {
		cp := "control plane " + c.Name
		add("tcp", c.IP, portAdmin, cp+" admin")
		add("tcp", c.IP, portXDS, cp+" xDS")
		add("tcp", c.IP, portEtcd, cp+" etcd")
		add("tcp", c.IP, portSerf, cp+" gossip")
		add("udp", c.IP, portSerf, cp+" gossip")
		add("tcp", c.IP, portGateway, "gateway "+c.Name)
		add("tcp", c.IP, portGatewayAdm, "gateway "+c.Name+" admin")
		for r := 1; r <= replicas; r++ {
			w := fmt.Sprintf("%s echo-%d", c.Name, r)
			add("tcp", c.WorkloadIP(r), portServiceEcho, w)
			sidecar(c.WorkloadIP(r), w)
		}
		if c.Name == canaryCluster {
			for r := 1; r <= canary; r++ {
				w := fmt.Sprintf("%s %s-%d", c.Name, CanaryService, r)
				add("tcp", c.CanaryIP(r), portServiceEcho, w)
				sidecar(c.CanaryIP(r), w)
			}
		}
		for _, name := range callers {
			if name == c.Name {
				w := c.Name + " client"
				// The client's sidecar serves the services' ports
				// on the client's own address.
				add("tcp", c.ClientIP(), portServiceEcho, w+" sidecar service listener")
				sidecar(c.ClientIP(), w)
			}
		}
	}
	return bs
}

// CheckFree binds each of bs for a moment and reports those that are
// taken: the first few by address and process, all of them counted, with
// a hint to move the demo. The error wraps ErrAddressInUse when one was in
// use, and the bind error otherwise (an address the host does not have).
func CheckFree(bs []Binding) error {
	var taken []string
	var other error
	for _, b := range bs {
		err := probe(b)
		switch {
		case err == nil:
		case errors.Is(err, syscall.EADDRINUSE):
			taken = append(taken, fmt.Sprintf("%s/%s (%s)", b.Addr, b.Network, b.What))
		case other == nil:
			other = fmt.Errorf("cannot bind %s/%s (%s): %w", b.Addr, b.Network, b.What, err)
		}
	}
	if len(taken) > 0 {
		shown := taken
		if len(shown) > 3 {
			shown = shown[:3]
		}
		more := ""
		if len(taken) > len(shown) {
			more = fmt.Sprintf(" and %d more", len(taken)-len(shown))
		}
		return fmt.Errorf("%w: %s%s; another demo or process holds the demo's addresses: stop it, or move this demo with --base-address (e.g. 127.1.0.11)",
			ErrAddressInUse, strings.Join(shown, ", "), more)
	}
	return other
}

// probe binds b and closes it at once.
func probe(b Binding) error {
	switch b.Network {
	case "udp":
		c, err := net.ListenPacket("udp", b.Addr)
		if err != nil {
			return err
		}
		return c.Close()
	default:
		l, err := net.Listen("tcp", b.Addr)
		if err != nil {
			return err
		}
		return l.Close()
	}
}
