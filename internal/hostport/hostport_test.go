package hostport

import (
	"net"
	"testing"
)

var seeds = []string{
	"127.0.0.1:15443", "[::1]:15001", "[fe80::1%eth0]:80", "gw.example:15443",
	"127.0.0.1", "::1", "[::1]", "[::1]x", "[::1]:x:y", "a:b:c", "[a]b]:1", "a[b:1", ":", "", "[", "]:1",
}

func TestSplitMatchesNet(t *testing.T) {
	for _, s := range seeds {
		check(t, s)
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(check)
}

func check(t *testing.T, s string) {
	h, p, err := Split(s)
	nh, np, nerr := net.SplitHostPort(s)
	if (err == nil) != (nerr == nil) || h != nh || p != np {
		t.Fatalf("Split(%q) = %q, %q, %v; net says %q, %q, %v", s, h, p, err, nh, np, nerr)
	}
	if err != nil && err.Error() != nerr.Error() {
		t.Fatalf("Split(%q) error %q; net says %q", s, err, nerr)
	}
	if err == nil {
		if got, want := Join(h, p), net.JoinHostPort(h, p); got != want {
			t.Fatalf("Join(%q, %q) = %q; net says %q", h, p, got, want)
		}
	}
}

func TestSplitPort(t *testing.T) {
	if h, p, err := SplitPort("[::1]:15001"); err != nil || h != "::1" || p != 15001 {
		t.Errorf("SplitPort([::1]:15001) = %q, %d, %v", h, p, err)
	}
	for _, bad := range []string{"127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000", "127.0.0.1:-1"} {
		if _, _, err := SplitPort(bad); err == nil {
			t.Errorf("SplitPort(%q) accepted", bad)
		}
	}
}
