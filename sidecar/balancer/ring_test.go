package balancer

import (
	"strconv"
	"testing"
)

func ringEndpoints(addrs ...string) []Endpoint {
	var out []Endpoint
	for _, a := range addrs {
		out = append(out, Endpoint{Address: a, Cluster: "c", Weight: 1, Healthy: true})
	}
	return out
}

// TestRingHashConsistent: the same hash gets the same host; a host going
// unhealthy moves only the keys it owned; an excluded host is skipped
// along the ring.
func TestRingHashConsistent(t *testing.T) {
	b, err := New(Config{Name: "t", Policy: RingHash, MinRingSize: 1024, MaxRingSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(ringEndpoints("10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1")); err != nil {
		t.Fatal(err)
	}
	owner := map[uint64]string{}
	perHost := map[string]int{}
	for k := uint64(0); k < 3000; k++ {
		key := k * 0x9e3779b97f4a7c15
		h, err := b.PickHash(key)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := b.PickHash(key)
		if again != h {
			t.Fatalf("key %d went to %s, then %s", k, h.Address(), again.Address())
		}
		owner[key] = h.Address()
		perHost[h.Address()]++
		if other, _ := b.PickHash(key, h); other == h {
			t.Fatalf("key %d: excluded host picked again", k)
		}
	}
	for a, n := range perHost {
		if n < 600 {
			t.Errorf("host %s owns %d of 3000 keys: the ring is lopsided (%v)", a, n, perHost)
		}
	}
	down := ringEndpoints("10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1")
	down[2].Healthy = false
	if err := b.Update(down); err != nil {
		t.Fatal(err)
	}
	for key, was := range owner {
		h, _ := b.PickHash(key)
		if h.Address() == "10.0.0.3:1" {
			t.Fatalf("key %d went to the unhealthy host", key)
		}
		if was != "10.0.0.3:1" && h.Address() != was {
			t.Fatalf("key %d moved from %s to %s though its host stayed", key, was, h.Address())
		}
	}
}

// TestRoundRobin: sequential picks take the hosts in turn.
func TestRoundRobin(t *testing.T) {
	b, err := New(Config{Name: "t", Policy: RoundRobin})
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for i := range 4 {
		addrs = append(addrs, "10.0.0."+strconv.Itoa(i+1)+":1")
	}
	if err := b.Update(ringEndpoints(addrs...)); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for range 40 {
		h, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		count[h.Address()]++
	}
	for _, a := range addrs {
		if count[a] != 10 {
			t.Fatalf("counts %v, want 10 each", count)
		}
	}
}
