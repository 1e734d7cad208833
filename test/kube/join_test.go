package kube

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/federation/adminapi"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/proof/prooftest"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/topology"
)

// joinAPI is the federation admin API of a test control plane (what
// controlplane.Server mounts), signing tokens with a certificate its
// cluster CA issued.
func joinAPI(t *testing.T, cp *controlPlane) *adminapi.Handler {
	t.Helper()
	pki := prooftest.Default(t)
	cert := pki.ControlPlane(t, cp.api.name).Cert
	var chain []*x509.Certificate
	for _, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	bundle, err := pki.Bundle().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h, err := adminapi.NewHandler(adminapi.Config{
		Federation: cp.mem,
		Issuer: func() (adminapi.Issuer, error) {
			return adminapi.Issuer{Signer: cert.PrivateKey.(crypto.Signer), Chain: chain, RootBundle: bundle, TrustDomain: prooftest.TrustDomain}, nil
		},
		TrustedRoots: func() ([]*x509.Certificate, error) { return pki.Bundle().X509Authorities(), nil },
		Logger:       testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// startJoiner runs the control plane's Joiner, as its ServiceAccount
// (deploy/'s RBAC), until the test ends.
func startJoiner(t *testing.T, cp *controlPlane, api *adminapi.Handler) {
	t.Helper()
	j, err := kube.NewJoiner(kube.JoinConfig{
		Client: cp.clients.Kube, Namespace: "fedmesh-system",
		Cluster: cp.api.name, Member: cp.name,
		Token: api.Token, Join: api.Join,
		Interval: 200 * time.Millisecond,
		Logger:   testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = j.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// TestKubeJoin: 'fedmesh join' between two clusters that run in
// Kubernetes. east-1's control plane publishes its token in its
// namespace; CopyJoinToken (what 'fedmesh join --context west-1
// --from-context east-1' runs) copies it through the API servers into
// west-1's; west-1's control plane joins with it and records that on the
// Secret; both control planes then see each other as members. A bad
// token put there afterwards is refused and recorded, and changes
// nothing.
func TestKubeJoin(t *testing.T) {
	east, west := clusters(t)
	a := startControlPlane(t, east, topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"})
	b := startControlPlane(t, west, topology.Locality{Region: "us-west", Zone: "a", Cluster: "west-1"})
	startJoiner(t, a, joinAPI(t, a))
	startJoiner(t, b, joinAPI(t, b))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		for _, cp := range []*controlPlane{a, b} {
			for _, name := range []string{kube.JoinTokenSecret, kube.JoinSecret} {
				_ = cp.admin.Kube.CoreV1().Secrets("fedmesh-system").Delete(context.Background(), name, metav1.DeleteOptions{})
			}
		}
	})

	// Each control plane publishes its own token, as its ServiceAccount.
	for _, cp := range []*controlPlane{a, b} {
		poll.Until(t, convergence, cp.name+" publishes its join token", func() error {
			s, err := cp.admin.Kube.CoreV1().Secrets("fedmesh-system").Get(ctx, kube.JoinTokenSecret, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got := s.Annotations[kube.AnnotationIssuer]; got != cp.api.name {
				return fmt.Errorf("issuer annotation %q", got)
			}
			if len(s.Data[kube.KeyToken]) == 0 || len(s.Data[kube.KeySeeds]) == 0 {
				return fmt.Errorf("data %v", s.Data)
			}
			return nil
		})
	}

	out, err := kube.CopyJoinToken(ctx, a.admin.Kube, b.admin.Kube, "fedmesh-system", time.Minute)
	if err != nil {
		t.Fatalf("join west-1 to east-1: %v", err)
	}
	if out.Issuer != "east-1" || out.Secret != kube.JoinSecret {
		t.Errorf("copied %+v, want east-1's token in %s", out, kube.JoinSecret)
	}
	if st := out.Statuses[b.name]; !st.Joined || st.Issuer != a.name || st.Contacted < 1 {
		t.Errorf("west-1's status %+v, want joined through %s", st, a.name)
	}
	src, err := a.admin.Kube.CoreV1().Secrets("fedmesh-system").Get(ctx, kube.JoinTokenSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := b.admin.Kube.CoreV1().Secrets("fedmesh-system").Get(ctx, kube.JoinSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(dst.Data[kube.KeyToken]) != string(src.Data[kube.KeyToken]) {
		t.Errorf("west-1's join Secret does not hold east-1's token")
	}

	// The control planes see each other: the peer is configured.
	for _, pair := range [][2]*controlPlane{{a, b}, {b, a}} {
		poll.Until(t, convergence, pair[0].name+" sees "+pair[1].name+" alive", func() error {
			for _, m := range pair[0].mem.Members() {
				if m.Name == pair[1].name && m.Status == membership.StatusAlive {
					return nil
				}
			}
			return fmt.Errorf("members %v", pair[0].mem.Members())
		})
	}

	// The command line, as a user runs it (kubectl habits), again: the
	// same token, the outcome recorded again, exit code 0.
	bin := buildFedmesh(t)
	cmd := exec.Command(bin, "join", "--kubeconfig", writeKubeconfig(t, west), "--from-kubeconfig", writeKubeconfig(t, east), "--wait", "1m", "-o", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("fedmesh join: %v\n%s", err, stderr.String())
	}
	var cli kube.CopyJoin
	if err := json.Unmarshal(stdout.Bytes(), &cli); err != nil {
		t.Fatalf("join -o json: %v\n%s", err, stdout.String())
	}
	if st := cli.Statuses[b.name]; cli.Issuer != "east-1" || !st.Joined {
		t.Errorf("fedmesh join -o json: %+v, want west-1 joined through east-1", cli)
	}
	dst, err = b.admin.Kube.CoreV1().Secrets("fedmesh-system").Get(ctx, kube.JoinSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// A token that is not one: refused with its reason on the Secret;
	// the federation stays.
	dst.Data[kube.KeyToken] = []byte("fmjt1.not-a-token")
	if _, err := b.admin.Kube.CoreV1().Secrets("fedmesh-system").Update(ctx, dst, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, convergence, "the bad token's refusal recorded", func() error {
		s, err := b.admin.Kube.CoreV1().Secrets("fedmesh-system").Get(ctx, kube.JoinSecret, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var st kube.JoinStatus
		if err := json.Unmarshal([]byte(s.Annotations[kube.JoinStatusPrefix+b.name]), &st); err != nil {
			return err
		}
		if st.Token != kube.TokenDigest("fmjt1.not-a-token") {
			return errors.New("not yet")
		}
		if st.Joined || st.Error == "" {
			return fmt.Errorf("status %+v, want a refusal", st)
		}
		return nil
	})
	if _, err := kube.CopyJoinToken(ctx, a.admin.Kube, b.admin.Kube, "fedmesh-system", 0); err != nil {
		t.Errorf("copy without waiting: %v", err)
	}
	for _, m := range b.mem.Members() {
		if m.Name == a.name && m.Status != membership.StatusAlive {
			t.Errorf("after the bad token, %s sees %s %s", b.name, a.name, m.Status)
		}
	}
}
