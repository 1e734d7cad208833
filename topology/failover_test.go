package topology

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func loc(region, zone, cluster string) Node {
	return Node{Locality: Locality{Region: region, Zone: zone, Cluster: cluster}}
}

func labeled(n Node, kv ...string) Node {
	n.Labels = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Labels[kv[i]] = kv[i+1]
	}
	return n
}

func TestPrioritize(t *testing.T) {
	east1a := loc("us-east", "a", "east-1")
	tests := []struct {
		name      string
		policy    Policy
		client    Node
		endpoints []Node
		want      []Rank
	}{
		{
			name:   "default order, remote regions by name",
			client: east1a,
			endpoints: []Node{
				loc("us-west", "a", "west-1"),
				loc("us-east", "b", "east-1"),
				loc("us-east", "a", "east-2"),
				loc("us-east", "a", "east-1"),
				loc("eu-west", "a", "eu-1"),
				loc("us-east", "a", "east-1"),
			},
			want: []Rank{
				{4, "other region us-west"},
				{2, "same region us-east"},
				{1, "same zone a in another cluster"},
				{0, "same cluster and zone"},
				{3, "other region eu-west"},
				{0, "same cluster and zone"},
			},
		},
		{
			name:   "dense when levels are missing",
			client: east1a,
			endpoints: []Node{
				loc("us-west", "a", "west-1"),
				loc("us-east", "c", "east-3"),
			},
			want: []Rank{
				{1, "other region us-west"},
				{0, "same region us-east"},
			},
		},
		{
			name:   "rtt orders remote regions, measured before unmeasured",
			policy: Policy{RTT: map[string]time.Duration{"west-1": 12 * time.Millisecond, "eu-1": 80 * time.Millisecond, "west-2": 40 * time.Millisecond, "ap": 5 * time.Millisecond}},
			client: east1a,
			endpoints: []Node{
				loc("eu-west", "a", "eu-1"),
				loc("us-west", "a", "west-1"),
				loc("us-west", "b", "west-2"),
				loc("sa-east", "a", "sa-1"),
				loc("ap-south", "a", "ap-1"),
			},
			want: []Rank{
				{1, "other region eu-west, rtt 80ms"},
				{0, "other region us-west, rtt 12ms"},
				{0, "other region us-west, rtt 12ms"},
				{3, "other region sa-east"},
				{2, "other region ap-south"},
			},
		},
		{
			name:   "region rtt used when no cluster rtt",
			policy: Policy{RTT: map[string]time.Duration{"eu-west": 70 * time.Millisecond, "us-west": 90 * time.Millisecond}},
			client: east1a,
			endpoints: []Node{
				loc("us-west", "a", "west-1"),
				loc("eu-west", "a", "eu-1"),
			},
			want: []Rank{
				{1, "other region us-west, rtt 90ms"},
				{0, "other region eu-west, rtt 70ms"},
			},
		},
		{
			name: "explicit failover beats rtt",
			policy: Policy{
				Failover: []FailoverRule{{From: "us-east", To: "eu-west"}, {From: "us-west", To: "ap-south"}},
				RTT:      map[string]time.Duration{"west-1": 12 * time.Millisecond, "eu-1": 80 * time.Millisecond},
			},
			client: east1a,
			endpoints: []Node{
				loc("us-west", "a", "west-1"),
				loc("eu-west", "a", "eu-1"),
				loc("ap-south", "a", "ap-1"),
				loc("us-east", "a", "east-1"),
			},
			want: []Rank{
				{2, "other region us-west, rtt 12ms"},
				{1, "failover region eu-west from us-east, rtt 80ms"},
				{3, "other region ap-south"},
				{0, "same cluster and zone"},
			},
		},
		{
			name:   "several failover targets keep rule order",
			policy: Policy{Failover: []FailoverRule{{From: "us-east", To: "us-west"}, {From: "us-east", To: "eu-west"}}},
			client: east1a,
			endpoints: []Node{
				loc("eu-west", "a", "eu-1"),
				loc("ap-south", "a", "ap-1"),
				loc("us-west", "a", "west-1"),
			},
			want: []Rank{
				{1, "failover region eu-west from us-east"},
				{2, "other region ap-south"},
				{0, "failover region us-west from us-east"},
			},
		},
		{
			name:   "failover priority labels rank above locality",
			policy: Policy{FailoverPriority: []string{"network", "tier"}},
			client: labeled(east1a, "network", "n1", "tier", "gold"),
			endpoints: []Node{
				labeled(loc("us-east", "a", "east-1"), "network", "n2", "tier", "gold"),
				labeled(loc("us-west", "a", "west-1"), "network", "n1", "tier", "gold"),
				labeled(loc("us-east", "b", "east-1"), "network", "n1", "tier", "silver"),
				labeled(loc("us-east", "a", "east-1"), "network", "n1", "tier", "gold"),
				loc("us-east", "a", "east-1"),
			},
			want: []Rank{
				{3, "labels match none of network,tier; same cluster and zone"},
				{1, "labels match network,tier; other region us-west"},
				{2, "labels match network; same region us-east"},
				{0, "labels match network,tier; same cluster and zone"},
				{3, "labels match none of network,tier; same cluster and zone"},
			},
		},
		{
			name:   "empty zones: same cluster still first, no same-zone tier",
			client: loc("r", "", "c1"),
			endpoints: []Node{
				loc("r", "", "c2"),
				loc("r", "", "c1"),
				loc("", "", "c3"),
			},
			want: []Rank{
				{1, "same region r"},
				{0, "same cluster and zone"},
				{2, "other region (unset)"},
			},
		},
		{
			name:      "no endpoints",
			client:    east1a,
			endpoints: nil,
			want:      nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.policy.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got := tt.policy.Prioritize(tt.client, tt.endpoints)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Prioritize mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		want   string // empty: valid
	}{
		{"zero", Policy{}, ""},
		{"good", Policy{Failover: []FailoverRule{{"a", "b"}}, FailoverPriority: []string{"k"}, RTT: map[string]time.Duration{"c": 0}}, ""},
		{"missing to", Policy{Failover: []FailoverRule{{"a", ""}}}, "bad failover policy: failover rule 0: from and to must both be set"},
		{"self", Policy{Failover: []FailoverRule{{"a", "a"}}}, `bad failover policy: failover rule 0: from and to are both "a"`},
		{"duplicate rule", Policy{Failover: []FailoverRule{{"a", "b"}, {"a", "b"}}}, "bad failover policy: failover rule 1: a -> b given twice"},
		{"empty label", Policy{FailoverPriority: []string{""}}, "bad failover policy: failoverPriority 0: empty label key"},
		{"duplicate label", Policy{FailoverPriority: []string{"k", "k"}}, `bad failover policy: failoverPriority 1: label key "k" given twice`},
		{"negative rtt", Policy{RTT: map[string]time.Duration{"c": -time.Second}}, `bad failover policy: rtt of "c" is negative (-1s)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			got := ""
			if err != nil {
				got = err.Error()
				if !errors.Is(err, ErrBadPolicy) {
					t.Errorf("error %v does not wrap ErrBadPolicy", err)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzPrioritize checks ordering properties on generated topologies: equal
// input gives equal output, levels are dense from 0, the client's own
// cluster and zone is level 0 when present (without label priorities),
// and endpoints of one locality always share a level.
func FuzzPrioritize(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 1, 1, 2, 0, 1}, []byte{0, 0, 0}, uint8(0), false)
	f.Add([]byte{3, 2, 1, 1, 1, 1}, []byte{1, 1, 1}, uint8(3), true)
	f.Add([]byte{}, []byte{}, uint8(0), false)
	f.Add([]byte{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}, []byte{2, 1, 0}, uint8(255), true)
	f.Fuzz(func(t *testing.T, raw []byte, rawClient []byte, rttSeed uint8, failover bool) {
		name := func(kind string, b byte) string { return fmt.Sprintf("%s%d", kind, b%4) }
		node := func(b []byte) Node {
			for len(b) < 3 {
				b = append(b, 0)
			}
			return loc(name("r", b[0]), name("z", b[1]), name("c", b[2]))
		}
		client := node(rawClient)
		var endpoints []Node
		for i := 0; i+2 < len(raw) && len(endpoints) < 64; i += 3 {
			endpoints = append(endpoints, node(raw[i:i+3]))
		}
		var p Policy
		if rttSeed > 0 {
			p.RTT = map[string]time.Duration{}
			for i := range 4 {
				if rttSeed&(1<<i) != 0 {
					p.RTT[name("c", byte(i))] = time.Duration(int(rttSeed)*(i+1)%7) * time.Millisecond
				}
				if rttSeed&(16<<i) != 0 {
					p.RTT[name("r", byte(i))] = time.Duration(int(rttSeed)*(i+3)%5) * time.Millisecond
				}
			}
		}
		if failover {
			p.Failover = []FailoverRule{{From: client.Locality.Region, To: name("r", rttSeed+1)}}
			if p.Failover[0].To == p.Failover[0].From {
				p.Failover = nil
			}
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("generated policy invalid: %v", err)
		}
		ranks := p.Prioritize(client, endpoints)
		if diff := cmp.Diff(ranks, p.Prioritize(client, endpoints)); diff != "" {
			t.Fatalf("not deterministic (-first +second):\n%s", diff)
		}
		if len(ranks) != len(endpoints) {
			t.Fatalf("%d ranks for %d endpoints", len(ranks), len(endpoints))
		}
		maxLevel := -1
		used := map[int]bool{}
		byLocality := map[Locality]Rank{}
		for i, r := range ranks {
			used[r.Priority] = true
			maxLevel = max(maxLevel, r.Priority)
			if r.Reason == "" {
				t.Fatalf("endpoint %d has no reason", i)
			}
			l := endpoints[i].Locality
			if prev, ok := byLocality[l]; ok && prev != r {
				t.Fatalf("locality %v ranked both %+v and %+v", l, prev, r)
			}
			byLocality[l] = r
			if l == client.Locality && r.Priority != 0 {
				t.Fatalf("client's own locality %v got priority %d", l, r.Priority)
			}
			if l.Region == client.Locality.Region && l.Zone == client.Locality.Zone && r.Priority > 1 {
				t.Fatalf("same-zone endpoint %v got priority %d", l, r.Priority)
			}
		}
		for lvl := 0; lvl <= maxLevel; lvl++ {
			if !used[lvl] {
				t.Fatalf("levels not dense: %d unused, max %d", lvl, maxLevel)
			}
		}
		// A shuffled input ranks each endpoint the same.
		perm := rand.New(rand.NewPCG(uint64(rttSeed), uint64(len(raw)))).Perm(len(endpoints))
		shuffled := make([]Node, len(endpoints))
		for i, j := range perm {
			shuffled[i] = endpoints[j]
		}
		for i, r := range p.Prioritize(client, shuffled) {
			if r != ranks[perm[i]] {
				t.Fatalf("endpoint %v ranked %+v after shuffling, %+v before", shuffled[i].Locality, r, ranks[perm[i]])
			}
		}
	})
}

func benchEndpoints(n int) []Node {
	eps := make([]Node, n)
	for i := range eps {
		eps[i] = loc(fmt.Sprintf("r%d", i%10), fmt.Sprintf("z%d", i%3), fmt.Sprintf("c%d", i%40))
	}
	return eps
}

func BenchmarkPrioritize1000(b *testing.B) {
	eps := benchEndpoints(1000)
	rtt := map[string]time.Duration{}
	for i := range 40 {
		rtt[fmt.Sprintf("c%d", i)] = time.Duration(i) * time.Millisecond
	}
	p := Policy{RTT: rtt, Failover: []FailoverRule{{From: "r0", To: "r7"}}}
	client := loc("r0", "z0", "c0")
	b.ReportAllocs()
	for b.Loop() {
		p.Prioritize(client, eps)
	}
}

func BenchmarkPrioritize1000Labels(b *testing.B) {
	eps := benchEndpoints(1000)
	for i := range eps {
		eps[i] = labeled(eps[i], "network", fmt.Sprintf("n%d", i%2), "tier", fmt.Sprintf("t%d", i%3))
	}
	p := Policy{FailoverPriority: []string{"network", "tier"}}
	client := labeled(loc("r0", "z0", "c0"), "network", "n0", "tier", "t0")
	b.ReportAllocs()
	for b.Loop() {
		p.Prioritize(client, eps)
	}
}
