package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A netLab is a test network of the project's own hosts: one network
// namespace per cluster, each with an eth0 on 198.18.B.(10+N)/24 plugged
// into a bridge that lives in a hub namespace of its own, and a veth from
// this namespace into the bridge (198.18.B.1/24), so the test reaches
// every cluster's admin and proxy addresses. Putting the bridge in its own
// namespace keeps the host's firewall (br_netfilter, FORWARD policies) out
// of the lab's traffic. B is the lab's own (reserveLabBlock), so that two
// labs on one machine never share a subnet. Everything is removed in
// cleanup, even when the test fails.
type netLab struct {
	t     *testing.T
	id    string // short random tag in every name
	block int    // B, the third octet of the lab's subnet
}

// newNetLab builds the lab for n clusters, or skips the test with the
// reason when this process cannot (not root, no ip or nft). Under CI=true
// as root it never skips: it fails instead.
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("network namespace tests need root; CI runs as root")
		}
		t.Skip("skipping: network namespaces, veth and nftables need root (run as root, as CI does)")
	}
	for _, tool := range []string{"ip", "nft", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if ci {
				t.Fatalf("%s not found: `make test-deps` installs iproute2 and nftables", tool)
			}
			t.Skipf("skipping: %s not found (`make test-deps` installs iproute2 and nftables)", tool)
		}
	}
	b := make([]byte, 3)
	rand.Read(b)
	lab := &netLab{t: t, id: hex.EncodeToString(b), block: reserveLabBlock(t)}
	t.Cleanup(lab.destroy)
	lab.sh("ip", "netns", "add", lab.hub())
	lab.sh("ip", "-n", lab.hub(), "link", "set", "lo", "up")
	lab.sh("ip", "-n", lab.hub(), "link", "add", "br0", "type", "bridge")
	lab.sh("ip", "-n", lab.hub(), "link", "set", "br0", "up")
	// This namespace's way in.
	lab.sh("ip", "link", "add", lab.hostLink(), "type", "veth", "peer", "name", "host", "netns", lab.hub())
	lab.sh("ip", "addr", "add", lab.hostIP()+"/24", "dev", lab.hostLink())
	lab.sh("ip", "link", "set", lab.hostLink(), "up")
	lab.sh("ip", "-n", lab.hub(), "link", "set", "host", "master", "br0", "up")
	for i := 1; i <= n; i++ {
		ns := lab.netns(i)
		port := fmt.Sprintf("c%d", i)
		lab.sh("ip", "netns", "add", ns)
		lab.sh("ip", "-n", ns, "link", "set", "lo", "up")
		lab.sh("ip", "-n", lab.hub(), "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		lab.sh("ip", "-n", lab.hub(), "link", "set", port, "master", "br0", "up")
		lab.sh("ip", "-n", ns, "addr", "add", lab.clusterIP(i)+"/24", "dev", "eth0")
		lab.sh("ip", "-n", ns, "link", "set", "eth0", "up")
	}
	return lab
}

func (l *netLab) hub() string            { return "fm-" + l.id + "-hub" }
func (l *netLab) hostLink() string       { return "fm" + l.id }
func (l *netLab) netns(i int) string     { return fmt.Sprintf("fm-%s-c%d", l.id, i) }
func (l *netLab) clusterIP(i int) string { return fmt.Sprintf("198.18.%d.%d", l.block, 10+i) }

// hostIP is this namespace's address in the lab; subnet is the lab's.
func (l *netLab) hostIP() string { return fmt.Sprintf("198.18.%d.1", l.block) }
func (l *netLab) subnet() string { return fmt.Sprintf("198.18.%d.0/24", l.block) }

// sh runs a command and fails the test when it fails.
func (l *netLab) sh(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nft loads an nftables script into cluster i's namespace.
func (l *netLab) nft(i int, script string) {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.netns(i), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft in %s: %v: %s\n%s", l.netns(i), err, out, script)
	}
}

// isolate drops every packet between cluster i and the other clusters, in
// both directions; this namespace (the test) still reaches it.
func (l *netLab) isolate(i int) {
	l.t.Helper()
	l.nft(i, fmt.Sprintf(`table inet fmpartition {
	chain in {
		type filter hook input priority 0; policy accept;
		iifname "lo" accept
		ip saddr %[1]s accept
		ip saddr %[2]s drop
	}
	chain out {
		type filter hook output priority 0; policy accept;
		oifname "lo" accept
		ip daddr %[1]s accept
		ip daddr %[2]s drop
	}
}
`, l.hostIP(), l.subnet()))
}

// heal removes cluster i's partition rules.
func (l *netLab) heal(i int) {
	l.t.Helper()
	l.sh("ip", "netns", "exec", l.netns(i), "nft", "delete", "table", "inet", "fmpartition")
}

// delay adds netem delay to cluster i's link. It reports false, and
// changes nothing, when the kernel has no netem (some VM kernels ship
// without sch_netem).
func (l *netLab) delay(i int, d string) bool {
	l.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.netns(i), "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", d).CombinedOutput()
	if err != nil && strings.Contains(string(out), "qdisc kind is unknown") {
		return false
	}
	if err != nil {
		l.t.Fatalf("tc netem in %s: %v: %s", l.netns(i), err, out)
	}
	return true
}

// destroy removes the namespaces (their links, rules and qdiscs go with
// them) and this namespace's veth. Errors are logged, not fatal: cleanup
// goes on.
func (l *netLab) destroy() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "fm-"+l.id+"-") {
			continue
		}
		if b, err := exec.Command("ip", "netns", "del", f[0]).CombinedOutput(); err != nil {
			l.t.Logf("cleanup: ip netns del %s: %v: %s", f[0], err, b)
		}
	}
	if exec.Command("ip", "link", "show", l.hostLink()).Run() == nil {
		if b, err := exec.Command("ip", "link", "del", l.hostLink()).CombinedOutput(); err != nil {
			l.t.Logf("cleanup: ip link del %s: %v: %s", l.hostLink(), err, b)
		}
	}
}
