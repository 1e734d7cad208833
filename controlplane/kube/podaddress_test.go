package kube

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/poll"
)

// TestSourcePodAddress reads pods' IPs and ServiceAccounts from the
// informer cache: nothing before Run has synced, a pod's IP once it has,
// nothing for an unknown pod or one without a valid IP, and the new IP
// after an update.
func TestSourcePodAddress(t *testing.T) {
	withIP := pod("client-1", "client", "n1")
	withIP.Status.PodIP = "10.1.0.5"
	noIP := pod("pending-1", "client", "n1")
	badIP := pod("bad-1", "client", "n1")
	badIP.Status.PodIP = "not-an-ip"
	clients := fakeClients([]runtime.Object{withIP, noIP, badIP})
	src, err := NewSource(SourceConfig{Clients: clients, Cluster: "east-1", Debounce: time.Millisecond, Logger: testLogger(t), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := src.PodAddress("demo", "client-1"); ok {
		t.Error("PodAddress answered before Run")
	}
	run(t, func(ctx context.Context) error { return src.Run(ctx, func([]catalog.Export) {}) })
	poll.Until(t, 10*time.Second, "client-1's address from the cache", func() error {
		ip, sa, ok := src.PodAddress("demo", "client-1")
		if !ok || ip != netip.MustParseAddr("10.1.0.5") || sa != "client" {
			return errors.New("not yet")
		}
		return nil
	})
	for _, name := range []string{"pending-1", "bad-1", "unknown"} {
		if ip, _, ok := src.PodAddress("demo", name); ok {
			t.Errorf("PodAddress(demo/%s) = %v, want not found", name, ip)
		}
	}
	if _, _, ok := src.PodAddress("other", "client-1"); ok {
		t.Error("PodAddress found client-1 in another namespace")
	}
	withIP.Status.PodIP = "10.1.0.6"
	if _, err := clients.Kube.CoreV1().Pods("demo").UpdateStatus(context.Background(), withIP, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "client-1's new address", func() error {
		if ip, _, _ := src.PodAddress("demo", "client-1"); ip != netip.MustParseAddr("10.1.0.6") {
			return errors.New("still " + ip.String())
		}
		return nil
	})
}
