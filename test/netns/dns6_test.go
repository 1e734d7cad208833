package netns

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/fedmesh/fedmesh/sidecar/dns"
)

// The IPv6 DNS phase of TestPodPath: the pods' nameserver is an IPv6
// address, on a ULA prefix of the lab's bridge (no address of it is in
// the host's namespace, and no route leads off the machine).
const (
	podsNet6 = "fd00:fed:15::"
	// nameserver6 is the pods' IPv6 nameserver: a small DNS server in the
	// other pod (upstreamMain), which owns upstreamDomain and nothing else.
	nameserver6 = podsNet6 + "53"
	// upstreamName resolves to upstreamAddr there, and only there: an
	// answer with it was forwarded to the IPv6 upstream.
	upstreamDomain = "upstream6.test"
	upstreamName   = "db." + upstreamDomain
	upstreamAddr   = "198.18.53.6"
)

// upstreamEnv makes this test binary the IPv6 upstream DNS server: it
// answers on the address it names (UDP and TCP) and logs every query
// with its source.
const upstreamEnv = "FEDMESH_NETNS_DNS_UPSTREAM"

// dns6Pod is a pod of the IPv6 DNS phase: it is started again (a pod is
// made anew with its DNS configuration) with an IPv6 nameserver in its
// resolv.conf.
type dns6Pod struct {
	pod
	cluster, sa string
	ip6         string
	sidecar     *proc // running; stopped and replaced
}

// ipv6DNS gives the pods IPv6 addresses and an IPv6 nameserver, restarts
// their sidecars and proves, from each pod (so with nftables and with
// ip6tables), over UDP and TCP, that its IPv6 DNS is captured to its
// sidecar: a clusterset name gets the ClusterSetIP, which no other
// server has (the only nameserver the pod has does not know it, and
// never sees the query); AAAA of it is NODATA; a name nobody exports is
// NXDOMAIN; and another name is forwarded by the sidecar to the IPv6
// nameserver (the answer only it gives, the query seen coming from the
// pod's IPv6 address). served proves the app's call by name, resolved
// through the IPv6 DNS, is served by the mesh.
func (p *podsLab) ipv6DNS(t *testing.T, pods []*dns6Pod, served func() error) {
	t.Helper()
	for _, a := range []struct{ ns, ip string }{{p.other, podsNet6 + "30"}, {p.other, nameserver6}, {pods[0].ns, pods[0].ip6}, {pods[1].ns, pods[1].ip6}} {
		p.sh("ip", "-n", a.ns, "addr", "add", a.ip+"/64", "dev", "eth0", "nodad")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	server := net.JoinHostPort(nameserver6, "53")
	upstream := p.start(t, p.other, "upstream6-dns", 0, "env", upstreamEnv+"="+server, self)
	eventually(t, 30*time.Second, "the IPv6 upstream answers", func() error {
		if upstream.exited() {
			t.Fatalf("the IPv6 upstream exited: %v", upstream.err)
		}
		o, err := probeIn(p.other, probe{DNS: upstreamName + ".", DNSServer: server})
		if err != nil {
			return err
		}
		if want := dnsBody(dnsmessage.RCodeSuccess, true, upstreamAddr); o.Body != want {
			return fmt.Errorf("%v, want %s", o, want)
		}
		return nil
	})

	// The ClusterSetIP, as the client's sidecar has it from xDS.
	o := mustProbe(t, p.client, probe{URL: "http://127.0.0.1:15000/config_dump", Match: `"clusterSetIP"`})
	m := regexp.MustCompile(`"clusterSetIP": "([0-9.]+)"`).FindStringSubmatch(o.Body)
	if m == nil {
		t.Fatalf("no ClusterSetIP in the client sidecar's configuration: %v", o)
	}
	csip := m[1]

	for _, pd := range pods {
		if err := os.WriteFile(filepath.Join("/etc/netns", pd.ns, "resolv.conf"), []byte("nameserver "+nameserver6+"\noptions attempts:1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		pd.sidecar.stop()
		pd.sidecar = p.sidecar(t, pd.pod, pd.cluster, pd.sa)
	}
	for _, pd := range pods {
		t.Run(pd.name, func(t *testing.T) {
			eventually(t, 60*time.Second, pd.name+"'s sidecar answers its IPv6 DNS", func() error {
				if pd.sidecar.exited() {
					t.Fatalf("%s's sidecar exited: %v", pd.name, pd.sidecar.err)
				}
				o, err := probeIn(pd.ns, probe{DNS: "echo.demo.svc.clusterset.local."})
				if err != nil {
					return err
				}
				if want := dnsBody(dnsmessage.RCodeSuccess, true, csip); o.Body != want {
					return fmt.Errorf("%v, want %s", o, want)
				}
				return nil
			})
			for _, tcp := range []bool{false, true} {
				for _, c := range []struct {
					name string
					typ  string
					want string
				}{
					{"echo.demo.svc.clusterset.local.", "A", dnsBody(dnsmessage.RCodeSuccess, true, csip)},
					{"echo.demo.svc.clusterset.local.", "AAAA", dnsBody(dnsmessage.RCodeSuccess, true)},
					{"nope.demo.svc.clusterset.local.", "AAAA", dnsBody(dnsmessage.RCodeNameError, true)},
					{upstreamName + ".", "A", dnsBody(dnsmessage.RCodeSuccess, true, upstreamAddr)},
				} {
					// The resolv.conf nameserver, as any app asks it.
					o := mustProbe(t, pd.ns, probe{DNS: c.name, DNSType: c.typ, DNSTCP: tcp})
					if o.Err != "" || o.Body != c.want {
						t.Errorf("%s %s (tcp %t) to %s: %v, want %s", c.typ, c.name, tcp, nameserver6, o, c.want)
					}
				}
			}
			// The sidecar forwarded the upstream's name, over UDP and
			// TCP, from the pod's IPv6 address (its own queries are not
			// captured).
			for _, network := range []string{"udp", "tcp"} {
				want := network + " query from " + net.JoinHostPort(pd.ip6, "")
				b, _ := os.ReadFile(upstream.log)
				if !strings.Contains(string(b), want) {
					t.Errorf("the IPv6 upstream saw no %q: %s", want, b)
				}
			}
			if n := metric(t, pd.ns, "fedmesh_sidecar_dns_queries_total", `result="forwarded"`); n < 2 {
				t.Errorf("%s's sidecar forwarded %v queries, want at least 2 (UDP and TCP)", pd.name, n)
			}
		})
	}
	// The upstream never saw a clusterset name: the sidecars answered
	// them all.
	b, err := os.ReadFile(upstream.log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "clusterset.local") {
		t.Errorf("the IPv6 upstream was asked clusterset names:\n%s", b)
	}
	eventually(t, 30*time.Second, "the client's call by name, resolved by its IPv6 DNS, is served", served)
}

// dnsBody is a DNS probe's outcome body: the reply's code, whether it is
// authoritative, and its A and AAAA answers in order.
func dnsBody(rcode dnsmessage.RCode, aa bool, answers ...string) string {
	return fmt.Sprintf("%v aa=%t [%s]", rcode, aa, strings.Join(answers, " "))
}

// runDNSProbe sends the probe's query (type DNSType, A by default) to
// DNSServer, or to the first nameserver of /etc/resolv.conf, over UDP or
// TCP, and returns the reply as dnsBody.
func runDNSProbe(p probe) outcome {
	server := p.DNSServer
	if server == "" {
		f, err := os.Open("/etc/resolv.conf")
		if err != nil {
			return outcome{Err: err.Error()}
		}
		ns, err := dns.ParseResolvConf(f)
		f.Close()
		if err != nil || len(ns) == 0 {
			return outcome{Err: fmt.Sprintf("no nameserver in /etc/resolv.conf: %v", err)}
		}
		server = ns[0]
	}
	typ := dnsmessage.TypeA
	if p.DNSType == "AAAA" {
		typ = dnsmessage.TypeAAAA
	}
	name, err := dnsmessage.NewName(p.DNS)
	if err != nil {
		return outcome{Err: err.Error()}
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x5e6, RecursionDesired: true})
	_ = b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: name, Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		return outcome{Err: err.Error()}
	}
	q, err := b.Finish()
	if err != nil {
		return outcome{Err: err.Error()}
	}
	network := "udp"
	if p.DNSTCP {
		network = "tcp"
	}
	resp, err := dnsExchange(network, server, q)
	if err != nil {
		return outcome{Err: err.Error()}
	}
	var ps dnsmessage.Parser
	h, err := ps.Start(resp)
	if err != nil || h.ID != 0x5e6 || !h.Response {
		return outcome{Err: fmt.Sprintf("not a reply to the query: %+v, %v", h, err)}
	}
	if err := ps.SkipAllQuestions(); err != nil {
		return outcome{Err: err.Error()}
	}
	ans, err := ps.AllAnswers()
	if err != nil {
		return outcome{Err: err.Error()}
	}
	var got []string
	for _, a := range ans {
		switch r := a.Body.(type) {
		case *dnsmessage.AResource:
			got = append(got, netip.AddrFrom4(r.A).String())
		case *dnsmessage.AAAAResource:
			got = append(got, netip.AddrFrom16(r.AAAA).String())
		}
	}
	return outcome{Body: dnsBody(h.RCode, h.Authoritative, got...)}
}

// dnsExchange sends query to server over network and returns the reply.
func dnsExchange(network, server string, query []byte) ([]byte, error) {
	c, err := net.DialTimeout(network, server, probeTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	if network == "udp" {
		if _, err := c.Write(query); err != nil {
			return nil, err
		}
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		return buf[:n], err
	}
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(query))), query...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err = io.ReadFull(c, resp)
	return resp, err
}

// upstreamMain serves DNS as the pods' IPv6 upstream on $upstreamEnv
// until SIGTERM, when this process was started as one; it reports false
// otherwise. It owns upstreamDomain (upstreamName has upstreamAddr) and
// refuses the rest; every query's name and source go to stdout.
func upstreamMain() bool {
	addr, ok := os.LookupEnv(upstreamEnv)
	if !ok {
		return false
	}
	if err := serveUpstream(addr); err != nil {
		fmt.Fprintln(os.Stderr, "upstream DNS:", err)
		os.Exit(1)
	}
	return true
}

func serveUpstream(addr string) error {
	var mu sync.Mutex // orders the log lines
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	srv, err := dns.New(dns.Config{Domains: []string{upstreamDomain}, Resolve: func(name string) (netip.Addr, bool) {
		logf("resolve %s", name)
		if name == upstreamName {
			return netip.MustParseAddr(upstreamAddr), true
		}
		return netip.Addr{}, false
	}}, nil)
	if err != nil {
		return err
	}
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		udp.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logf("serving on %s", addr)
	return srv.Serve(ctx, loggedPacketConn{udp, logf}, loggedListener{tcp, logf})
}

// loggedPacketConn logs the source of every datagram read.
type loggedPacketConn struct {
	net.PacketConn
	logf func(string, ...any)
}

func (c loggedPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.logf("udp query from %s", a)
	}
	return n, a, err
}

// loggedListener logs the source of every connection accepted.
type loggedListener struct {
	net.Listener
	logf func(string, ...any)
}

func (l loggedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.logf("tcp query from %s", c.RemoteAddr())
	}
	return c, err
}
