package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fedmesh/fedmesh/controlplane/kube"
)

// TestLeaderElection runs two electors for the same Lease, as the
// control plane's ServiceAccount: exactly one leads; when it stops, the
// other takes over.
func TestLeaderElection(t *testing.T) {
	c, _ := clusters(t)
	clients, err := kube.NewClients(asControlPlane(c))
	if err != nil {
		t.Fatal(err)
	}
	type replica struct {
		el      *kube.Elector
		cancel  context.CancelFunc
		done    chan struct{}
		leading chan string
	}
	var mu sync.Mutex
	leaders := map[string]int{} // identity -> leads running now
	maxConcurrent := 0
	start := func(id string) *replica {
		el, err := kube.NewElector(kube.ElectorConfig{
			Client: clients.Kube, Namespace: "fedmesh-system", Identity: id,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
			Logger: testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &replica{el: el, cancel: cancel, done: make(chan struct{}), leading: make(chan string, 4)}
		go func() {
			defer close(r.done)
			if err := el.Run(ctx, func(lctx context.Context) {
				mu.Lock()
				leaders[id]++
				n := 0
				for _, v := range leaders {
					n += v
				}
				maxConcurrent = max(maxConcurrent, n)
				mu.Unlock()
				r.leading <- id
				<-lctx.Done()
				mu.Lock()
				leaders[id]--
				mu.Unlock()
			}); err != nil {
				t.Errorf("elector %s: %v", id, err)
			}
		}()
		t.Cleanup(func() { cancel(); <-r.done })
		return r
	}
	r1 := start("replica-1")
	<-r1.leading // the first replica wins the free Lease
	r2 := start("replica-2")
	if r2.el.IsLeader() {
		t.Fatal("both replicas lead")
	}
	// Stopping the leader releases the Lease; the other takes it.
	r1.cancel()
	<-r1.done
	select {
	case id := <-r2.leading:
		if id != "replica-2" {
			t.Fatalf("leader %s", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("replica-2 did not take over the released Lease")
	}
	mu.Lock()
	defer mu.Unlock()
	if maxConcurrent != 1 {
		t.Errorf("%d replicas led at once, want 1", maxConcurrent)
	}
}

// TestTokenReview proves workload identity from a projected ServiceAccount
// token, asking the API server as the control plane's ServiceAccount.
func TestTokenReview(t *testing.T) {
	c, _ := clusters(t)
	admin, err := kube.NewClients(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := kube.NewClients(asControlPlane(c))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ns := range []string{"tokens"} {
		_, err := admin.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	if _, err := admin.Kube.CoreV1().ServiceAccounts("tokens").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "echo"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	token := func(audience string) string {
		t.Helper()
		tr, err := admin.Kube.CoreV1().ServiceAccounts("tokens").CreateToken(ctx, "echo", &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr[int64](600)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	reviewer, err := kube.NewTokenReviewer(cp.Kube)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		token          string
		wantNS, wantSA string
		wantErr        error
	}{
		{name: "fedmesh audience", token: token(kube.DefaultAudience), wantNS: "tokens", wantSA: "echo"},
		{name: "other audience", token: token("vault"), wantErr: kube.ErrUnauthenticated},
		{name: "garbage", token: "not-a-token", wantErr: kube.ErrUnauthenticated},
		{name: "empty", token: "", wantErr: kube.ErrUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns, sa, err := reviewer.Authenticate(ctx, tc.token)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got, want := fmt.Sprint(ns, "/", sa), fmt.Sprint(tc.wantNS, "/", tc.wantSA); got != want {
				t.Errorf("identity %s, want %s", got, want)
			}
		})
	}
}
