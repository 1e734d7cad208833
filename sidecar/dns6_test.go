package sidecar_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// TestDNSIPv6: with DNSAddrIPv6 the sidecar answers on [::1] too, over
// UDP and TCP, as on its IPv4 listener: a clusterset name gets its
// ClusterSetIP (A), and AAAA gets NOERROR with no answer (NODATA: the
// name exists, ClusterSetIPs are IPv4), never NXDOMAIN, which would tell
// the app the name does not exist; a name nobody imports is NXDOMAIN.
func TestDNSIPv6(t *testing.T) {
	if l, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		t.Skipf("skipping: no IPv6 loopback here: %v", err)
	} else {
		l.Close()
	}
	p := newPairWith(t, wopts{clusterSetDNS: true, dns6: true})
	hs := svc("echo", p.httpP)
	p.res[rdsT] = []types.Resource{
		xdsresource.RouteConfiguration(strconv.Itoa(int(p.httpP)), []*routev3.VirtualHost{xdsresource.VirtualHost(hs, xdsresource.Route{
			Timeout: 15 * time.Second, Retries: 2,
			ExtraDomains: []string{echoClusterSetIP, echoClusterSetIP + ":" + strconv.Itoa(int(p.httpP))},
		})}),
	}
	p.m.set("client", p.res)

	addr6 := p.client.sc.DNSAddrIPv6()
	ap, err := netip.ParseAddrPort(addr6)
	if err != nil || ap.Addr() != netip.IPv6Loopback() {
		t.Fatalf("DNSAddrIPv6() = %q, want [::1]:PORT (%v)", addr6, err)
	}
	if addr6 == p.client.sc.DNSAddr() {
		t.Fatalf("the IPv6 DNS address is the IPv4 one, %s", addr6)
	}
	const name = "echo.demo.svc.clusterset.local."
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			poll.Until(t, 30*time.Second, "echo's ClusterSetIP answered on "+addr6, func() error {
				r, err := exchange(network, addr6, name, dnsmessage.TypeA)
				if err != nil {
					return err
				}
				if r.RCode != dnsmessage.RCodeSuccess || len(r.Answers) != 1 || r.Answers[0] != echoClusterSetIP {
					return fmt.Errorf("A %s: %+v, want %s", name, r, echoClusterSetIP)
				}
				return nil
			})
			r, err := exchange(network, addr6, name, dnsmessage.TypeAAAA)
			if err != nil {
				t.Fatal(err)
			}
			if r.RCode != dnsmessage.RCodeSuccess || !r.Authoritative || len(r.Answers) != 0 {
				t.Errorf("AAAA %s: %+v, want an authoritative NOERROR with no answer (NODATA)", name, r)
			}
			r, err = exchange(network, addr6, "nope.demo.svc.clusterset.local.", dnsmessage.TypeAAAA)
			if err != nil {
				t.Fatal(err)
			}
			if r.RCode != dnsmessage.RCodeNameError {
				t.Errorf("AAAA of a name nobody imports: %+v, want NXDOMAIN", r)
			}
		})
	}
}

// dnsReply is what a DNS exchange told.
type dnsReply struct {
	RCode         dnsmessage.RCode
	Authoritative bool
	Answers       []string // A and AAAA addresses
}

// exchange sends one query of typ for name to server over network and
// reads the reply.
func exchange(network, server, name string, typ dnsmessage.Type) (dnsReply, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x6d6d, RecursionDesired: true})
	_ = b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		return dnsReply{}, err
	}
	q, err := b.Finish()
	if err != nil {
		return dnsReply{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, server)
	if err != nil {
		return dnsReply{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	var resp []byte
	if network == "tcp" {
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
			return dnsReply{}, err
		}
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return dnsReply{}, err
		}
		n := binary.BigEndian.Uint16(buf[:2])
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return dnsReply{}, err
		}
		resp = buf[:n]
	} else {
		if _, err := c.Write(q); err != nil {
			return dnsReply{}, err
		}
		n, err := c.Read(buf)
		if err != nil {
			return dnsReply{}, err
		}
		resp = buf[:n]
	}
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil {
		return dnsReply{}, err
	}
	if h.ID != 0x6d6d || !h.Response {
		return dnsReply{}, errors.New("the reply does not answer the query")
	}
	if err := p.SkipAllQuestions(); err != nil {
		return dnsReply{}, err
	}
	ans, err := p.AllAnswers()
	if err != nil {
		return dnsReply{}, err
	}
	r := dnsReply{RCode: h.RCode, Authoritative: h.Authoritative}
	for _, a := range ans {
		switch b := a.Body.(type) {
		case *dnsmessage.AResource:
			r.Answers = append(r.Answers, netip.AddrFrom4(b.A).String())
		case *dnsmessage.AAAAResource:
			r.Answers = append(r.Answers, netip.AddrFrom16(b.AAAA).String())
		}
	}
	return r, nil
}
