package origdst

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGetRedirected reads real original destinations: in a network
// namespace of its own, nat OUTPUT rules (iptables for IPv4, ip6tables
// for IPv6, on loopback only) redirect connections to a port nobody
// listens on to a listener, which must see the port the client dialled.
// A connection to the listener itself has none. It needs root; under
// CI=true it fails instead of skipping.
func TestGetRedirected(t *testing.T) {
	need := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip("skipping: " + why)
	}
	if os.Geteuid() != 0 {
		need("network namespaces and nat rules need root")
	}
	for _, tool := range []string{"ip", "iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool); err != nil {
			need(tool + " not found (scripts/test-deps.sh installs it)")
		}
	}
	b := make([]byte, 3)
	rand.Read(b)
	ns := "fmod-" + hex.EncodeToString(b)
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	sh("ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	sh("ip", "-n", ns, "link", "set", "lo", "up")
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		need("no IPv6 on this host")
	}

	for _, tc := range []struct {
		name, cmd, loopback string
	}{
		{"IPv4", "iptables", "127.0.0.1"},
		{"IPv6", "ip6tables", "::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Sockets belong to the namespace of the thread that makes
			// them: this goroutine's thread enters ns and is never given
			// back (Go ends it with the goroutine).
			done := make(chan error, 1)
			go func() {
				runtime.LockOSThread()
				done <- inNetns(ns, func() error { return redirectOnce(tc.cmd, ns, tc.loopback) })
			}()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// inNetns runs f on this (locked) thread in namespace ns.
func inNetns(ns string, f func() error) error {
	fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return err
	}
	return f()
}

// redirectOnce listens on loopback, redirects another port to it with a
// nat OUTPUT rule of cmd, dials that port and checks Get on both
// connections.
func redirectOnce(cmd, ns, loopback string) error {
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return err
	}
	defer l.Close()
	_, lport, _ := net.SplitHostPort(l.Addr().String())
	// A port nothing listens on: another listener's, closed.
	gone, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return err
	}
	_, dport, _ := net.SplitHostPort(gone.Addr().String())
	gone.Close()
	if out, err := exec.Command("ip", "netns", "exec", ns, cmd, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", loopback,
		"--dport", dport, "-j", "REDIRECT", "--to-ports", lport).CombinedOutput(); err != nil {
		return errors.New(cmd + ": " + err.Error() + ": " + string(out))
	}
	check := func(dial string, wantRedirected bool) error {
		c, err := net.Dial("tcp", net.JoinHostPort(loopback, dial))
		if err != nil {
			return err
		}
		defer c.Close()
		s, err := l.Accept()
		if err != nil {
			return err
		}
		defer s.Close()
		got, err := Get(s)
		want := net.JoinHostPort(loopback, dial)
		switch {
		case wantRedirected && (err != nil || got.String() != want):
			return errors.New("redirected from " + want + ": got " + got.String() + ", " + errString(err))
		case !wantRedirected && err == nil && got.String() != want:
			// The kernel may keep a record of an unredirected connection
			// too; then it is the listener's own address.
			return errors.New("not redirected: got " + got.String() + ", want none or " + want)
		}
		return nil
	}
	if err := check(dport, true); err != nil {
		return err
	}
	if p, _ := strconv.Atoi(lport); p == 0 {
		return errors.New("no listener port")
	}
	return check(lport, false)
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
