package sim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"syscall"
	"time"

	"github.com/fedmesh/fedmesh/federation/membership"
)

// Defaults.
const (
	DefaultServices      = 100
	DefaultEndpoints     = 1
	DefaultChurnRate     = 5.0
	DefaultChanges       = 50
	DefaultFencePeriod   = 5 * time.Second
	DefaultIdleWindow    = 10 * time.Second
	DefaultPhaseTimeout  = 10 * time.Minute
	DefaultStartParallel = 4
	// MaxClusters bounds one run: the loopback block has room for more,
	// the machine does not.
	MaxClusters = 5000
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid sim config")

// Config configures one simulated federation run.
type Config struct {
	// Clusters is how many control planes run, at least 2.
	Clusters int
	// Services is how many services every cluster exports (the same
	// names in every cluster, so each service of the merged view has an
	// endpoint set from every cluster). Default DefaultServices.
	Services int
	// Consume, if between 0 and 1, is the share of the services every
	// cluster's workloads consume, and so its import scope
	// (federation.Config.ImportScope): cluster i consumes
	// ceil(Consume*Services) services from svc-(i mod Services) on, and
	// replicates, merges and persists only those of its peers. A change
	// is followed at the clusters that consume its service. 0 or 1:
	// every cluster consumes every service (no scope).
	Consume float64
	// Endpoints is how many endpoints every cluster has per service.
	// Default DefaultEndpoints.
	Endpoints int
	// ChurnRate is how many endpoint changes per second the sources make
	// across the federation during the churn phase. Default
	// DefaultChurnRate.
	ChurnRate float64
	// Changes is how many changes the churn phase makes, each one
	// endpoint of one service in one cluster turning unready, watched
	// for at every other cluster. At most Clusters*Services. Default
	// DefaultChanges.
	Changes int
	// Profile is the gossip profile of every control plane. Default
	// membership.ProfileWAN, the control plane's: the most tolerant of
	// a machine shared by many control planes.
	Profile membership.Profile
	// FencePeriod is every federation's fence period. Default
	// DefaultFencePeriod.
	FencePeriod time.Duration
	// JoinWave, when above 0 and below Clusters, joins the clusters in
	// waves of that many, each once the clusters before it have formed
	// (every view holds every joined cluster), as a federation grows:
	// then membership convergence and catalog sync are those of the last
	// wave, joining a federation of the others, and Result.Formation is
	// the whole. 0 joins every cluster at once.
	JoinWave int
	// TimeoutScale stretches the control planes' timeouts that assume a
	// CPU of their own: a membership proof's handshake, a catalog's dial
	// and keepalive, a write to the local etcd and the exports lease's
	// TTL. N control planes on one machine get cores/N of it each, and
	// a handshake that takes milliseconds on a machine of its own waits
	// seconds for the CPU here: cut short at 5 s and sent again, the
	// work is lost and the federation never forms. Not stretched: the
	// fence period, debounce and gossip timings, which the figures
	// measure. Default AutoTimeoutScale; 1 keeps the control plane's
	// defaults.
	TimeoutScale float64
	// IdleWindow is how long the federation is measured at rest, after
	// it has synced and before the churn. Default DefaultIdleWindow.
	IdleWindow time.Duration
	// PhaseTimeout bounds each phase (start, convergence, churn,
	// fencing). Default DefaultPhaseTimeout.
	PhaseTimeout time.Duration
	// StartParallel is how many control planes one host starts at once.
	// Default DefaultStartParallel.
	StartParallel int
	// Workers is how many processes host the control planes; 1 runs
	// them all in this process. One process holds both ends of every
	// catalog connection of its clusters and of their relays (about 4N
	// file descriptors per cluster), so large federations need several.
	// 0: as few as the file descriptor limit allows (AutoWorkers), 1
	// without a WorkerCommand.
	Workers int
	// WorkerCommand starts one worker process (this program's `sim
	// worker`, which calls RunWorker); required when Workers > 1.
	WorkerCommand []string
	// DataDir holds the run's CA, etcd data and serf state; it is
	// created and removed by Run. Default: a new directory in the
	// system's temporary directory.
	DataDir string
	// Seed makes the churn's choice of changes repeatable.
	Seed int64
	// AfterChurn, if set, is called when the churn is over and the
	// federation still runs (whole, before the kill): a caller takes a
	// heap profile there.
	AfterChurn func()
	// AtRest, if set, is called when the rest window starts (the
	// federation synced, before the churn), and the function it returns
	// when the window ends: a caller profiles the idle federation there.
	AtRest func() (end func())
	// Progress receives a line per step while the run goes; nil: none.
	Progress io.Writer
	// Logger receives the control planes' logs; default: discarded.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Clusters < 2 || c.Clusters > MaxClusters {
		return c, fmt.Errorf("%w: clusters %d: want 2 to %d", ErrConfig, c.Clusters, MaxClusters)
	}
	if c.Services == 0 {
		c.Services = DefaultServices
	}
	if c.Endpoints == 0 {
		c.Endpoints = DefaultEndpoints
	}
	if c.Services < 1 || c.Endpoints < 1 || c.Services*c.Endpoints*c.Clusters > 1<<24 {
		return c, fmt.Errorf("%w: %d services of %d endpoints in %d clusters: want at least one of each and at most 2^24 endpoints",
			ErrConfig, c.Services, c.Endpoints, c.Clusters)
	}
	if c.Consume < 0 || c.Consume > 1 {
		return c, fmt.Errorf("%w: consumed share %g: want 0 to 1", ErrConfig, c.Consume)
	}
	if c.ChurnRate == 0 {
		c.ChurnRate = DefaultChurnRate
	}
	if c.ChurnRate < 0 {
		return c, fmt.Errorf("%w: negative churn rate %g", ErrConfig, c.ChurnRate)
	}
	if c.Changes == 0 {
		c.Changes = DefaultChanges
	}
	if c.Changes < 1 || c.Changes > c.Clusters*c.Services {
		return c, fmt.Errorf("%w: changes %d: want 1 to clusters*services (%d)", ErrConfig, c.Changes, c.Clusters*c.Services)
	}
	if c.Profile == "" {
		c.Profile = membership.ProfileWAN
	}
	switch c.Profile {
	case membership.ProfileWAN, membership.ProfileLAN, membership.ProfileLocal:
	default:
		return c, fmt.Errorf("%w: gossip profile %q: want wan, lan or local", ErrConfig, c.Profile)
	}
	if c.FencePeriod == 0 {
		c.FencePeriod = DefaultFencePeriod
	}
	if c.IdleWindow == 0 {
		c.IdleWindow = DefaultIdleWindow
	}
	if c.PhaseTimeout == 0 {
		c.PhaseTimeout = DefaultPhaseTimeout
	}
	if c.FencePeriod < 0 || c.IdleWindow < 0 || c.PhaseTimeout < 0 {
		return c, fmt.Errorf("%w: negative fence period, idle window or phase timeout", ErrConfig)
	}
	if c.StartParallel == 0 {
		c.StartParallel = DefaultStartParallel
	}
	if c.JoinWave < 0 {
		return c, fmt.Errorf("%w: join wave %d", ErrConfig, c.JoinWave)
	}
	if c.TimeoutScale == 0 {
		c.TimeoutScale = AutoTimeoutScale(c.Clusters, runtime.NumCPU())
	}
	if c.TimeoutScale < 1 || c.TimeoutScale > 100 {
		return c, fmt.Errorf("%w: timeout scale %g: want 1 to 100", ErrConfig, c.TimeoutScale)
	}
	if c.StartParallel < 1 {
		return c, fmt.Errorf("%w: start parallelism %d", ErrConfig, c.StartParallel)
	}
	if c.Workers < 0 || c.Workers > c.Clusters {
		return c, fmt.Errorf("%w: workers %d: want 0 to clusters (%d)", ErrConfig, c.Workers, c.Clusters)
	}
	if c.Workers == 0 && len(c.WorkerCommand) > 0 {
		c.Workers = AutoWorkers(c.Clusters, fdLimit())
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.Workers > 1 && len(c.WorkerCommand) == 0 {
		return c, fmt.Errorf("%w: %d workers need a worker command", ErrConfig, c.Workers)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c, nil
}

// AutoTimeoutScale is TimeoutScale's default for n control planes on
// cores CPUs: 1 while each has a tenth of a CPU or more, then in
// proportion, n / (10 cores).
func AutoTimeoutScale(n, cores int) float64 {
	return max(1, float64(n)/float64(10*max(1, cores)))
}

// AutoWorkers is how many processes n clusters need so that none holds
// more than 70% of limit file descriptors: about 4n per cluster for the
// catalog connections (client, relay both ends, server) and 40 for the
// rest (etcd files and listeners, gossip sockets).
func AutoWorkers(n int, limit uint64) int {
	if limit == 0 {
		return 1
	}
	need := uint64(4*n*n + 40*n)
	budget := max(1, limit*7/10)
	return int(min(uint64(n), max(1, (need+budget-1)/budget)))
}

// fdLimit is this process's soft limit of open files (0 when unknown);
// worker processes inherit it.
func fdLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}
