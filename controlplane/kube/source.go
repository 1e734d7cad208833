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

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
	mcsinformers "sigs.k8s.io/mcs-api/pkg/client/informers/externalversions"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/topology"
)

// ErrConfig is wrapped by every configuration error of this package.
var ErrConfig = errors.New("invalid kube config")

// DefaultDebounce is how long the source gathers informer events before it
// rebuilds the exports.
const DefaultDebounce = 50 * time.Millisecond

// SourceConfig configures a Source.
type SourceConfig struct {
	// Clients reach the local cluster's API server. Required.
	Clients Clients
	// Cluster is this cluster's name, a DNS-1123 label. Required.
	Cluster string
	// Region and Zone are the defaults for endpoints whose node carries no
	// topology.kubernetes.io/region or zone label.
	Region, Zone string
	// Namespace limits the source to one namespace; empty watches all.
	Namespace string
	// Debounce is how long events are gathered before a rebuild. Default
	// DefaultDebounce.
	Debounce time.Duration
	// Resync is the informers' resync period; zero disables resyncs.
	Resync time.Duration
	// PolicyProbe is how often the source asks again whether the API
	// server serves the AuthorizationPolicy CRD, or the traffic CRDs
	// (HTTPRoute, GRPCRoute, ResiliencePolicy, FaultInjection), while it
	// does not. Default DefaultPolicyProbe.
	PolicyProbe time.Duration
	// Now tells the time for ServiceExports without a creation time;
	// default time.Now.
	Now func() time.Time
	// Logger receives the source's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer registers the source's metrics; nil leaves them
	// unregistered.
	Registerer prometheus.Registerer
}

func (c SourceConfig) withDefaults() (SourceConfig, error) {
	if err := c.Clients.validate(); err != nil {
		return c, err
	}
	if why := catalog.IsDNS1123Label(c.Cluster); why != "" {
		return c, fmt.Errorf("%w: cluster %q %s", ErrConfig, c.Cluster, why)
	}
	if c.Debounce == 0 {
		c.Debounce = DefaultDebounce
	}
	if c.PolicyProbe == 0 {
		c.PolicyProbe = DefaultPolicyProbe
	}
	if c.Debounce < 0 || c.Resync < 0 || c.PolicyProbe < 0 {
		return c, fmt.Errorf("%w: negative debounce, resync or policy probe", ErrConfig)
	}
	if c.Clients.Dynamic == nil {
		return c, fmt.Errorf("%w: no dynamic client (the source reads AuthorizationPolicies and the traffic objects with it)", ErrConfig)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Source reads a Kubernetes cluster through shared informers and produces
// the cluster's exports. It implements source.Source,
// source.PolicySource with the cluster's AuthorizationPolicies
// (policysource.go), and source.TrafficSource with its HTTPRoutes,
// GRPCRoutes, ResiliencePolicies and FaultInjections (trafficsource.go).
// Problems, Validity, AuthorizationPolicies, PolicyStatus, Traffic and
// TrafficStatus may be called from any goroutine.
type Source struct {
	cfg     SourceConfig
	log     *slog.Logger
	met     *sourceMetrics
	pol     *policyState
	traffic *trafficState
	started atomic.Bool
	// pods reads the Pod informer's cache once it has synced; nil
	// before and after Run.
	pods atomic.Pointer[func(namespace, name string) (*corev1.Pod, bool)]

	mu sync.Mutex // guards the following
	// problems is the last build's list of rejected objects.
	problems []source.Problem
	// validity is the Valid condition of every ServiceExport.
	validity map[catalog.ServiceKey]Validity
	// changed is closed and replaced when validity changes.
	changed chan struct{}
	// firstSeen remembers when an export without a creation time was seen.
	firstSeen map[catalog.ServiceKey]time.Time
}

var _ source.Source = (*Source)(nil)

// NewSource validates cfg and returns a Source; Run starts it.
func NewSource(cfg SourceConfig) (*Source, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	met, err := newSourceMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	pol, err := newPolicyState(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	traffic, err := newTrafficState(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Source{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "kube-source", "cluster", cfg.Cluster),
		met:       met,
		pol:       pol,
		traffic:   traffic,
		validity:  map[catalog.ServiceKey]Validity{},
		changed:   make(chan struct{}),
		firstSeen: map[catalog.ServiceKey]time.Time{},
	}, nil
}

// listers are the informers' caches the source builds from.
type listers struct {
	services func() ([]*corev1.Service, error)
	slices   func() ([]*discoveryv1.EndpointSlice, error)
	exports  func() ([]*mcsv1alpha1.ServiceExport, error)
	pods     func(namespace, name string) (*corev1.Pod, bool)
	nodes    func(name string) (*corev1.Node, bool)
}

// Run starts the informers, waits for their caches, and calls update with
// the exports after the first full read and after every change, until ctx
// is done. It stops every informer goroutine before it returns.
func (s *Source) Run(ctx context.Context, update func([]catalog.Export)) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("kube source: Run called twice")
	}
	kf := informers.NewSharedInformerFactoryWithOptions(s.cfg.Clients.Kube, s.cfg.Resync, informers.WithNamespace(s.cfg.Namespace))
	mf := mcsinformers.NewSharedInformerFactoryWithOptions(s.cfg.Clients.MCS, s.cfg.Resync, mcsinformers.WithNamespace(s.cfg.Namespace))
	svcInf := kf.Core().V1().Services()
	sliceInf := kf.Discovery().V1().EndpointSlices()
	podInf := kf.Core().V1().Pods()
	nodeInf := kf.Core().V1().Nodes()
	seInf := mf.Multicluster().V1alpha1().ServiceExports()
	// Routes and ResiliencePolicies name ServiceImports (written by the
	// sink) as backends and targets.
	siInf := mf.Multicluster().V1alpha1().ServiceImports()

	// Pods are many and large; keep only what the exports need.
	if err := podInf.Informer().SetTransform(slimPod); err != nil {
		return fmt.Errorf("kube source: %w", err)
	}
	wake := make(chan struct{}, 1)
	poke := wakeOn(wake)
	for _, inf := range []cache.SharedIndexInformer{svcInf.Informer(), sliceInf.Informer(), podInf.Informer(), nodeInf.Informer(), seInf.Informer()} {
		if _, err := inf.AddEventHandler(poke); err != nil {
			return fmt.Errorf("kube source: %w", err)
		}
	}
	// AuthorizationPolicies resolve their targetRefs to Services.
	svcWake := make(chan struct{}, 1)
	if _, err := svcInf.Informer().AddEventHandler(wakeOn(svcWake)); err != nil {
		return fmt.Errorf("kube source: %w", err)
	}
	// The traffic objects resolve their backends and targets to Services
	// and ServiceImports.
	trafficWake := make(chan struct{}, 1)
	for _, inf := range []cache.SharedIndexInformer{svcInf.Informer(), siInf.Informer()} {
		if _, err := inf.AddEventHandler(wakeOn(trafficWake)); err != nil {
			return fmt.Errorf("kube source: %w", err)
		}
	}

	stop := make(chan struct{})
	defer func() {
		close(stop)
		kf.Shutdown()
		mf.Shutdown()
	}()
	kf.Start(stop)
	mf.Start(stop)

	// The policies and the traffic objects are read on goroutines of
	// their own, so that exports flow even while their CRDs are missing.
	// They are stopped and waited for before the informers shut down.
	pctx, pcancel := context.WithCancel(ctx)
	policyDone, trafficDone := make(chan struct{}), make(chan struct{})
	var policyErr, trafficErr error // set before policyDone, trafficDone are closed
	defer func() {
		pcancel()
		<-policyDone
		<-trafficDone
	}()
	serviceExists := func(ns, name string) bool {
		_, err := svcInf.Lister().Services(ns).Get(name)
		return err == nil
	}
	go func() {
		defer close(policyDone)
		policyErr = s.runPolicies(pctx, svcInf.Informer().HasSynced, serviceExists, svcWake)
	}()
	go func() {
		defer close(trafficDone)
		trafficErr = s.runTraffic(pctx, trafficDeps{
			synced: []cache.InformerSynced{svcInf.Informer().HasSynced, siInf.Informer().HasSynced},
			refs: trafficRefs{
				service: serviceExists,
				serviceImport: func(ns, name string) bool {
					_, err := siInf.Lister().ServiceImports(ns).Get(name)
					return err == nil
				},
			},
			events: trafficWake,
		})
	}()
	policyStopped := policyDone // nil once seen, so the loop does not spin
	trafficStopped := trafficDone
	synced := make(chan bool, 1)
	go func() {
		ok := cache.WaitForCacheSync(ctx.Done(), svcInf.Informer().HasSynced, sliceInf.Informer().HasSynced,
			podInf.Informer().HasSynced, nodeInf.Informer().HasSynced, seInf.Informer().HasSynced)
		synced <- ok
	}()
	if !<-synced {
		return nil // ctx done before the caches filled
	}
	s.log.Info("informer caches synced")

	l := listers{
		services: func() ([]*corev1.Service, error) { return svcInf.Lister().List(labels.Everything()) },
		slices:   func() ([]*discoveryv1.EndpointSlice, error) { return sliceInf.Lister().List(labels.Everything()) },
		exports:  func() ([]*mcsv1alpha1.ServiceExport, error) { return seInf.Lister().List(labels.Everything()) },
		pods: func(ns, name string) (*corev1.Pod, bool) {
			p, err := podInf.Lister().Pods(ns).Get(name)
			return p, err == nil
		},
		nodes: func(name string) (*corev1.Node, bool) {
			n, err := nodeInf.Lister().Get(name)
			return n, err == nil
		},
	}

	s.pods.Store(&l.pods)
	defer s.pods.Store(nil)

	var last []catalog.Export
	first := true
	signal(wake)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-policyStopped:
			if policyErr != nil {
				return policyErr
			}
			policyStopped = nil
		case <-trafficStopped:
			if trafficErr != nil {
				return trafficErr
			}
			trafficStopped = nil
		case <-wake:
		}
		// Gather a burst of events into one build.
		t := time.NewTimer(s.cfg.Debounce)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		exports, err := s.rebuild(l)
		if err != nil {
			s.log.Warn("listing from the informer caches failed", "err", err)
			continue
		}
		if !first && reflect.DeepEqual(exports, last) {
			continue
		}
		first = false
		last = exports
		update(cloneExports(exports))
	}
}

// PodAddress returns the IP (status.podIP) and ServiceAccount of the pod
// namespace/name as the Pod informer's cache has them, for the web view,
// which reads a sidecar at its pod's address. ok is false while Run has
// not synced its caches or has returned, for a pod the cache does not
// hold (outside SourceConfig.Namespace, or deleted) and for a pod
// without an IP. Safe from any goroutine.
func (s *Source) PodAddress(namespace, name string) (ip netip.Addr, serviceAccount string, ok bool) {
	get := s.pods.Load()
	if get == nil {
		return netip.Addr{}, "", false
	}
	p, found := (*get)(namespace, name)
	if !found {
		return netip.Addr{}, "", false
	}
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil {
		return netip.Addr{}, "", false
	}
	return ip.Unmap(), p.Spec.ServiceAccountName, true
}

// slimPod drops everything from a Pod but its name, namespace, service
// account, node and IP.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: p.Labels,
		},
		Spec:   corev1.PodSpec{ServiceAccountName: p.Spec.ServiceAccountName, NodeName: p.Spec.NodeName},
		Status: corev1.PodStatus{PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}, nil
}

// wakeOn is an informer event handler that signals ch on every add,
// update and delete.
func wakeOn(ch chan struct{}) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { signal(ch) },
		UpdateFunc: func(any, any) { signal(ch) },
		DeleteFunc: func(any) { signal(ch) },
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func cloneExports(in []catalog.Export) []catalog.Export {
	out := make([]catalog.Export, len(in))
	for i, e := range in {
		e.Service.Ports = append([]catalog.Port(nil), e.Service.Ports...)
		e.Endpoints = append([]catalog.Endpoint(nil), e.Endpoints...)
		out[i] = e
	}
	return out
}

// rebuild lists the caches, builds the exports and records the problems and
// every ServiceExport's validity.
func (s *Source) rebuild(l listers) ([]catalog.Export, error) {
	svcs, err := l.services()
	if err != nil {
		return nil, err
	}
	slices, err := l.slices()
	if err != nil {
		return nil, err
	}
	ses, err := l.exports()
	if err != nil {
		return nil, err
	}
	in := Input{Services: svcs, EndpointSlices: slices, ServiceExports: ses, Pod: l.pods, Node: l.nodes}
	s.mu.Lock()
	firstSeen := func(k catalog.ServiceKey) time.Time {
		if t, ok := s.firstSeen[k]; ok {
			return t
		}
		t := s.cfg.Now().UTC()
		s.firstSeen[k] = t
		return t
	}
	res := Build(&in, topology.Locality{Region: s.cfg.Region, Zone: s.cfg.Zone, Cluster: s.cfg.Cluster}, firstSeen)
	s.problems = res.Problems
	if !reflect.DeepEqual(res.Validity, s.validity) {
		s.validity = res.Validity
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()

	for _, p := range res.Problems {
		s.met.rejected.WithLabelValues(string(p.Reason)).Inc()
		s.log.Debug("object rejected", "problem", p.Error())
	}
	s.met.builds.Inc()
	s.met.exports.Set(float64(len(res.Exports)))
	return res.Exports, nil
}

// Problems returns what the last build rejected, each object with the
// reason, then the refused AuthorizationPolicies and traffic objects. The
// control plane shows them on /debug/source.
func (s *Source) Problems() []source.Problem {
	s.mu.Lock()
	out := append([]source.Problem(nil), s.problems...)
	s.mu.Unlock()
	out = append(out, s.policyProblems()...)
	return append(out, s.trafficProblems()...)
}

// Validity returns the Valid condition of every ServiceExport the last
// build saw, and a channel that is closed when that changes. It implements
// ValidityReporter.
func (s *Source) Validity() (map[catalog.ServiceKey]Validity, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[catalog.ServiceKey]Validity, len(s.validity))
	for k, v := range s.validity {
		out[k] = v
	}
	return out, s.changed
}
