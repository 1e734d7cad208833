package kube

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/fedmesh/fedmesh/catalog"
)

// Leader election defaults (those of kube-controller-manager).
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
	// DefaultLeaseName is the Lease the control plane replicas share.
	DefaultLeaseName = "fedmesh-controlplane"
)

// ElectorConfig configures an Elector.
type ElectorConfig struct {
	// Client writes the Lease. Required.
	Client kubernetes.Interface
	// Namespace holds the Lease (the control plane's namespace). Required.
	Namespace string
	// Name is the Lease's name. Default DefaultLeaseName.
	Name string
	// Identity tells the replicas apart (the pod name). Required.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election as in
	// client-go's leaderelection; zero takes the defaults above.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Logger receives the elector's logs. Default slog.Default().
	Logger *slog.Logger
}

// Elector runs a function only while this replica holds the Lease, so that
// of several control plane replicas exactly one writes to the Kubernetes
// API. It uses client-go's leaderelection with a coordination.k8s.io Lease
// and releases the Lease when its context ends.
type Elector struct {
	cfg    ElectorConfig
	log    *slog.Logger
	leader atomic.Bool
}

// NewElector validates cfg and returns an Elector.
func NewElector(cfg ElectorConfig) (*Elector, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("%w: elector needs a Kubernetes client", ErrConfig)
	}
	if why := catalog.IsDNS1123Label(cfg.Namespace); why != "" {
		return nil, fmt.Errorf("%w: lease namespace %q %s", ErrConfig, cfg.Namespace, why)
	}
	if cfg.Identity == "" {
		return nil, fmt.Errorf("%w: elector needs an identity", ErrConfig)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultLeaseName
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = DefaultRenewDeadline
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = DefaultRetryPeriod
	}
	if !(cfg.LeaseDuration > cfg.RenewDeadline && cfg.RenewDeadline > cfg.RetryPeriod && cfg.RetryPeriod > 0) {
		return nil, fmt.Errorf("%w: want lease duration %s > renew deadline %s > retry period %s > 0",
			ErrConfig, cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Elector{cfg: cfg, log: cfg.Logger.With("component", "leader-election", "identity", cfg.Identity)}, nil
}

// IsLeader reports whether this replica holds the Lease now.
func (e *Elector) IsLeader() bool { return e.leader.Load() }

// Run campaigns for the Lease until ctx is done. Each time this replica
// wins, lead runs with a context that is canceled when the Lease is lost;
// Run waits for lead to return before it campaigns again, so two leads of
// one Elector never overlap. Run returns nil when ctx is done.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, e.cfg.Namespace, e.cfg.Name,
		e.cfg.Client.CoreV1(), e.cfg.Client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: e.cfg.Identity})
	if err != nil {
		return fmt.Errorf("leader election lock: %w", err)
	}
	for ctx.Err() == nil {
		// client-go starts OnStartedLeading on a goroutine of its own. The
		// tracking lock tells, once le.Run has returned, whether this
		// campaign won (a write of the Lease with our identity succeeded),
		// and so whether to wait for lead to finish.
		tl := &trackingLock{Interface: lock}
		done := make(chan struct{})
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            tl,
			LeaseDuration:   e.cfg.LeaseDuration,
			RenewDeadline:   e.cfg.RenewDeadline,
			RetryPeriod:     e.cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            e.cfg.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					defer close(done)
					e.leader.Store(true)
					e.log.Info("became the leader")
					lead(lctx)
				},
				OnStoppedLeading: func() {
					if e.leader.Swap(false) {
						e.log.Info("stopped leading")
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(ctx)
		if tl.won.Load() {
			<-done
		}
		e.leader.Store(false)
		if ctx.Err() == nil {
			// The Lease was lost: wait one retry period before the next
			// campaign, so a flapping API server is not hammered.
			t := time.NewTimer(e.cfg.RetryPeriod)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
	return nil
}

// trackingLock records whether a write of the Lease naming this replica
// as the holder succeeded.
type trackingLock struct {
	resourcelock.Interface
	won atomic.Bool
}

func (l *trackingLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, rec)
	if err == nil && rec.HolderIdentity == l.Identity() {
		l.won.Store(true)
	}
	return err
}

func (l *trackingLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, rec)
	if err == nil && rec.HolderIdentity == l.Identity() {
		l.won.Store(true)
	}
	return err
}

// leaseHolder reads who holds the Lease, for tests and status pages.
func leaseHolder(ctx context.Context, c kubernetes.Interface, namespace, name string) (string, error) {
	l, err := c.CoordinationV1().Leases(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}
