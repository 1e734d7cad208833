package membership

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/federation/membership/faulttransport"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/topology"
)

func TestMain(m *testing.M) {
	// serf's reap, reconnect and queue-check goroutines notice Shutdown on
	// their next tick; VerifyTestMain retries until they are gone.
	goleak.VerifyTestMain(m,
		// memberlist's probe of a peer waits for its ack or its timer,
		// not for Shutdown; it ends on its own within the probe timeout.
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	)
}

var (
	testKey1 = []byte("0123456789abcdef0123456789abcdef")
	testKey2 = []byte("fedcba9876543210fedcba9876543210")
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("FEDMESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// testConfig is a member on 127.0.0.1 with a free port and local timings.
func testConfig(t testing.TB, name string, keys ...[]byte) Config {
	return Config{
		NodeName:          name,
		Locality:          topology.Locality{Region: "us-east", Zone: "a"},
		GatewayAddr:       "127.0.0.1:15443",
		CatalogAddr:       "https://127.0.0.1:2379",
		BindAddr:          "127.0.0.1",
		Keys:              keys,
		Profile:           ProfileLocal,
		ReconnectInterval: 500 * time.Millisecond,
		Logger:            testLogger(t),
	}
}

func start(t testing.TB, cfg Config) *Membership {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(); err != nil {
			t.Errorf("Shutdown(%s): %v", cfg.NodeName, err)
		}
	})
	return m
}

// aliveNames returns the names of the valid alive members m sees.
func aliveNames(m *Membership) []string {
	var names []string
	for _, mem := range m.Members() {
		if mem.Status == StatusAlive {
			names = append(names, mem.Name)
		}
	}
	return names
}

func seeExactly(want []string, ms ...*Membership) func() error {
	return func() error {
		for _, m := range ms {
			if diff := cmp.Diff(want, aliveNames(m)); diff != "" {
				return fmt.Errorf("%s sees (-want +got):\n%s", m.Local().Name, diff)
			}
		}
		return nil
	}
}

func TestFederate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		clusters int
	}{
		{name: "3 clusters", clusters: 3},
		{name: "10 clusters", clusters: 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ms []*Membership
			var names []string
			for i := range tc.clusters {
				name := fmt.Sprintf("c%02d", i)
				names = append(names, name)
				ms = append(ms, start(t, testConfig(t, name, testKey1)))
			}
			seed := []string{ms[0].Local().Addr}
			for _, m := range ms[1:] {
				if n, err := m.Join(seed); err != nil || n != 1 {
					t.Fatalf("%s Join = %d, %v; want 1, nil", m.Local().Name, n, err)
				}
			}
			poll.Until(t, 30*time.Second, "full mesh", seeExactly(names, ms...))

			// Every member carries what peers need, as the seed sees it.
			got := ms[0].Members()[tc.clusters-1]
			want := Member{
				MemberInfo: MemberInfo{
					Cluster:         names[tc.clusters-1],
					Locality:        topology.Locality{Region: "us-east", Zone: "a", Cluster: names[tc.clusters-1]},
					GatewayAddr:     "127.0.0.1:15443",
					CatalogAddr:     "https://127.0.0.1:2379",
					ProtocolVersion: ProtocolVersion,
					InstanceID:      ms[tc.clusters-1].Local().InstanceID,
				},
				Name:   names[tc.clusters-1],
				Addr:   ms[tc.clusters-1].Local().Addr,
				Status: StatusAlive,
			}
			if diff := cmp.Diff(want, got, cmpIgnoreRTT); diff != "" {
				t.Errorf("member as seen by the seed (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpIgnoreRTT = cmp.FilterPath(func(p cmp.Path) bool {
	s := p.String()
	return s == "RTT" || s == "HasRTT"
}, cmp.Ignore())

func TestRTT(t *testing.T) {
	a := start(t, testConfig(t, "a", testKey1))
	b := start(t, testConfig(t, "b", testKey1))
	c := start(t, testConfig(t, "c", testKey1))
	for _, m := range []*Membership{b, c} {
		if _, err := m.Join([]string{a.Local().Addr}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 30*time.Second, "RTT to every peer", func() error {
		for _, m := range []*Membership{a, b, c} {
			peers := m.Peers()
			if len(peers) != 2 {
				return fmt.Errorf("%s sees %d peers, want 2", m.Local().Name, len(peers))
			}
			for _, p := range peers {
				if !p.HasRTT {
					return fmt.Errorf("%s has no RTT to %s yet", m.Local().Name, p.Name)
				}
				if p.RTT < 0 {
					return fmt.Errorf("%s: RTT to %s is negative: %s", m.Local().Name, p.Name, p.RTT)
				}
			}
		}
		return nil
	})
}

func TestWrongGossipKeyCannotJoin(t *testing.T) {
	a := start(t, testConfig(t, "a", testKey1))
	b := start(t, testConfig(t, "b", testKey1))
	if _, err := b.Join([]string{a.Local().Addr}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "a and b federate", seeExactly([]string{"a", "b"}, a, b))

	x := start(t, testConfig(t, "x", testKey2))
	n, err := x.Join([]string{a.Local().Addr})
	if err == nil || n != 0 {
		t.Fatalf("Join with the wrong key = %d, %v; want 0 and an error", n, err)
	}
	if diff := cmp.Diff([]string{"x"}, aliveNames(x)); diff != "" {
		t.Errorf("outsider sees (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b"}, aliveNames(a)); diff != "" {
		t.Errorf("federation sees (-want +got):\n%s", diff)
	}
}

// rawSerf starts a bare serf node, not through New: an outsider that does
// not follow fedmesh's rules.
func rawSerf(t *testing.T, name string, tags map[string]string, keyring *memberlist.Keyring) *serf.Serf {
	t.Helper()
	sc := serf.DefaultConfig()
	sc.NodeName = name
	sc.Tags = tags
	sc.LogOutput = io.Discard
	sc.MemberlistConfig = memberlist.DefaultLocalConfig()
	sc.MemberlistConfig.BindAddr = "127.0.0.1"
	sc.MemberlistConfig.BindPort = 0
	sc.MemberlistConfig.LogOutput = io.Discard
	sc.MemberlistConfig.Keyring = keyring
	s, err := serf.Create(sc)
	if err != nil {
		t.Fatalf("serf.Create(%s): %v", name, err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	return s
}

func TestPlaintextNodeCannotJoin(t *testing.T) {
	a := start(t, testConfig(t, "a", testKey1))
	info := MemberInfo{Cluster: "p", Locality: topology.Locality{Region: "r"}, GatewayAddr: "127.0.0.1:1",
		CatalogAddr: "https://127.0.0.1:2379", ProtocolVersion: 1, InstanceID: "abc"}
	p := rawSerf(t, "p", info.Encode(), nil)
	n, err := p.Join([]string{a.Local().Addr}, true)
	if err == nil || n != 0 {
		t.Fatalf("plaintext Join = %d, %v; want 0 and an error", n, err)
	}
	if diff := cmp.Diff([]string{"a"}, aliveNames(a)); diff != "" {
		t.Errorf("federation sees (-want +got):\n%s", diff)
	}
}

func TestDuplicateClusterNameRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfgA := testConfig(t, "a", testKey1)
	cfgA.Registerer = reg
	a := start(t, cfgA)
	b := start(t, testConfig(t, "b", testKey1))
	if _, err := b.Join([]string{a.Local().Addr}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "a and b federate", seeExactly([]string{"a", "b"}, a, b))
	// a's merge check reads its own record of b, which its event loop
	// fills after serf has b alive: wait for that too, or a loaded
	// machine lets the impostor in before a knows b.
	poll.Until(t, 30*time.Second, "a records b alive", func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if p, ok := a.peers["b"]; !ok || p.status != serf.StatusAlive {
			return errors.New("a has no alive record of b yet")
		}
		return nil
	})
	bAddr := b.Local().Addr

	impostor := start(t, testConfig(t, "b", testKey1))
	n, err := impostor.Join([]string{a.Local().Addr})
	if !errors.Is(err, ErrDuplicateName) || n != 0 {
		t.Fatalf("impostor Join = %d, %v; want 0 and ErrDuplicateName", n, err)
	}
	// a answers the push-pull before it merges, so its refusal may land
	// just after the impostor's Join returned.
	poll.Until(t, 30*time.Second, "a counts the refusal", func() error {
		if got := counterValue(t, a.met.joinRefused.WithLabelValues("duplicate_name")); got < 1 {
			return fmt.Errorf("a counted %v duplicate-name refusals, want at least 1", got)
		}
		return nil
	})
	// The federation is unaffected: b is still b, at its own address.
	for _, m := range []*Membership{a, b} {
		if diff := cmp.Diff([]string{"a", "b"}, aliveNames(m)); diff != "" {
			t.Errorf("%s sees (-want +got):\n%s", m.Local().Name, diff)
		}
		for _, mem := range m.Members() {
			if mem.Name == "b" && mem.Addr != bAddr {
				t.Errorf("%s sees b at %s, want %s", m.Local().Name, mem.Addr, bAddr)
			}
		}
	}
	if diff := cmp.Diff([]string{"b"}, aliveNames(impostor)); diff != "" {
		t.Errorf("impostor sees (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]float64{"alive": 2, "failed": 0, "leaving": 0, "left": 0}, gaugeByStatus(t, reg)); diff != "" {
		t.Errorf("fedmesh_federation_members (-want +got):\n%s", diff)
	}
}

func gaugeByStatus(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "fedmesh_federation_members" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestBadTagsIgnoredAndCounted(t *testing.T) {
	good := MemberInfo{Locality: topology.Locality{Region: "r"}, GatewayAddr: "127.0.0.1:1",
		CatalogAddr: "https://127.0.0.1:2379", ProtocolVersion: 1, InstanceID: "abc"}
	for _, tc := range []struct {
		name   string
		member string
		tags   func(map[string]string)
		reason string
	}{
		{name: "future protocol", member: "future", tags: func(m map[string]string) { m[TagProtocolVersion] = "9" }, reason: ReasonUnsupportedProtocol},
		{name: "no gateway", member: "nogw", tags: func(m map[string]string) { delete(m, TagGateway) }, reason: ReasonMissingTag},
		{name: "name mismatch", member: "liar", tags: func(m map[string]string) { m[TagCluster] = "other" }, reason: ReasonNameMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			cfg := testConfig(t, "a", testKey1)
			cfg.Registerer = reg
			a := start(t, cfg)
			info := good
			info.Cluster = tc.member
			tags := info.Encode()
			tc.tags(tags)
			kr, err := memberlist.NewKeyring(nil, testKey1)
			if err != nil {
				t.Fatal(err)
			}
			s := rawSerf(t, tc.member, tags, kr)
			if _, err := s.Join([]string{a.Local().Addr}, true); err != nil {
				t.Fatalf("raw join: %v", err)
			}
			counter := a.met.membersIgnored.WithLabelValues(tc.reason)
			poll.Until(t, 30*time.Second, "ignored member counted", func() error {
				if got := counterValue(t, counter); got < 1 {
					return fmt.Errorf("counter %s = %v", tc.reason, got)
				}
				return nil
			})
			if diff := cmp.Diff([]string{"a"}, aliveNames(a)); diff != "" {
				t.Errorf("a sees (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	a := start(t, testConfig(t, "a", testKey1))
	b := start(t, testConfig(t, "b", testKey1))
	c := start(t, testConfig(t, "c", testKey1))
	for _, m := range []*Membership{b, c} {
		if _, err := m.Join([]string{a.Local().Addr}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 30*time.Second, "federate", seeExactly([]string{"a", "b", "c"}, a, b, c))

	k1, k2 := EncodeKey(testKey1), EncodeKey(testKey2)
	steps := []struct {
		name string
		op   func() (KeyReport, error)
	}{
		{name: "install new", op: func() (KeyReport, error) { return b.InstallKey(k2) }},
		{name: "use new", op: func() (KeyReport, error) { return c.UseKey(k2) }},
		{name: "remove old", op: func() (KeyReport, error) { return a.RemoveKey(k1) }},
	}
	for _, s := range steps {
		r, err := s.op()
		if err != nil {
			t.Fatalf("%s: %v (%+v)", s.name, err, r)
		}
		if r.NumResp != 3 || r.NumErr != 0 {
			t.Fatalf("%s: %d answers, %d errors, want 3 and 0: %v", s.name, r.NumResp, r.NumErr, r.Messages)
		}
	}
	r, err := a.ListKeys()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(KeyReport{NumNodes: 3, NumResp: 3, Messages: map[string]string{},
		Keys: map[string]int{k2: 3}, PrimaryKeys: map[string]int{k2: 3}}, r); diff != "" {
		t.Errorf("keys after rotation (-want +got):\n%s", diff)
	}

	// Only the new key opens the federation now.
	old := start(t, testConfig(t, "old", testKey1))
	if n, err := old.Join([]string{a.Local().Addr}); err == nil || n != 0 {
		t.Errorf("join with the removed key = %d, %v; want an error", n, err)
	}
	fresh := start(t, testConfig(t, "fresh", testKey2))
	if _, err := fresh.Join([]string{b.Local().Addr}); err != nil {
		t.Fatalf("join with the new key: %v", err)
	}
	poll.Until(t, 30*time.Second, "fresh member federates", seeExactly([]string{"a", "b", "c", "fresh"}, a, b, c, fresh))
}

func TestAdoptKeys(t *testing.T) {
	a := start(t, testConfig(t, "a", testKey1))
	b := start(t, testConfig(t, "b", testKey1))
	if _, err := b.Join([]string{a.Local().Addr}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "federate", seeExactly([]string{"a", "b"}, a, b))

	dir := t.TempDir()
	cfg := testConfig(t, "n")
	cfg.KeyringFile = dir + "/keyring.json"
	n := start(t, cfg) // a federation of one, with a random key
	if err := n.AdoptKeys([][]byte{testKey1}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]byte{testKey1}, n.LocalKeys()); diff != "" {
		t.Errorf("keyring after adopt (-want +got):\n%s", diff)
	}
	onDisk, err := readKeyringFile(cfg.KeyringFile)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]byte{testKey1}, onDisk); diff != "" {
		t.Errorf("keyring file (-want +got):\n%s", diff)
	}
	if _, err := n.Join([]string{a.Local().Addr}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "n federates", seeExactly([]string{"a", "b", "n"}, a, b, n))

	// Federated now: switching to another federation's key is refused.
	if err := n.AdoptKeys([][]byte{testKey2}); !errors.Is(err, ErrAlreadyFederated) {
		t.Errorf("AdoptKeys while federated = %v, want ErrAlreadyFederated", err)
	}
}

func TestPartitionLongerThanReapHeals(t *testing.T) {
	fault := faulttransport.NewNetwork()
	var ms []*Membership
	for _, name := range []string{"a", "b", "c"} {
		cfg := testConfig(t, name, testKey1)
		cfg.WrapTransport = fault.Wrap
		cfg.ReconnectTimeout = time.Second
		cfg.TombstoneTimeout = time.Second
		ms = append(ms, start(t, cfg))
	}
	a, b, c := ms[0], ms[1], ms[2]
	for _, m := range []*Membership{b, c} {
		if _, err := m.Join([]string{a.Local().Addr}); err != nil {
			t.Fatal(err)
		}
	}
	all := []string{"a", "b", "c"}
	poll.Until(t, 30*time.Second, "federate", seeExactly(all, a, b, c))

	fault.Partition([]string{a.Local().Addr}, []string{b.Local().Addr, c.Local().Addr})
	// b and c reap a entirely (not merely failed): serf alone would never
	// contact it again.
	poll.Until(t, 60*time.Second, "a reaped by b and c", func() error {
		for _, m := range []*Membership{b, c} {
			for _, sm := range m.serf.Members() {
				if sm.Name == "a" {
					return fmt.Errorf("%s still has a as %s", m.Local().Name, sm.Status)
				}
			}
		}
		for _, sm := range a.serf.Members() {
			if sm.Name != "a" {
				return fmt.Errorf("a still has %s as %s", sm.Name, sm.Status)
			}
		}
		return nil
	})
	if fault.Dropped() == 0 {
		t.Fatal("the fault network dropped nothing")
	}

	fault.Heal()
	poll.Until(t, 60*time.Second, "whole again after heal", seeExactly(all, a, b, c))
}

func TestLeaveIsNotRejoined(t *testing.T) {
	a := start(t, testConfig(t, "a", testKey1))
	b := start(t, testConfig(t, "b", testKey1))
	if _, err := b.Join([]string{a.Local().Addr}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "federate", seeExactly([]string{"a", "b"}, a, b))
	if err := b.Leave(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "b left", func() error {
		for _, mem := range a.Members() {
			if mem.Name == "b" && mem.Status == StatusLeft {
				return nil
			}
		}
		return fmt.Errorf("a sees %v", a.Members())
	})
	poll.Until(t, 30*time.Second, "b forgotten", func() error {
		list, _ := a.cfg.KnownMembers.Load()
		if slices.ContainsFunc(list, func(k KnownMember) bool { return k.Name == "b" }) {
			return fmt.Errorf("known members still hold b: %v", list)
		}
		return nil
	})
}

func TestSubscribe(t *testing.T) {
	a := start(t, testConfig(t, "a", testKey1))
	ch, cancel := a.Subscribe()
	defer cancel()
	<-ch // the initial state
	b := start(t, testConfig(t, "b", testKey1))
	if _, err := b.Join([]string{a.Local().Addr}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for !slices.Contains(aliveNames(a), "b") {
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("no notification showing b")
		}
	}
	cancel()
	if _, ok := <-ch; ok {
		// a pending value may remain; the next read must see the close
		if _, ok := <-ch; ok {
			t.Fatal("channel not closed by cancel")
		}
	}
}

func TestConfigRejected(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{name: "bad name", mod: func(c *Config) { c.NodeName = "East_1" }, want: "not a valid cluster name"},
		{name: "cluster mismatch", mod: func(c *Config) { c.Locality.Cluster = "other" }, want: "differs from node name"},
		{name: "bad key", mod: func(c *Config) { c.Keys = [][]byte{[]byte("short")} }, want: "gossip key 0"},
		{name: "bad gateway", mod: func(c *Config) { c.GatewayAddr = "nope" }, want: `tag "gw"`},
		{name: "bad catalog", mod: func(c *Config) { c.CatalogAddr = "ftp://x:1" }, want: `tag "catalog"`},
		{name: "no region", mod: func(c *Config) { c.Locality.Region = "" }, want: `tag "region"`},
		{name: "bad profile", mod: func(c *Config) { c.Profile = "fast" }, want: "unknown profile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "a", testKey1)
			tc.mod(&cfg)
			m, err := New(cfg)
			if err == nil {
				_ = m.Shutdown()
				t.Fatal("New accepted a bad config")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error = %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestRestartRejoinsKnownMembers(t *testing.T) {
	known := &FileKnownMembers{Path: t.TempDir() + "/known-members.json"}
	cfgA := testConfig(t, "a", testKey1)
	cfgA.KnownMembers = known
	a, err := New(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	b := start(t, testConfig(t, "b", testKey1))
	if _, err := a.Join([]string{b.Local().Addr}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "federate", seeExactly([]string{"a", "b"}, a, b))
	poll.Until(t, 30*time.Second, "b saved as known", func() error {
		list, err := known.Load()
		if err != nil || len(list) != 1 || list[0].Addr != b.Local().Addr {
			return fmt.Errorf("known members file holds %v, %v", list, err)
		}
		return nil
	})
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// A new process of cluster a, on a new port, finds b by itself.
	a2 := start(t, cfgA)
	poll.Until(t, 30*time.Second, "restarted a rejoins", seeExactly([]string{"a", "b"}, a2, b))
	poll.Until(t, 30*time.Second, "b sees the new a", func() error {
		for _, m := range b.Members() {
			if m.Name == "a" && m.Addr == a2.Local().Addr && m.InstanceID == a2.Local().InstanceID {
				return nil
			}
		}
		return fmt.Errorf("b sees %v", b.Members())
	})
}
