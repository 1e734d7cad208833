package federation

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/proof"
)

// maxProofs bounds the proofs one control plane runs at once.
const maxProofs = 8

// ReasonProving is the reason of a member whose first proof has not
// answered yet (a value of the reason label of
// fedmesh_federation_members_pending_proof).
const ReasonProving = "proving"

// proofKey is what one proof is good for: one instance of a member (a
// process start) at one gossip address with one catalog address. A new
// instance, or a member that moves, proves itself again.
type proofKey struct {
	iid, addr, catalog string
}

func keyOf(m membership.Member) proofKey {
	return proofKey{iid: m.InstanceID, addr: m.Addr, catalog: m.CatalogAddr}
}

// candidate is a gossip member not trusted (yet): its proof loop runs
// until the member proves itself, changes, or leaves gossip.
type candidate struct {
	member   membership.Member
	key      proofKey
	since    time.Time
	reason   string // ReasonProving, or why the last proof failed
	err      string
	attempts int
	// wasTrusted is set when the name was trusted before, under another
	// key or until its replicator was refused: a refusal of its identity
	// now drops a proven member.
	wasTrusted bool
	gen        uint64
	cancel     context.CancelFunc
	done       chan struct{}
}

// proofResult is one answer of a proof loop.
type proofResult struct {
	name string
	gen  uint64
	id   proof.Identity
	err  error
}

// trustMail holds what proof loops and pinned replicators report until
// Run takes it.
type trustMail struct {
	mu      sync.Mutex // guards the following
	results []proofResult
	// refused are replicator generations whose peer presented another
	// identity than the one proven.
	refused map[string]uint64
}

// postProof leaves a proof result for Run; it never blocks.
func (f *Federation) postProof(r proofResult) {
	f.trust.mu.Lock()
	f.trust.results = append(f.trust.results, r)
	f.trust.mu.Unlock()
	f.poke()
}

// postRefused tells Run that the replicator of generation gen for peer
// was refused the peer's identity; it never blocks.
func (f *Federation) postRefused(peer string, gen uint64) {
	f.trust.mu.Lock()
	f.trust.refused[peer] = gen
	f.trust.mu.Unlock()
	f.poke()
}

// wantProof makes sure a proof loop runs for m's current instance.
func (f *Federation) wantProof(ctx context.Context, wg *sync.WaitGroup, m membership.Member, wasTrusted bool) {
	key := keyOf(m)
	if c, ok := f.candidates[m.Name]; ok {
		if c.key == key {
			c.member = m
			c.wasTrusted = c.wasTrusted || wasTrusted
			return
		}
		f.dropCandidate(m.Name)
	}
	f.gen++
	pctx, cancel := context.WithCancel(ctx)
	c := &candidate{
		member: m, key: key, since: f.cfg.Now(), reason: ReasonProving, wasTrusted: wasTrusted,
		gen: f.gen, cancel: cancel, done: make(chan struct{}),
	}
	f.candidates[m.Name] = c
	name, cluster, catalog, gen := m.Name, m.Cluster, m.CatalogAddr, c.gen
	wg.Go(func() {
		defer close(c.done)
		f.proveLoop(pctx, name, cluster, catalog, gen)
	})
	f.log.Info("gossip member seen: proving its control plane identity before trusting it",
		"member", m.Name, "addr", m.Addr, "catalog", m.CatalogAddr, "instance", m.InstanceID)
}

// proveLoop proves that member name holds the control plane identity of
// cluster, until it succeeds or ctx ends, with a jittered exponential
// backoff between attempts.
func (f *Federation) proveLoop(ctx context.Context, name, cluster, catalog string, gen uint64) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = f.cfg.proofMinBackoff()
	bo.MaxInterval = f.cfg.MaxProofBackoff
	bo.RandomizationFactor = 0.5
	bo.MaxElapsedTime = 0 // until proven or gone
	bo.Reset()
	for {
		// At most maxProofs at once: a control plane meeting hundreds
		// of members at once (a federation forming) started a TLS
		// handshake with each, and on a starved machine every one of
		// them timed out and was retried, so none completed.
		select {
		case f.proofSlots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		id, err := f.cfg.Prover.Prove(ctx, cluster, catalog)
		<-f.proofSlots
		if ctx.Err() != nil {
			return
		}
		f.postProof(proofResult{name: name, gen: gen, id: id, err: err})
		if err == nil {
			return
		}
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// dropCandidate stops the proof loop of name, if any.
func (f *Federation) dropCandidate(name string) {
	c, ok := f.candidates[name]
	if !ok {
		return
	}
	c.cancel()
	<-c.done
	delete(f.candidates, name)
}

// untrust takes trust away from a peer proven before: its replicator
// stops (its exports stay, and are fenced after FencePeriod) until it
// proves itself again.
func (f *Federation) untrust(p *peer, why string) {
	if len(p.proven) == 0 && p.identity == "" {
		return
	}
	f.stopReplicator(p)
	p.proven = nil
	p.identity = ""
	f.markDirty(time.Time{})
	f.log.Info("peer must prove its control plane identity again: not replicated meanwhile", "peer", p.name, "why", why)
}

// takeTrust applies what proof loops and pinned replicators reported.
func (f *Federation) takeTrust(ctx context.Context, wg *sync.WaitGroup) {
	f.trust.mu.Lock()
	results, refused := f.trust.results, f.trust.refused
	f.trust.results = nil
	f.trust.refused = make(map[string]uint64)
	f.trust.mu.Unlock()

	for name, gen := range refused {
		p, ok := f.peers[name]
		if !ok || p.rep == nil || p.rep.gen != gen {
			continue
		}
		if p.member == nil {
			f.untrust(p, "its catalog presented another identity than the one it proved")
			continue
		}
		// Only the replica followed is refused: the others stay
		// proven, and the next sync follows one of them.
		f.stopReplicator(p)
		delete(p.proven, keyOf(*p.member))
		if len(p.proven) == 0 {
			f.untrust(p, "its catalog presented another identity than the one it proved")
		}
		f.wantProof(ctx, wg, *p.member, true)
	}
	proven := false
	for _, r := range results {
		c, ok := f.candidates[r.name]
		if !ok || c.gen != r.gen {
			continue // a proof of an instance since replaced
		}
		c.attempts++
		if r.err != nil {
			reason := proof.ReasonOf(r.err)
			f.met.proofs.WithLabelValues(reason).Inc()
			if reason != c.reason {
				f.met.untrusted.WithLabelValues(reason).Inc()
				var pe *proof.Error
				refusedID := errors.As(r.err, &pe) && pe.IdentityRefused()
				if refusedID && c.wasTrusted {
					f.log.Warn("proven peer dropped: it now presents another identity; not trusted, not replicated",
						"member", r.name, "addr", c.member.Addr, "catalog", c.member.CatalogAddr, "reason", reason, "err", r.err)
				} else {
					f.log.Warn("gossip member not trusted: it does not prove a control plane identity of the federation",
						"member", r.name, "addr", c.member.Addr, "catalog", c.member.CatalogAddr, "reason", reason, "err", r.err)
				}
			}
			c.reason, c.err = reason, r.err.Error()
			continue
		}
		f.met.proofs.WithLabelValues("ok").Inc()
		<-c.done // the loop returns after a success
		delete(f.candidates, r.name)
		p := f.peerFor(c.member.Cluster)
		if p.proven == nil {
			p.proven = make(map[proofKey]string)
		}
		p.proven[c.key] = r.name
		p.identity = r.id.ID.String()
		f.log.Info("gossip member proved its control plane identity: trusted", "member", r.name,
			"identity", p.identity, "addr", c.member.Addr, "catalog", c.member.CatalogAddr, "attempts", c.attempts)
		proven = true
	}
	if proven {
		// Take the proven members' current gossip state at once.
		f.syncMembers(ctx, wg)
	}
	f.countPending()
}

// countPending sets the gauge of members waiting for proof, by reason.
func (f *Federation) countPending() {
	f.met.pending.Reset()
	for _, c := range f.candidates {
		f.met.pending.WithLabelValues(c.reason).Inc()
	}
}

func (f *Federation) stopCandidates() {
	for name := range f.candidates {
		f.dropCandidate(name)
	}
	f.countPending()
}
