package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
	mcsinformers "sigs.k8s.io/mcs-api/pkg/client/informers/externalversions"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/clusterset"
)

// ValidityReporter tells the Valid condition of every local ServiceExport
// and wakes the caller when it changes. *Source implements it. Validity is
// called from the sink's goroutine.
type ValidityReporter interface {
	Validity() (map[catalog.ServiceKey]Validity, <-chan struct{})
}

var _ ValidityReporter = (*Source)(nil)

// Sink defaults.
const (
	// DefaultMinRetry and DefaultMaxRetry bound the backoff after a failed
	// reconciliation.
	DefaultMinRetry = 100 * time.Millisecond
	DefaultMaxRetry = 30 * time.Second
)

// SinkConfig configures a Sink.
type SinkConfig struct {
	// Clients reach the local cluster's API server. Required.
	Clients Clients
	// Cluster is this cluster's name; its ServiceExports get the Conflict
	// conditions the view records about its exports. Required.
	Cluster string
	// Namespace limits the sink to one namespace; empty means all.
	Namespace string
	// ClusterSetPrefix is the CIDR the ServiceImports' ClusterSetIPs
	// (spec.ips) are allocated from (package clusterset); it must be the
	// same in every cluster. Zero means clusterset.DefaultPrefix.
	ClusterSetPrefix netip.Prefix
	// Validity, when set, gives the ServiceExports their Valid condition.
	Validity ValidityReporter
	// Policies, when set, gives every AuthorizationPolicy its Accepted
	// and ResolvedRefs conditions (written with Clients.Dynamic, which
	// is then required).
	Policies PolicyStatusReporter
	// Traffic, when set, gives every HTTPRoute and GRPCRoute its
	// status.parents entries (controller ControllerName) and every
	// ResiliencePolicy and FaultInjection its conditions (written with
	// Clients.Dynamic, which is then required).
	Traffic TrafficStatusReporter
	// Elector, when set, lets the sink write only while this replica is
	// the leader. Nil writes always (one replica).
	Elector *Elector
	// MinRetry and MaxRetry bound the backoff after a failed
	// reconciliation; zero takes DefaultMinRetry and DefaultMaxRetry.
	MinRetry, MaxRetry time.Duration
	// Logger receives the sink's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer registers the sink's metrics; nil leaves them
	// unregistered.
	Registerer prometheus.Registerer
}

// Sink writes the merged federation view into the local cluster:
// ServiceImports with their EndpointSlices, owned by the ServiceImport and
// labelled multicluster.kubernetes.io/service-name and source-cluster, and
// the Valid and Conflict conditions of the local ServiceExports. A
// ServiceImport whose service leaves the view (no cluster exports it any
// more) is deleted with its slices. Update may be called from any
// goroutine; Run drives the writes.
type Sink struct {
	cfg     SinkConfig
	log     *slog.Logger
	met     *sinkMetrics
	started atomic.Bool

	wake chan struct{} // cap 1
	mu   sync.Mutex    // guards view
	view *catalog.View

	// policyWritten is, per AuthorizationPolicy UID, the resourceVersion
	// its last successful status write was based on. Used by lead's
	// goroutine only; reset at each lead.
	policyWritten map[types.UID]string
	// trafficWritten is the same for the traffic objects.
	trafficWritten map[types.UID]string
}

// NewSink validates cfg and returns a Sink; Run starts it.
func NewSink(cfg SinkConfig) (*Sink, error) {
	if err := cfg.Clients.validate(); err != nil {
		return nil, err
	}
	if why := catalog.IsDNS1123Label(cfg.Cluster); why != "" {
		return nil, fmt.Errorf("%w: cluster %q %s", ErrConfig, cfg.Cluster, why)
	}
	if cfg.Policies != nil && cfg.Clients.Dynamic == nil {
		return nil, fmt.Errorf("%w: the sink writes AuthorizationPolicy status with a dynamic client, and has none", ErrConfig)
	}
	if cfg.Traffic != nil && cfg.Clients.Dynamic == nil {
		return nil, fmt.Errorf("%w: the sink writes route and traffic policy status with a dynamic client, and has none", ErrConfig)
	}
	if !cfg.ClusterSetPrefix.IsValid() {
		cfg.ClusterSetPrefix = clusterset.DefaultPrefix
	}
	if err := clusterset.CheckPrefix(cfg.ClusterSetPrefix); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cfg.MinRetry == 0 {
		cfg.MinRetry = DefaultMinRetry
	}
	if cfg.MaxRetry == 0 {
		cfg.MaxRetry = DefaultMaxRetry
	}
	if cfg.MinRetry < 0 || cfg.MaxRetry < cfg.MinRetry {
		return nil, fmt.Errorf("%w: retry bounds %s..%s", ErrConfig, cfg.MinRetry, cfg.MaxRetry)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	met, err := newSinkMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Sink{
		cfg:  cfg,
		log:  cfg.Logger.With("component", "kube-sink", "cluster", cfg.Cluster),
		met:  met,
		wake: make(chan struct{}, 1),
	}, nil
}

// Update hands the sink a new view. It never blocks; the sink writes the
// newest view it has.
func (s *Sink) Update(v *catalog.View) {
	s.mu.Lock()
	s.view = v
	s.mu.Unlock()
	signal(s.wake)
}

// Follow feeds the sink every view from views until the channel closes or
// ctx is done (views is what federation.Subscribe returns).
func (s *Sink) Follow(ctx context.Context, views <-chan *catalog.View) {
	for {
		select {
		case <-ctx.Done():
			return
		case v, ok := <-views:
			if !ok {
				return
			}
			s.Update(v)
		}
	}
}

// Run writes until ctx is done. With an Elector it writes only while
// leading, and stops writing the moment the Lease is lost.
func (s *Sink) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("kube sink: Run called twice")
	}
	if s.cfg.Elector == nil {
		return s.lead(ctx)
	}
	var leadErr error
	err := s.cfg.Elector.Run(ctx, func(lctx context.Context) {
		s.met.leader.Set(1)
		s.met.transitions.Inc()
		defer s.met.leader.Set(0)
		if err := s.lead(lctx); err != nil {
			leadErr = err
		}
	})
	return errors.Join(err, leadErr)
}

// sinkListers read the informers' caches.
type sinkListers struct {
	imports func(ns, name string) (*mcsv1alpha1.ServiceImport, bool)
	allImps func() ([]*mcsv1alpha1.ServiceImport, error)
	slice   func(ns, name string) (*discoveryv1.EndpointSlice, bool)
	slices  func() ([]*discoveryv1.EndpointSlice, error)
	exports func() ([]*mcsv1alpha1.ServiceExport, error)
}

// lead runs the informers of what the sink writes and reconciles on every
// change of the view, the validity or those objects, retrying failures
// with backoff, until ctx is done.
func (s *Sink) lead(ctx context.Context) error {
	managed := func(o *metav1.ListOptions) { o.LabelSelector = LabelManagedBy + "=" + ManagedBy }
	managedSlices := func(o *metav1.ListOptions) {
		o.LabelSelector = discoveryv1.LabelManagedBy + "=" + SliceManagedBy
	}
	kf := informers.NewSharedInformerFactoryWithOptions(s.cfg.Clients.Kube, 0,
		informers.WithNamespace(s.cfg.Namespace), informers.WithTweakListOptions(managedSlices))
	mfManaged := mcsinformers.NewSharedInformerFactoryWithOptions(s.cfg.Clients.MCS, 0,
		mcsinformers.WithNamespace(s.cfg.Namespace), mcsinformers.WithTweakListOptions(managed))
	mfAll := mcsinformers.NewSharedInformerFactoryWithOptions(s.cfg.Clients.MCS, 0, mcsinformers.WithNamespace(s.cfg.Namespace))
	siInf := mfManaged.Multicluster().V1alpha1().ServiceImports()
	esInf := kf.Discovery().V1().EndpointSlices()
	seInf := mfAll.Multicluster().V1alpha1().ServiceExports()

	kick := make(chan struct{}, 1)
	poke := wakeOn(kick)
	for _, inf := range []cache.SharedIndexInformer{siInf.Informer(), esInf.Informer(), seInf.Informer()} {
		if _, err := inf.AddEventHandler(poke); err != nil {
			return fmt.Errorf("kube sink: %w", err)
		}
	}
	stop := make(chan struct{})
	defer func() {
		close(stop)
		kf.Shutdown()
		mfManaged.Shutdown()
		mfAll.Shutdown()
	}()
	kf.Start(stop)
	mfManaged.Start(stop)
	mfAll.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), siInf.Informer().HasSynced, esInf.Informer().HasSynced, seInf.Informer().HasSynced) {
		return nil
	}
	l := sinkListers{
		imports: func(ns, name string) (*mcsv1alpha1.ServiceImport, bool) {
			si, err := siInf.Lister().ServiceImports(ns).Get(name)
			return si, err == nil
		},
		allImps: func() ([]*mcsv1alpha1.ServiceImport, error) { return siInf.Lister().List(labels.Everything()) },
		slice: func(ns, name string) (*discoveryv1.EndpointSlice, bool) {
			es, err := esInf.Lister().EndpointSlices(ns).Get(name)
			return es, err == nil
		},
		slices:  func() ([]*discoveryv1.EndpointSlice, error) { return esInf.Lister().List(labels.Everything()) },
		exports: func() ([]*mcsv1alpha1.ServiceExport, error) { return seInf.Lister().List(labels.Everything()) },
	}
	s.log.Info("writing ServiceImports")
	s.policyWritten = map[types.UID]string{}
	s.trafficWritten = map[types.UID]string{}

	// MinRetry, doubling up to MaxRetry, without jitter; reset after a
	// reconciliation that succeeds.
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(s.cfg.MinRetry),
		backoff.WithMaxInterval(s.cfg.MaxRetry),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0),
	)
	retryTimer := time.NewTimer(time.Hour)
	retryTimer.Stop()
	defer retryTimer.Stop()
	var retry <-chan time.Time
	var validityChanged, policiesChanged, trafficChanged <-chan struct{}
	for {
		var validity map[catalog.ServiceKey]Validity
		if s.cfg.Validity != nil {
			validity, validityChanged = s.cfg.Validity.Validity()
		}
		var policies []PolicyStatus
		if s.cfg.Policies != nil {
			policies, policiesChanged = s.cfg.Policies.PolicyStatus()
		}
		var traffic []TrafficStatus
		if s.cfg.Traffic != nil {
			traffic, trafficChanged = s.cfg.Traffic.TrafficStatus()
		}
		s.mu.Lock()
		view := s.view
		s.mu.Unlock()
		if err := s.reconcile(ctx, l, view, validity, policies, traffic); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			delay := bo.NextBackOff()
			s.log.Warn("reconcile failed; retrying", "err", err, "retry_in", delay)
			retryTimer.Reset(delay)
			retry = retryTimer.C
		} else {
			retryTimer.Stop()
			retry = nil
			bo.Reset()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-kick:
		case <-validityChanged:
		case <-policiesChanged:
		case <-trafficChanged:
		case <-retry:
		}
	}
}

// reconcile makes the cluster match the view, the validity, the
// policies' conditions and the traffic objects' status. It goes on past
// failures and returns them joined.
func (s *Sink) reconcile(ctx context.Context, l sinkListers, view *catalog.View, validity map[catalog.ServiceKey]Validity, policies []PolicyStatus, traffic []TrafficStatus) error {
	s.met.reconciles.Inc()
	var errs []error
	if view != nil {
		errs = append(errs, s.reconcileImports(ctx, l, view)...)
	}
	errs = append(errs, s.reconcileExportStatus(ctx, l, view, validity)...)
	errs = append(errs, s.reconcilePolicyStatus(ctx, policies)...)
	errs = append(errs, s.reconcileTrafficStatus(ctx, traffic)...)
	return errors.Join(errs...)
}

func (s *Sink) reconcileImports(ctx context.Context, l sinkListers, view *catalog.View) []error {
	var errs []error
	want := DesiredImports(view, s.cfg.ClusterSetPrefix)
	wantImports := map[types.NamespacedName]bool{}
	wantSlices := map[types.NamespacedName]bool{}
	for _, imp := range want {
		si := imp.ServiceImport
		key := types.NamespacedName{Namespace: si.Namespace, Name: si.Name}
		wantImports[key] = true
		for _, es := range imp.Slices {
			wantSlices[types.NamespacedName{Namespace: es.Namespace, Name: es.Name}] = true
		}
		if s.cfg.Namespace != "" && si.Namespace != s.cfg.Namespace {
			continue
		}
		owner, err := s.applyImport(ctx, l, si)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, es := range imp.Slices {
			es.OwnerReferences = []metav1.OwnerReference{{
				APIVersion: mcsv1alpha1.SchemeGroupVersion.String(),
				Kind:       mcsv1alpha1.ServiceImportKindName,
				Name:       owner.Name,
				UID:        owner.UID,
				Controller: ptr(true),
			}}
			if err := s.applySlice(ctx, l, es); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Delete what no cluster exports any more. Without a garbage collector
	// (or before it runs) the slices would outlive their ServiceImport, so
	// they are deleted too.
	slices, err := l.slices()
	if err != nil {
		errs = append(errs, err)
	}
	for _, es := range slices {
		if es.Labels[discoveryv1.LabelManagedBy] != SliceManagedBy {
			continue // never touch what fedmesh did not write
		}
		if wantSlices[types.NamespacedName{Namespace: es.Namespace, Name: es.Name}] {
			continue
		}
		err := s.cfg.Clients.Kube.DiscoveryV1().EndpointSlices(es.Namespace).Delete(ctx, es.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &es.UID}})
		if s.wrote("EndpointSlice", "delete", err) != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete EndpointSlice %s/%s: %w", es.Namespace, es.Name, err))
		}
	}
	imps, err := l.allImps()
	if err != nil {
		errs = append(errs, err)
	}
	kept := 0
	for _, si := range imps {
		if si.Labels[LabelManagedBy] != ManagedBy {
			continue
		}
		if wantImports[types.NamespacedName{Namespace: si.Namespace, Name: si.Name}] {
			kept++
			continue
		}
		err := s.cfg.Clients.MCS.MulticlusterV1alpha1().ServiceImports(si.Namespace).Delete(ctx, si.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &si.UID}})
		if s.wrote("ServiceImport", "delete", err) != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete ServiceImport %s/%s: %w", si.Namespace, si.Name, err))
		} else {
			s.log.Info("service import deleted: no cluster exports it", "service", si.Namespace+"/"+si.Name)
		}
	}
	s.met.imports.Set(float64(kept))
	return errs
}

// applyImport creates or updates one ServiceImport and its status and
// returns the object as the API server has it.
func (s *Sink) applyImport(ctx context.Context, l sinkListers, want *mcsv1alpha1.ServiceImport) (*mcsv1alpha1.ServiceImport, error) {
	c := s.cfg.Clients.MCS.MulticlusterV1alpha1().ServiceImports(want.Namespace)
	name := want.Namespace + "/" + want.Name
	cur, ok := l.imports(want.Namespace, want.Name)
	if !ok {
		obj := want.DeepCopy()
		obj.Status = mcsv1alpha1.ServiceImportStatus{}
		created, err := c.Create(ctx, obj, metav1.CreateOptions{})
		if s.wrote("ServiceImport", "create", err) != nil {
			return nil, fmt.Errorf("create ServiceImport %s: %w", name, err)
		}
		s.log.Info("service import created", "service", name, "clusters", len(want.Status.Clusters))
		cur = created
	} else if !reflect.DeepEqual(cur.Spec, want.Spec) || cur.Labels[LabelManagedBy] != ManagedBy {
		obj := cur.DeepCopy()
		obj.Spec = want.Spec
		if obj.Labels == nil {
			obj.Labels = map[string]string{}
		}
		obj.Labels[LabelManagedBy] = ManagedBy
		updated, err := c.Update(ctx, obj, metav1.UpdateOptions{})
		if s.wrote("ServiceImport", "update", err) != nil {
			return nil, fmt.Errorf("update ServiceImport %s: %w", name, err)
		}
		cur = updated
	}
	status := cur.Status.DeepCopy()
	changed := !reflect.DeepEqual(status.Clusters, want.Status.Clusters)
	status.Clusters = want.Status.Clusters
	if mergeConditions(&status.Conditions, want.Status.Conditions, cur.Generation) {
		changed = true
	}
	if !changed {
		return cur, nil
	}
	obj := cur.DeepCopy()
	obj.Status = *status
	updated, err := c.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	if s.wrote("ServiceImport", "update_status", err) != nil {
		return nil, fmt.Errorf("update status of ServiceImport %s: %w", name, err)
	}
	return updated, nil
}

func (s *Sink) applySlice(ctx context.Context, l sinkListers, want *discoveryv1.EndpointSlice) error {
	c := s.cfg.Clients.Kube.DiscoveryV1().EndpointSlices(want.Namespace)
	name := want.Namespace + "/" + want.Name
	cur, ok := l.slice(want.Namespace, want.Name)
	if !ok {
		_, err := c.Create(ctx, want, metav1.CreateOptions{})
		if s.wrote("EndpointSlice", "create", err) != nil {
			return fmt.Errorf("create EndpointSlice %s: %w", name, err)
		}
		return nil
	}
	if reflect.DeepEqual(cur.Endpoints, want.Endpoints) && reflect.DeepEqual(cur.Ports, want.Ports) &&
		reflect.DeepEqual(cur.Labels, want.Labels) && reflect.DeepEqual(cur.OwnerReferences, want.OwnerReferences) &&
		cur.AddressType == want.AddressType {
		return nil
	}
	obj := cur.DeepCopy()
	obj.Labels, obj.OwnerReferences = want.Labels, want.OwnerReferences
	obj.Endpoints, obj.Ports = want.Endpoints, want.Ports
	_, err := c.Update(ctx, obj, metav1.UpdateOptions{})
	if s.wrote("EndpointSlice", "update", err) != nil {
		return fmt.Errorf("update EndpointSlice %s: %w", name, err)
	}
	return nil
}

// reconcileExportStatus writes the Valid and Conflict conditions of every
// local ServiceExport.
func (s *Sink) reconcileExportStatus(ctx context.Context, l sinkListers, view *catalog.View, validity map[catalog.ServiceKey]Validity) []error {
	ses, err := l.exports()
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, se := range ses {
		k := catalog.ServiceKey{Namespace: se.Namespace, Name: se.Name}
		var vp *Validity
		if v, ok := validity[k]; ok {
			vp = &v
		}
		want := ExportConditions(view, s.cfg.Cluster, k, vp)
		conds := append([]metav1.Condition(nil), se.Status.Conditions...)
		if !mergeConditions(&conds, want, se.Generation) {
			continue
		}
		obj := se.DeepCopy()
		obj.Status.Conditions = conds
		_, err := s.cfg.Clients.MCS.MulticlusterV1alpha1().ServiceExports(se.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
		if s.wrote("ServiceExport", "update_status", err) != nil {
			errs = append(errs, fmt.Errorf("update status of ServiceExport %s: %w", k, err))
		}
	}
	return errs
}

// wrote counts one write and its failure reason, and returns err.
func (s *Sink) wrote(kind, op string, err error) error {
	if err == nil {
		s.met.writes.WithLabelValues(kind, op).Inc()
		return nil
	}
	reason := SinkErrOther
	switch {
	case apierrors.IsNotFound(err) && op == "create":
		reason = SinkErrNamespaceMissing
	case apierrors.IsNotFound(err) && op == "delete":
		return err // already gone: not a failure worth counting
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		reason = SinkErrConflict
	case apierrors.IsForbidden(err):
		reason = SinkErrForbidden
	case apierrors.IsInvalid(err):
		reason = SinkErrInvalid
	}
	s.met.errors.WithLabelValues(reason).Inc()
	return err
}
