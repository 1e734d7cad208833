package xds

import (
	"strings"
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
		t.Fatalf("node %s: no inbound listener", id)
		return 0
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
