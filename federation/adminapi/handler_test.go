package adminapi

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/internal/testpki"
	"github.com/fedmesh/fedmesh/topology"
)

func TestMain(m *testing.M) {
	// serf's background goroutines end on their next tick after Shutdown;
	// VerifyTestMain retries until they are gone.
	goleak.VerifyTestMain(m)
}

var fedKey = []byte("0123456789abcdef0123456789abcdef")

// pki is a throwaway federation CA: a root and a cluster intermediate
// that signs the control planes' leaves.
type pki struct {
	root, cluster *testpki.CA
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	root := testpki.NewRoot(t, name)
	return &pki{root: root, cluster: root.NewIntermediate(t, name)}
}

// issuer returns the signing identity of cluster's control plane: a leaf
// with its SPIFFE ID, as join tokens need.
func (p *pki) issuer(t *testing.T, cluster string) func() (Issuer, error) {
	t.Helper()
	key := testpki.Key(t)
	leaf := p.cluster.Leaf(t, key, "spiffe://fedmesh.local/fedmesh/cluster/"+cluster)
	iss := Issuer{Signer: key, Chain: []*x509.Certificate{leaf, p.cluster.Cert}, RootBundle: p.root.PEM(), TrustDomain: "fedmesh.local"}
	return func() (Issuer, error) { return iss, nil }
}

func (p *pki) roots() ([]*x509.Certificate, error) { return []*x509.Certificate{p.root.Cert}, nil }

// node is a control plane's membership with its admin API served over
// loopback HTTP.
type node struct {
	m      *membership.Membership
	client *Client
	reg    *prometheus.Registry
	clock  *clock
}

type clock struct {
	mu     sync.Mutex // guards offset
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = d
}

func startNode(t *testing.T, name string, p *pki, keys ...[]byte) *node {
	t.Helper()
	m, err := membership.New(membership.Config{
		NodeName:    name,
		Locality:    topology.Locality{Region: "us-east", Zone: "a"},
		GatewayAddr: "127.0.0.1:15443",
		CatalogAddr: "https://127.0.0.1:2379",
		BindAddr:    "127.0.0.1",
		Keys:        keys,
		Profile:     membership.ProfileLocal,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	n := &node{m: m, reg: prometheus.NewRegistry(), clock: &clock{}}
	h, err := NewHandler(Config{
		Federation:   m,
		Issuer:       p.issuer(t, name),
		TrustedRoots: p.roots,
		Now:          n.clock.now,
		Logger:       slog.New(slog.DiscardHandler),
		Registerer:   n.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	n.client = &Client{BaseURL: srv.URL}
	return n
}

func alive(m *membership.Membership) []string {
	var out []string
	for _, mem := range m.Members() {
		if mem.Status == membership.StatusAlive {
			out = append(out, mem.Name)
		}
	}
	return out
}

func sees(want []string, ns ...*node) func() error {
	return func() error {
		for _, n := range ns {
			if diff := cmp.Diff(want, alive(n.m)); diff != "" {
				return fmt.Errorf("%s sees (-want +got):\n%s", n.m.Local().Name, diff)
			}
		}
		return nil
	}
}

// federation starts a and b, federated under fedKey.
func federation(t *testing.T, p *pki) (a, b *node) {
	a, b = startNode(t, "a", p, fedKey), startNode(t, "b", p, fedKey)
	if _, err := b.m.Join([]string{a.m.Local().Addr}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "a and b federate", sees([]string{"a", "b"}, a, b))
	return a, b
}

func TestJoinWithToken(t *testing.T) {
	p := newPKI(t, "fed")
	a, b := federation(t, p)
	ctx := context.Background()

	tok, err := b.client.CreateToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Token, "fmjt1.") || len(tok.Seeds) != 2 {
		t.Fatalf("token response %+v: want a fmjt1 token with 2 seeds", tok)
	}

	n := startNode(t, "n", p) // a federation of one with its own random key
	resp, err := n.client.Join(ctx, tok.Token+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(JoinResponse{Issuer: "b", TrustDomain: "fedmesh.local", Contacted: 2}, resp); diff != "" {
		t.Errorf("join response (-want +got):\n%s", diff)
	}
	poll.Until(t, 30*time.Second, "full mesh after one join", sees([]string{"a", "b", "n"}, a, b, n))
	if diff := cmp.Diff([][]byte{fedKey}, n.m.LocalKeys()); diff != "" {
		t.Errorf("joined node's keyring (-want +got):\n%s", diff)
	}

	mem, err := a.client.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range mem.Members {
		names = append(names, v.Name+"/"+v.Status+"/"+v.Region)
	}
	if diff := cmp.Diff([]string{"a/alive/us-east", "b/alive/us-east", "n/alive/us-east"}, names); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
}

// tamper rewrites the signed payload inside a token.
func tamper(t *testing.T, tok, old, repl string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "fmjt1."))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	var payload []byte
	if err := json.Unmarshal(env["p"], &payload); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(payload), old) {
		t.Fatalf("payload lacks %q", old)
	}
	payload = []byte(strings.Replace(string(payload), old, repl, 1))
	env["p"], _ = json.Marshal(payload)
	raw, _ = json.Marshal(env)
	return "fmjt1." + base64.RawURLEncoding.EncodeToString(raw)
}

func counter(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetValue() == reason }) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestJoinRefused(t *testing.T) {
	p := newPKI(t, "fed")
	other := newPKI(t, "other")
	a, _ := federation(t, p)
	ctx := context.Background()

	good, err := a.client.CreateToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a.clock.set(-2 * time.Hour)
	expired, err := a.client.CreateToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a.clock.set(0)
	o := startNode(t, "o", other, fedKey)
	foreign, err := o.client.CreateToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	n := startNode(t, "n", p)
	keysBefore := n.m.LocalKeys()
	for _, tc := range []struct {
		name    string
		token   string
		status  int
		message string
		reason  string
	}{
		{name: "expired", token: expired.Token, status: 403, message: "join token has expired", reason: "expired"},
		{name: "altered", token: tamper(t, good.Token, `"iss":"a"`, `"iss":"z"`), status: 403, message: "the token was altered", reason: "signature"},
		{name: "foreign", token: foreign.Token, status: 403, message: "issued by another federation", reason: "foreign"},
		{name: "garbage", token: "hello", status: 400, message: "malformed", reason: "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.client.Join(ctx, tc.token)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("Join = %v, want an APIError", err)
			}
			if ae.Status != tc.status || !strings.Contains(ae.Message, tc.message) {
				t.Errorf("Join error = %d %q, want %d mentioning %q", ae.Status, ae.Message, tc.status, tc.message)
			}
			if got := counter(t, n.reg, "fedmesh_federation_join_token_rejected_total", tc.reason); got != 1 {
				t.Errorf("rejected{reason=%s} = %v, want 1", tc.reason, got)
			}
			// Nothing was joined and the keyring is untouched.
			if diff := cmp.Diff([]string{"n"}, alive(n.m)); diff != "" {
				t.Errorf("n sees (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(keysBefore, n.m.LocalKeys()); diff != "" {
				t.Errorf("keyring changed (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("duplicate cluster name", func(t *testing.T) {
		impostor := startNode(t, "a", p)
		_, err := impostor.client.Join(ctx, good.Token)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(ae.Message, "cluster name already taken") {
			t.Fatalf("Join = %v, want 409 cluster name already taken", err)
		}
		if diff := cmp.Diff([]string{"a"}, alive(impostor.m)); diff != "" {
			t.Errorf("impostor sees (-want +got):\n%s", diff)
		}
	})
}

func TestKeysAndTokenRequests(t *testing.T) {
	p := newPKI(t, "fed")
	a, _ := federation(t, p)
	ctx := context.Background()
	k1 := base64.StdEncoding.EncodeToString(fedKey)
	k2 := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210"))

	list, err := a.client.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{k1: 2}, list.Keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if _, err := a.client.KeyOp(ctx, "install", k2); err != nil {
		t.Fatal(err)
	}
	list, err = a.client.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{k1: 2, k2: 2}, list.Keys); diff != "" {
		t.Errorf("keys after install (-want +got):\n%s", diff)
	}
	// Removing the primary key fails on every member and says so.
	if _, err := a.client.KeyOp(ctx, "remove", k1); err == nil {
		t.Error("removing the primary key succeeded")
	}

	for _, tc := range []struct {
		name   string
		do     func() error
		status int
	}{
		{name: "bad key", do: func() error { _, err := a.client.KeyOp(ctx, "install", "not base64!"); return err }, status: 400},
		{name: "short key", do: func() error {
			_, err := a.client.KeyOp(ctx, "install", base64.StdEncoding.EncodeToString([]byte("short")))
			return err
		}, status: 400},
		{name: "bad op", do: func() error { _, err := a.client.KeyOp(ctx, "rotate", k2); return err }, status: 400},
		{name: "ttl too long", do: func() error { _, err := a.client.CreateToken(ctx, 48*time.Hour); return err }, status: 400},
		{name: "negative ttl", do: func() error { _, err := a.client.CreateToken(ctx, -time.Hour); return err }, status: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ae *APIError
			if err := tc.do(); !errors.As(err, &ae) || ae.Status != tc.status {
				t.Fatalf("error = %v, want HTTP %d", err, tc.status)
			}
		})
	}
}

func statusOf(m *membership.Membership, name string) membership.Status {
	for _, mem := range m.Members() {
		if mem.Name == name {
			return mem.Status
		}
	}
	return ""
}

// settle waits, once the test's members have shut down, for their last
// goroutines to end: a probe of a member that failed waits out a timeout
// scaled by the prober's health, longer than goleak's own retries.
func settle(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := goleak.Find(ignore)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines left 30s after the test: %v", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestForgetMember forgets a member that failed: every member marks it
// left. Alive members, this member itself and bad names are refused.
func TestForgetMember(t *testing.T) {
	settle(t)
	p := newPKI(t, "fed")
	a, b := federation(t, p)
	c := startNode(t, "c", p, fedKey)
	if _, err := c.m.Join([]string{a.m.Local().Addr}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "a, b and c federate", sees([]string{"a", "b", "c"}, a, b, c))
	ctx := context.Background()

	for _, tc := range []struct {
		name, member string
		status       int
		message      string
	}{
		{name: "alive member", member: "b", status: http.StatusConflict, message: "member is alive"},
		{name: "itself", member: "a", status: http.StatusBadRequest, message: "cannot forget itself"},
		{name: "bad name", member: "Not_A_Cluster", status: http.StatusBadRequest, message: "neither a cluster name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.client.Forget(ctx, tc.member)
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tc.status || !strings.Contains(ae.Message, tc.message) {
				t.Fatalf("Forget(%q) = %v, want %d mentioning %q", tc.member, err, tc.status, tc.message)
			}
		})
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, alive(b.m)); diff != "" {
		t.Errorf("after the refusals b sees (-want +got):\n%s", diff)
	}

	if err := c.m.Shutdown(); err != nil { // a crash: no leave
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "c failed", func() error {
		for _, n := range []*node{a, b} {
			if got := statusOf(n.m, "c"); got != membership.StatusFailed {
				return fmt.Errorf("%s sees c %s", n.m.Local().Name, got)
			}
		}
		return nil
	})
	resp, err := a.client.Forget(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ForgetResponse{Name: "c"}, resp); diff != "" {
		t.Errorf("forget response (-want +got):\n%s", diff)
	}
	poll.Until(t, 30*time.Second, "c left everywhere", func() error {
		for _, n := range []*node{a, b} {
			if got := statusOf(n.m, "c"); got != membership.StatusLeft {
				return fmt.Errorf("%s sees c %s", n.m.Local().Name, got)
			}
		}
		return nil
	})
	if diff := cmp.Diff([]string{"c"}, a.m.Forgotten()); diff != "" {
		t.Errorf("forgotten on a (-want +got):\n%s", diff)
	}
}
