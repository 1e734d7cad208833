package demo

import (
	"errors"
	"net"
	"strings"
	"testing"
)

// TestCheckFree probes real listeners: a port another listener holds is
// named with its process, one nobody holds is not.
func TestCheckFree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	taken := []Binding{
		{Network: "tcp", Addr: l.Addr().String(), What: "control plane east-1 admin"},
		{Network: "udp", Addr: u.LocalAddr().String(), What: "control plane east-1 gossip"},
	}
	free := Binding{Network: "tcp", Addr: "127.0.0.1:0", What: "anything"}

	if err := CheckFree([]Binding{free}); err != nil {
		t.Errorf("a free address: %v", err)
	}
	err = CheckFree(append([]Binding{free}, taken...))
	if !errors.Is(err, ErrAddressInUse) {
		t.Fatalf("CheckFree = %v, want ErrAddressInUse", err)
	}
	for _, b := range taken {
		if !strings.Contains(err.Error(), b.Addr+"/"+b.Network+" ("+b.What+")") {
			t.Errorf("%q does not name %s/%s (%s)", err, b.Addr, b.Network, b.What)
		}
	}
	if !strings.Contains(err.Error(), "--base-address") {
		t.Errorf("%q does not say how to move the demo", err)
	}
}

// TestBindings lists the demo's listeners on its own addresses, each
// once.
func TestBindings(t *testing.T) {
	clusters, err := Layout(3)
	if err != nil {
		t.Fatal(err)
	}
	bs := Bindings(clusters, 2, 1, "west-1", []string{"east-1", "west-1"})
	seen := map[string]bool{}
	for _, b := range bs {
		k := b.Network + " " + b.Addr
		if seen[k] {
			t.Errorf("%s listed twice", k)
		}
		seen[k] = true
	}
	for _, want := range []string{"tcp 127.0.0.11:15014", "udp 127.0.0.11:7946", "tcp 127.0.0.13:15443", "tcp 127.0.1.100:15001",
		"tcp 127.0.2.2:8080", "tcp 127.0.3.201:15006", "tcp 127.0.3.100:8080"} {
		if !seen[want] {
			t.Errorf("%s not listed", want)
		}
	}
	if seen["tcp 127.0.2.100:15001"] || seen["tcp 127.0.1.201:8080"] {
		t.Error("a client or canary listed in a cluster that has none")
	}
}
