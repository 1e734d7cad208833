package sidecar

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

// msgNoIPv6DNS is what the sidecar logs, once, on a host without IPv6.
const msgNoIPv6DNS = "no IPv6 DNS listener: the host has no IPv6; DNS is answered on IPv4 alone"

func dnsConfig(h slog.Handler, dns, dns6 string) Config {
	return Config{
		ControlPlane:         "127.0.0.1:1",
		InsecureControlPlane: true,
		TrustDomain:          spiffeid.RequireTrustDomainFromString("fed.test"),
		Cluster:              "east-1",
		Namespace:            "demo",
		OutboundAddr:         "127.0.0.1:0",
		DNSAddr:              dns,
		DNSAddrIPv6:          dns6,
		Logger:               slog.New(h),
		Registerer:           prometheus.NewPedanticRegistry(),
	}
}

// TestDNSAddrIPv6Refused: an IPv6 DNS address that is not one, or one
// without the IPv4 listener it comes beside, is refused by New, naming
// it.
func TestDNSAddrIPv6Refused(t *testing.T) {
	for _, tc := range []struct{ dns, dns6 string }{
		{"127.0.0.1:0", "127.0.0.1:0"},
		{"127.0.0.1:0", "[::ffff:127.0.0.1]:0"},
		{"127.0.0.1:0", "localhost:0"},
		{"", "[::1]:0"},
	} {
		s, err := New(dnsConfig(slog.DiscardHandler, tc.dns, tc.dns6))
		if err == nil {
			s.stopAll()
			s.proxy.Close()
			s.closeFixed()
			t.Errorf("New with DNSAddr %q, DNSAddrIPv6 %q: no error", tc.dns, tc.dns6)
			continue
		}
		if !strings.Contains(err.Error(), "DNSAddrIPv6 \""+tc.dns6+"\"") {
			t.Errorf("New with DNSAddr %q, DNSAddrIPv6 %q: %v, want the address named", tc.dns, tc.dns6, err)
		}
	}
}

// TestDNSWithoutIPv6: in a network namespace whose loopback has IPv6
// disabled (no ::1), a sidecar asked for an IPv6 DNS listener starts
// without it, says so once in its log, and answers on IPv4. It needs
// root; under CI=true it fails instead of skipping.
func TestDNSWithoutIPv6(t *testing.T) {
	need := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip("skipping: " + why)
	}
	if os.Geteuid() != 0 {
		need("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		need("ip not found (scripts/test-deps.sh installs it)")
	}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		need("no IPv6 on this host, so no namespace to take it away in")
	}
	b := make([]byte, 3)
	rand.Read(b)
	ns := "fmdns-" + hex.EncodeToString(b)
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	sh("ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	// /proc/sys/net is the namespace's own inside it.
	sh("ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6")
	sh("ip", "-n", ns, "link", "set", "lo", "up")

	logs := &logRecords{}
	type result struct {
		s    *Sidecar
		err  error
		bind error // binding ::1 in the namespace, which must fail
	}
	done := make(chan result, 1)
	go func() {
		// Sockets belong to the namespace of the thread that makes
		// them: this goroutine's thread enters ns and is never given
		// back (Go ends it with the goroutine).
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		var r result
		if c, err := net.ListenPacket("udp", "[::1]:0"); err == nil {
			c.Close()
		} else {
			r.bind = err
		}
		r.s, r.err = New(dnsConfig(logs, "127.0.0.1:0", "[::1]:0"))
		done <- r
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.bind == nil {
		t.Fatal("::1 could be bound in a namespace with IPv6 disabled on loopback: the test proves nothing")
	}
	s := r.s
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.dns.Serve(ctx, s.dnsUDP, s.dnsTCP)
	}()
	t.Cleanup(func() {
		cancel()
		<-served
		s.stopAll()
		s.proxy.Close()
		s.closeFixed()
	})
	if got := s.DNSAddrIPv6(); got != "" {
		t.Errorf("DNSAddrIPv6() = %q without IPv6, want none", got)
	}
	if n := logs.count(slog.LevelInfo, msgNoIPv6DNS); n != 1 {
		t.Errorf("logged %q %d times, want once", msgNoIPv6DNS, n)
	}
	if s.DNSAddr() == "" {
		t.Fatal("no IPv4 DNS listener")
	}
	// The IPv4 listener answers (from this namespace's side: the
	// query goes to the sidecar's socket, which lives in ns; so the
	// client's socket is made on a thread in ns too).
	ans := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ans <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ans <- err
			return
		}
		ans <- askUnknown(s.DNSAddr())
	}()
	if err := <-ans; err != nil {
		t.Errorf("the IPv4 DNS listener without IPv6: %v", err)
	}
}

// askUnknown sends a query for a clusterset name nobody imports to addr
// over UDP and wants NXDOMAIN back.
func askUnknown(addr string) error {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 9})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("nope.demo.svc.clusterset.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		return err
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(q); err != nil {
		return err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	var p dnsmessage.Parser
	h, err := p.Start(buf[:n])
	if err != nil {
		return err
	}
	if h.ID != 9 || h.RCode != dnsmessage.RCodeNameError {
		return &net.DNSError{Err: "reply " + h.GoString() + ", want NXDOMAIN for query 9", Name: "nope.demo.svc.clusterset.local"}
	}
	return nil
}
