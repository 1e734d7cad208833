package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/fedmesh/fedmesh/controlplane/source"
)

// The AuthorizationPolicies and the traffic objects are two families of
// CRD objects read the same way: wait until the API server serves their
// CRDs, follow them with dynamic informers, evaluate the whole family
// after every burst of changes, and replace the set in force whole. A
// refused object keeps its last accepted version; a refusal is counted
// once per object version. crdSet holds one family's state and
// followCRDs runs one family's informers.

// crdResource is one CRD's resource and the kind of its objects.
type crdResource struct {
	kind     string
	resource schema.GroupVersionResource
}

// crdRefusal is one refused object version, for counting once.
type crdRefusal struct {
	uid        types.UID
	generation int64
	kind       string
	reason     source.Reason
	problem    source.Problem
}

// crdEval is what an evaluation makes of one family's cached objects:
// T is the set in force, S an object's status, A an object's last
// accepted version.
type crdEval[T, S, A any] struct {
	// inForce is the set to enforce.
	inForce T
	// statuses are every object's status, sorted.
	statuses []S
	// problems are the refused objects.
	problems []source.Problem
	// lastGood is the last accepted version of every object still
	// present, by UID.
	lastGood map[types.UID]A
	// refused are the refused object versions.
	refused []crdRefusal
}

// crdSet is the Source's view of one family of CRD objects.
type crdSet[T, S, A any] struct {
	mu sync.Mutex // guards the following
	// inForce is the set in force; ready is set after the first complete
	// read; changed is closed (and replaced) when either changes.
	inForce T
	ready   bool
	changed chan struct{}
	// statuses are every object's status; statusChanged is closed (and
	// replaced) when they or the objects change.
	statuses      []S
	statusChanged chan struct{}
	// problems are the refused objects.
	problems []source.Problem
	// lastGood is each object's last accepted version, by UID.
	lastGood map[types.UID]A
	// counted is the generation of each object whose refusal was last
	// counted, so that a refusal is counted once per object version.
	counted map[types.UID]int64
}

func newCRDSet[T, S, A any]() *crdSet[T, S, A] {
	return &crdSet[T, S, A]{
		changed:       make(chan struct{}),
		statusChanged: make(chan struct{}),
		lastGood:      map[types.UID]A{},
		counted:       map[types.UID]int64{},
	}
}

// get returns a copy (made by clone) of the set in force, whether it is
// ready, and a channel closed at the next change of either.
func (c *crdSet[T, S, A]) get(clone func(T) T) (T, bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return clone(c.inForce), c.ready, c.changed
}

// status returns every object's status and a channel closed when they
// change.
func (c *crdSet[T, S, A]) status() ([]S, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.statuses), c.statusChanged
}

// refusedObjects returns the refused objects.
func (c *crdSet[T, S, A]) refusedObjects() []source.Problem {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.problems)
}

// accepted returns each object's last accepted version, which the next
// evaluation starts from. The map is not changed after it is set.
func (c *crdSet[T, S, A]) accepted() map[types.UID]A {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastGood
}

// setEmpty records that no object can exist (a CRD is not served): the
// empty set is in force. isEmpty tells whether a set is empty; onSet is
// called (under the lock) when the set in force changes.
func (c *crdSet[T, S, A]) setEmpty(isEmpty func(T) bool, onSet func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready && isEmpty(c.inForce) {
		return
	}
	var empty T
	c.inForce, c.ready = empty, true
	onSet()
	close(c.changed)
	c.changed = make(chan struct{})
}

// crdApply says how an evaluation is applied: which sets and statuses are
// the same, and what to do when the set in force changes or a refusal is
// seen for the first time. The funcs are called under the set's lock.
type crdApply[T, S any] struct {
	sameSet      func(a, b T) bool
	sameStatuses func(a, b []S) bool
	onInForce    func(set T, refused int)
	onRefused    func(crdRefusal)
}

// apply makes ev the view, in one step: the set in force is replaced
// whole or not at all.
func (c *crdSet[T, S, A]) apply(ev crdEval[T, S, A], how crdApply[T, S]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready || !how.sameSet(c.inForce, ev.inForce) {
		c.inForce, c.ready = ev.inForce, true
		how.onInForce(ev.inForce, len(ev.problems))
		close(c.changed)
		c.changed = make(chan struct{})
	}
	if !how.sameStatuses(c.statuses, ev.statuses) {
		c.statuses = ev.statuses
		close(c.statusChanged)
		c.statusChanged = make(chan struct{})
	}
	c.problems = ev.problems
	c.lastGood = ev.lastGood
	seen := make(map[types.UID]bool, len(ev.refused))
	for _, r := range ev.refused {
		seen[r.uid] = true
		if g, ok := c.counted[r.uid]; ok && g == r.generation {
			continue
		}
		c.counted[r.uid] = r.generation
		how.onRefused(r)
	}
	for uid := range c.counted {
		if !seen[uid] {
			delete(c.counted, uid)
		}
	}
}

// crdFollow is one family's informers: what followCRDs reads and what
// it does with it.
type crdFollow struct {
	// what names the family in logs ("AuthorizationPolicies").
	what string
	// resources are the family's CRDs, in the order they are evaluated.
	resources []crdResource
	// synced report whether the informers the evaluation reads besides
	// the family's own (Services, ServiceImports) have synced.
	synced []cache.InformerSynced
	// events is signalled when one of those informers' objects changes.
	events <-chan struct{}
	// setEmpty is called while a CRD is not served: no object can exist.
	setEmpty func()
	// evaluate is called with the cached objects, by kind, after every
	// burst of changes.
	evaluate func(map[string][]*unstructured.Unstructured)
}

// followCRDs follows one family of objects until ctx is done. It waits
// until the API server serves all their CRDs (until then none can exist,
// so the empty set is in force), then reads them with dynamic informers
// and evaluates them after every burst of changes to one of them or to
// the objects behind f.events.
func (s *Source) followCRDs(ctx context.Context, f crdFollow) error {
	if !s.waitForCRDs(ctx, f) {
		return nil
	}
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(s.cfg.Clients.Dynamic, s.cfg.Resync, s.cfg.Namespace, nil)
	wake := make(chan struct{}, 1)
	infs := make(map[string]cache.SharedIndexInformer, len(f.resources))
	synced := slices.Clone(f.synced)
	for _, r := range f.resources {
		inf := factory.ForResource(r.resource).Informer()
		// Objects are read whole; only their managed fields are dropped.
		// A status update sent from a cached object without them keeps
		// the server's.
		if err := inf.SetTransform(dropManagedFields); err != nil {
			return fmt.Errorf("kube source: %s: %w", r.kind, err)
		}
		if _, err := inf.AddEventHandler(wakeOn(wake)); err != nil {
			return fmt.Errorf("kube source: %s: %w", r.kind, err)
		}
		infs[r.kind] = inf
		synced = append(synced, inf.HasSynced)
	}
	stop := make(chan struct{})
	defer func() {
		close(stop)
		factory.Shutdown()
	}()
	factory.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}
	s.log.Info("caches synced", "objects", f.what)
	signal(wake)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-f.events:
		}
		t := time.NewTimer(s.cfg.Debounce)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		objs := make(map[string][]*unstructured.Unstructured, len(infs))
		for kind, inf := range infs {
			for _, o := range inf.GetStore().List() {
				if u, ok := o.(*unstructured.Unstructured); ok {
					objs[kind] = append(objs[kind], u)
				}
			}
		}
		f.evaluate(objs)
	}
}

func dropManagedFields(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetManagedFields(nil)
	}
	return obj, nil
}

// waitForCRDs returns true once the API server serves all of f's
// resources, false when ctx is done first. While one is not installed
// the objects are not read, and the empty set is in force (deploy/base
// installs them all together). Any other error (such as a missing
// permission) leaves the set not ready, so that the control plane
// enforces nothing it cannot read; it is retried within a second.
func (s *Source) waitForCRDs(ctx context.Context, f crdFollow) bool {
	lastMsg := ""
	for {
		var missing []string
		var other error
		for _, r := range f.resources {
			_, err := s.cfg.Clients.Dynamic.Resource(r.resource).Namespace(s.cfg.Namespace).List(ctx, metav1.ListOptions{Limit: 1})
			switch {
			case err == nil:
			case apierrors.IsNotFound(err):
				missing = append(missing, r.resource.GroupResource().String())
			default:
				other = fmt.Errorf("%s: %w", r.resource.GroupResource(), err)
			}
		}
		if len(missing) == 0 && other == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait := s.cfg.PolicyProbe
		var msg string
		if other != nil {
			msg = other.Error()
			wait = min(wait, time.Second)
		} else {
			msg = strings.Join(missing, ", ")
			f.setEmpty()
		}
		if msg != lastMsg {
			lastMsg = msg
			if other != nil {
				s.log.Warn("cannot list "+f.what+": they stay unread, and what they govern waits; retrying", "err", other)
			} else {
				s.log.Warn("the API server does not serve the CRDs of "+f.what+" (is deploy/base/crds installed?): none is in force; asking again",
					"missing", msg, "every", s.cfg.PolicyProbe)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}
