package proof_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/federation/proof"
	"github.com/fedmesh/fedmesh/internal/identity"
)

// TestSlowCatalogGetsMoreTime: a catalog that starts its handshake only
// after delay (an overloaded machine) makes the first proofs time out;
// each one that times out doubles the next one's time, so a proof ends
// up waiting long enough and succeeds, where a fixed timeout would cut
// every one short. Once it answered, a proof of it has the plain timeout
// again.
func TestSlowCatalogGetsMoreTime(t *testing.T) {
	p := newPKI(t)
	east := clusterCA(t, p.root, "east-1")
	own := cert(t, east, cpID("east-1"))
	const base, delay = 100 * time.Millisecond, 300 * time.Millisecond
	slow := make(chan bool, 1)
	slow <- true
	addr := serve(t, func(raw net.Conn) {
		s := <-slow
		slow <- s
		if s {
			time.Sleep(delay) // the fault: a server that answers late
		}
		conn := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{own}, ClientAuth: tls.RequestClientCert})
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if conn.Handshake() != nil {
			return
		}
		_, _ = conn.Read(make([]byte, 1))
	})
	pr, err := proof.New(proof.Config{Bundle: identity.StaticBundle(p.bundle), DialTimeout: base, Now: func() time.Time { return p.root.Now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var attempts []string
	for len(attempts) < 6 {
		start := time.Now()
		_, err := pr.Prove(ctx, "east-1", "https://"+addr)
		if err == nil {
			attempts = append(attempts, "ok")
			break
		}
		attempts = append(attempts, proof.ReasonOf(err))
		if took := time.Since(start); took > 2*maxWait(base) {
			t.Fatalf("attempt %d took %s, beyond the bound of %s", len(attempts), took, maxWait(base))
		}
	}
	if attempts[0] != proof.ReasonHandshake {
		t.Errorf("first attempt: %q, want %q (timed out)", attempts[0], proof.ReasonHandshake)
	}
	if last := attempts[len(attempts)-1]; last != "ok" {
		t.Fatalf("attempts %v: never proven though the catalog answers within %s", attempts, delay)
	}
	t.Logf("attempts: %v", attempts)

	// Answered: the plain timeout again, which a slow catalog exceeds.
	<-slow
	slow <- true
	if _, err := pr.Prove(ctx, "east-1", "https://"+addr); proof.ReasonOf(err) != proof.ReasonHandshake {
		t.Errorf("after a success, a slow catalog: %v, want a timeout within the plain %s", err, base)
	}
}

func maxWait(base time.Duration) time.Duration { return 8 * base }
