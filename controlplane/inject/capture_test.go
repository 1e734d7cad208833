package inject

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// goldenCapture is the capture of a pod that opts out of everything it
// can: an inbound port, outbound ports, and IPv4 and IPv6 prefixes.
var goldenCapture = map[string]string{
	AnnotationExcludeInboundPorts:  "22",
	AnnotationExcludeOutboundPorts: "5432, 6379",
	AnnotationExcludeOutboundCIDRs: "10.96.0.0/12, fd00:10:96::/112, 169.254.169.254",
}

// TestCaptureGolden compares the rules rendered for IPv4 (iptables), IPv6
// (ip6tables), nftables, and the init script that holds them all, with
// testdata/capture/*: the diff in review shows what a change does to
// every pod's network. -update rewrites them.
func TestCaptureGolden(t *testing.T) {
	in := testInjector(t)
	c, plaintext, err := in.capture(&metav1.ObjectMeta{Namespace: "demo", Annotations: goldenCapture})
	if err != nil {
		t.Fatal(err)
	}
	if plaintext != "all" {
		t.Errorf("plaintext %q, want all (PERMISSIVE is the default)", plaintext)
	}
	lines := func(rs [][]string, cmd string) string {
		var b strings.Builder
		for _, r := range rs {
			b.WriteString(cmd + " " + strings.Join(r, " ") + "\n")
		}
		return b.String()
	}
	for name, got := range map[string]string{
		"ipv4.rules": lines(c.Rules(IPv4), "iptables"),
		"ipv6.rules": lines(c.Rules(IPv6), "ip6tables"),
		"nft.rules":  c.NFT(),
		"init.sh":    c.Script(),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", "capture", name)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if d := cmp.Diff(string(want), got); d != "" {
				t.Errorf("%s (-want +got):\n%s", path, d)
			}
		})
	}
}

// TestCaptureFamilies checks what the golden files show, as properties:
// each family's rules name only its own addresses, and both exempt the
// sidecar's uid and the excluded ports.
func TestCaptureFamilies(t *testing.T) {
	in := testInjector(t)
	c, _, err := in.capture(&metav1.ObjectMeta{Annotations: goldenCapture})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f          Family
		want, lack []string
	}{
		{IPv4, []string{"127.0.0.1/32", "10.96.0.0/12", "169.254.169.254/32"}, []string{"::1/128", "fd00:10:96::/112"}},
		{IPv6, []string{"::1/128", "fd00:10:96::/112"}, []string{"127.0.0.1/32", "10.96.0.0/12"}},
	} {
		var dests, ports []string
		uid := false
		for _, r := range c.Rules(tc.f) {
			s := strings.Join(r, " ")
			if i := indexOf(r, "-d"); i >= 0 {
				dests = append(dests, r[i+1])
			}
			if strings.Contains(s, chainOutput+" -p tcp --dport") && strings.HasSuffix(s, "RETURN") {
				ports = append(ports, r[indexOf(r, "--dport")+1])
			}
			uid = uid || strings.Contains(s, "--uid-owner 1337 -j RETURN")
		}
		for _, w := range tc.want {
			if indexOf(dests, w) < 0 {
				t.Errorf("IPv%d: no RETURN for %s in %v", tc.f, w, dests)
			}
		}
		for _, l := range tc.lack {
			if indexOf(dests, l) >= 0 {
				t.Errorf("IPv%d: a rule for %s, of the other family", tc.f, l)
			}
		}
		if d := cmp.Diff([]string{"5432", "6379"}, ports); d != "" || !uid {
			t.Errorf("IPv%d: outbound ports let through (-want +got):\n%s; uid exempt %t", tc.f, d, uid)
		}
		// DNS, over UDP and TCP, goes to the sidecar in both families,
		// after the sidecar's own queries are let through and before
		// any opt-out can let it pass: the nameserver is often in an
		// excluded range.
		udpIn, gid, firstCIDR := -1, -1, -1
		redirects := map[string]int{}
		for i, r := range c.Rules(tc.f) {
			s := strings.Join(r, " ")
			if s == "-t nat -A OUTPUT -p udp --dport 53 -j "+chainOutput {
				udpIn = i
			}
			if strings.Contains(s, "--gid-owner 1337 -j RETURN") {
				gid = i
			}
			for _, proto := range []string{"udp", "tcp"} {
				if strings.Contains(s, chainOutput+" -p "+proto+" --dport 53 -j REDIRECT --to-ports 15053") {
					redirects[proto] = i
				}
			}
			if strings.Contains(s, chainOutput+" -d 10.96.0.0/12") || strings.Contains(s, chainOutput+" -d fd00:10:96::/112") {
				if firstCIDR < 0 {
					firstCIDR = i
				}
			}
		}
		if udpIn < 0 {
			t.Errorf("IPv%d: UDP port 53 does not enter %s", tc.f, chainOutput)
		}
		for _, proto := range []string{"udp", "tcp"} {
			i, ok := redirects[proto]
			if !ok || i < gid || i > firstCIDR {
				t.Errorf("IPv%d: %s DNS redirect at rule %d (found %t), uid/gid exemptions end at %d, first excluded prefix at %d; want it between them", tc.f, proto, i, ok, gid, firstCIDR)
			}
		}
	}
}

// TestCaptureNFTDNS: the nftables rules capture DNS of both families
// (an inet table's redirect serves each family's loopback), after the
// sidecar's own traffic is let through and before any opt-out.
func TestCaptureNFTDNS(t *testing.T) {
	in := testInjector(t)
	c, _, err := in.capture(&metav1.ObjectMeta{Annotations: goldenCapture})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(c.NFT(), "\n")
	at := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				return i
			}
		}
		return -1
	}
	gid, udp, tcp, other := at("meta skgid 1337 return"), at("udp dport 53 redirect to :15053"), at("tcp dport 53 redirect to :15053"), at("meta l4proto != tcp return")
	if gid < 0 || udp < gid || tcp < gid || other < udp || other < tcp {
		t.Errorf("nft rules: gid exemption at line %d, DNS redirects at %d (udp) and %d (tcp), non-TCP return at %d; want the redirects between:\n%s", gid, udp, tcp, other, c.NFT())
	}
	if strings.Contains(c.NFT(), "nfproto ipv4") {
		t.Errorf("nft rules limit something to IPv4:\n%s", c.NFT())
	}
	c.DNSPort = 0
	if strings.Contains(c.NFT(), "dport 53") {
		t.Errorf("without a DNS port, nft rules still capture DNS:\n%s", c.NFT())
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestInboundModes(t *testing.T) {
	strict, err := New(Config{SidecarImage: "a", InitImage: "b", TrustDomain: "td", Cluster: "c", StrictNamespaces: []string{"bank"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ns string
		ann      map[string]string
		want     string
		wantErr  bool
	}{
		{name: "default is PERMISSIVE", ns: "demo", want: "all"},
		{name: "STRICT workload", ns: "demo", ann: map[string]string{AnnotationInboundMode: "STRICT"}, want: "none"},
		{name: "STRICT workload with plaintext ports", ns: "demo",
			ann: map[string]string{AnnotationInboundMode: "STRICT", AnnotationInboundPlaintextPorts: "9090,8080"}, want: "8080,9090"},
		{name: "STRICT namespace", ns: "bank", want: "none"},
		{name: "STRICT namespace, STRICT workload", ns: "bank", ann: map[string]string{AnnotationInboundMode: "STRICT"}, want: "none"},
		{name: "PERMISSIVE workload in a STRICT namespace", ns: "bank", ann: map[string]string{AnnotationInboundMode: "PERMISSIVE"}, wantErr: true},
		{name: "plaintext ports in a STRICT namespace", ns: "bank", ann: map[string]string{AnnotationInboundPlaintextPorts: "8080"}, wantErr: true},
		{name: "unknown mode", ns: "demo", ann: map[string]string{AnnotationInboundMode: "strict-ish"}, wantErr: true},
		{name: "plaintext on the admin port", ns: "demo", ann: map[string]string{AnnotationInboundPlaintextPorts: "15000"}, wantErr: true},
		{name: "bad CIDR", ns: "demo", ann: map[string]string{AnnotationExcludeOutboundCIDRs: "10.0.0.0/33"}, wantErr: true},
		{name: "bad outbound port", ns: "demo", ann: map[string]string{AnnotationExcludeOutboundPorts: "http"}, wantErr: true},
		{name: "bad capture-dns", ns: "demo", ann: map[string]string{AnnotationCaptureDNS: "no"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := appPod(tc.ann)
			p.Namespace = tc.ns
			before := p.DeepCopy()
			ok, err := strict.Inject(&p.ObjectMeta, &p.Spec)
			if tc.wantErr {
				if !errors.Is(err, ErrBadAnnotation) || ok {
					t.Fatalf("Inject = %t, %v; want ErrBadAnnotation", ok, err)
				}
				if d := cmp.Diff(before, p); d != "" {
					t.Errorf("a refused pod changed (-before +after):\n%s", d)
				}
				return
			}
			if err != nil || !ok {
				t.Fatalf("Inject = %t, %v", ok, err)
			}
			if got := argOf(p.Spec.InitContainers[1].Args, "--inbound-plaintext"); got != tc.want {
				t.Errorf("--inbound-plaintext=%q, want %q", got, tc.want)
			}
		})
	}
}

func argOf(args []string, flag string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func TestParseCIDRs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []netip.Prefix
		wantErr bool
	}{
		{in: ""},
		{in: "10.1.2.3/8, 10.0.0.0/8,::1,10.0.0.1", want: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("::1/128")}},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "::ffff:10.0.0.0/104", wantErr: true},
		{in: "fe80::1%eth0", wantErr: true},
		{in: "example.com", wantErr: true},
	} {
		got, err := ParseCIDRs(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseCIDRs(%q) err = %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
			t.Errorf("ParseCIDRs(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

// FuzzParseCIDRs: annotations are outside input.
func FuzzParseCIDRs(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "::1, 1.2.3.4", "fe80::1%eth0", ",,", "::ffff:1.2.3.4/128"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParseCIDRs(s)
		if err != nil {
			return
		}
		for _, p := range ps {
			if p != p.Masked() || p.Addr().Is4In6() {
				t.Errorf("ParseCIDRs(%q) gave %s", s, p)
			}
		}
	})
}

// TestCaptureDNS: by default the pod's DNS goes to the sidecar, which
// answers clusterset names with ClusterSetIPs and forwards the rest to
// the pod's nameservers; fedmesh.io/capture-dns=false leaves DNS alone.
func TestCaptureDNS(t *testing.T) {
	in := testInjector(t)
	for _, tc := range []struct {
		ann      map[string]string
		wantDNS  string
		wantDNS6 string
		wantRule bool
	}{
		{wantDNS: "127.0.0.1:15053", wantDNS6: "[::1]:15053", wantRule: true},
		{ann: map[string]string{AnnotationCaptureDNS: "false"}, wantDNS: "none"},
	} {
		p := appPod(tc.ann)
		if ok, err := in.Inject(&p.ObjectMeta, &p.Spec); !ok || err != nil {
			t.Fatalf("Inject = %t, %v", ok, err)
		}
		args := p.Spec.InitContainers[1].Args
		if got := argOf(args, "--dns"); got != tc.wantDNS {
			t.Errorf("%v: --dns=%q, want %q", tc.ann, got, tc.wantDNS)
		}
		if got := argOf(args, "--dns-ipv6"); got != tc.wantDNS6 {
			t.Errorf("%v: --dns-ipv6=%q, want %q", tc.ann, got, tc.wantDNS6)
		}
		if got := argOf(args, "--dns-upstream") == "file:/etc/resolv.conf"; got != tc.wantRule {
			t.Errorf("%v: --dns-upstream=%q", tc.ann, argOf(args, "--dns-upstream"))
		}
		script := p.Spec.InitContainers[0].Command[2]
		v6 := script[strings.Index(script, "/proc/net/if_inet6"):]
		if got := strings.Contains(script, "--dport 53 -j REDIRECT --to-ports 15053") && strings.Contains(v6, "\"$v6\" -t nat -A FEDMESH_OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 15053") &&
			strings.Contains(script, "udp dport 53 redirect to :15053"); got != tc.wantRule {
			t.Errorf("%v: DNS rules in the script: %t, want %t", tc.ann, got, tc.wantRule)
		}
	}
}
