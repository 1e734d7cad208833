package xds

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// TestQuotaSharesPerNode: Settings.QuotaShares sizes each sidecar's
// bucket of a quota by its node ID; a node it has no share for gets the
// default (the quota over the clusters serving the target).
func TestQuotaSharesPerNode(t *testing.T) {
	s := DefaultSettings(testTD)
	var asked []string
	s.QuotaShares = func(quotaID, nodeID string) (plan.QuotaShare, bool) {
		asked = append(asked, quotaID+"@"+nodeID)
		if nodeID == "echo-a~west-1" {
			return plan.QuotaShare{Requests: 321, Interval: time.Minute}, true
		}
		return plan.QuotaShare{}, false
	}
	v := testView("west-1", func(v *catalog.View) { v.Services[0].Endpoints[3].Workload = "echo" })
	g, err := NewGeneratorWithTraffic(s, v, nil, loadTraffic(t, "ratelimit"))
	if err != nil {
		t.Fatal(err)
	}
	quotaBucket := func(id string) uint32 {
		t.Helper()
		n := Node{ID: id, Role: naming.RoleSidecar, Cluster: "west-1", Namespace: "demo", ServiceAccount: "echo", Workload: "echo",
			Locality: locWest1, AppPorts: map[string]int32{"http": 9080}}
		b, err := g.Build(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		return quotaTokens(t, b)
	}
	if got := quotaBucket("echo-a~west-1"); got != 321 {
		t.Errorf("node with a share: maxTokens %d, want 321", got)
	}
	if got := quotaBucket("echo-b~west-1"); got != 200 {
		t.Errorf("node without a share: maxTokens %d, want 200 (600 over 3 clusters)", got)
	}
	if len(asked) != 2 || asked[0] != "demo/echo-limits/batch@echo-a~west-1" {
		t.Errorf("QuotaShares calls %q", asked)
	}
}

// TestQuotaSharesChanged: a new split reaches a connected sidecar once
// the server is told, after the debounce.
func TestQuotaSharesChanged(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var share atomic.Int64
	share.Store(100)
	s := DefaultSettings(testTD)
	s.QuotaShares = func(string, string) (plan.QuotaShare, bool) {
		return plan.QuotaShare{Requests: share.Load(), Interval: time.Minute}, true
	}
	srv, err := NewServer(Config{
		Cluster: "west-1", Settings: s, Authenticator: TokenAuthenticator(verifyToken),
		Debounce: time.Second, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.UpdateView(testView("west-1", func(v *catalog.View) { v.Services[0].Endpoints[3].Workload = "echo" })); err != nil {
		t.Fatal(err)
	}
	if err := srv.UpdateTraffic(loadTraffic(t, "ratelimit")); err != nil {
		t.Fatal(err)
	}
	n := Node{ID: "echo~west-1", Role: naming.RoleSidecar, Cluster: "west-1", Namespace: "demo", ServiceAccount: "echo", Workload: "echo",
		Locality: locWest1, AppPorts: map[string]int32{"http": 9080}}
	ns := &nodeState{node: n, id: Identity{Namespace: n.Namespace, ServiceAccount: n.ServiceAccount}, streams: 1}
	srv.mu.Lock()
	srv.nodes[n.Key()], srv.dirty[n.Key()] = ns, true
	srv.mu.Unlock()
	flush := func() {
		now = now.Add(2 * time.Second)
		srv.flush()
	}
	flush()
	if got := quotaTokens(t, ns.built); got != 100 {
		t.Fatalf("first share: %d tokens, want 100", got)
	}
	share.Store(250)
	flush()
	if got := quotaTokens(t, ns.built); got != 100 {
		t.Fatalf("before the server is told: %d tokens, want still 100", got)
	}
	srv.QuotaSharesChanged()
	flush()
	if got := quotaTokens(t, ns.built); got != 250 {
		t.Errorf("after QuotaSharesChanged: %d tokens, want 250", got)
	}
}

// quotaTokens returns max_tokens of the demo/echo-limits/batch quota's
// descriptor in b's inbound listeners, 0 when there is none.
func quotaTokens(t *testing.T, b *Built) uint32 {
	t.Helper()
	if b == nil {
		t.Fatal("no snapshot")
	}
	for name, r := range b.Snapshot.GetResources(resourcev3.ListenerType) {
		if !strings.HasPrefix(name, "inbound|") {
			continue
		}
		for _, fc := range r.(*listenerv3.Listener).GetFilterChains() {
			var hcm hcmv3.HttpConnectionManager
			if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
				continue
			}
			for _, hf := range hcm.GetHttpFilters() {
				var rl localrlv3.LocalRateLimit
				if hf.GetTypedConfig().UnmarshalTo(&rl) != nil {
					continue
				}
				for _, d := range rl.GetDescriptors() {
					if e := d.GetEntries()[0]; e.GetKey() == xdsresource.DescriptorQuota && e.GetValue() == "demo/echo-limits/batch" {
						return d.GetTokenBucket().GetMaxTokens()
					}
				}
			}
		}
	}
	return 0
}
