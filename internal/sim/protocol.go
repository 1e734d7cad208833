package sim

import (
	"time"

	"github.com/fedmesh/fedmesh/federation/membership"
)

// The coordinator (Run) drives hosts with commands; hosts answer with
// events. An in-process host gets them as calls, a worker process as
// JSON lines on stdin and stdout (RunWorker). Times are wall-clock Unix
// nanoseconds, comparable between processes of one machine.

// Command ops.
const (
	opInit   = "init"   // hostConfig
	opStart  = "start"  // start the host's clusters
	opJoin   = "join"   // join Seeds
	opChange = "change" // Change on its origin's host; others watch for it
	opKill   = "kill"   // Victim: killed on its host, watched for by the others
	opStats  = "stats"  // answer an evStats
	opStop   = "stop"
)

// Event kinds.
const (
	evStarted = "started" // Cluster, Addr (its serf address)
	evMembers = "members" // Cluster sees every member alive
	evSynced  = "synced"  // Cluster's view holds every cluster's every endpoint
	evCovers  = "covers"  // Cluster's view holds endpoints of ID clusters (a new high)
	evChanged = "changed" // ID written at its origin
	evSeen    = "seen"    // Cluster's view has change ID
	evKilled  = "killed"  // Victim is gone
	evFenced  = "fenced"  // Cluster fenced Victim
	evStats   = "stats"
	evError   = "error" // Err: the host cannot go on
	evWarn    = "warn"  // Err: something failed that the run counts as missing
	evStopped = "stopped"
)

// hostConfig is what a host needs to run its share of the clusters.
type hostConfig struct {
	// RootDir holds the federation's root CA (ca.InitRoot).
	RootDir string `json:"rootDir"`
	// DataDir holds the host's clusters' data.
	DataDir string `json:"dataDir"`
	// Block is the second octet of the loopback /16 the run holds.
	Block    int   `json:"block"`
	Clusters int   `json:"clusters"`
	Indexes  []int `json:"indexes"`
	Services int   `json:"services"`
	// Consumed is how many services each cluster consumes (see
	// Config.Consume); Services without a scope.
	Consumed      int                `json:"consumed"`
	Endpoints     int                `json:"endpoints"`
	Profile       membership.Profile `json:"profile"`
	FencePeriod   time.Duration      `json:"fencePeriod"`
	StartParallel int                `json:"startParallel"`
	TimeoutScale  float64            `json:"timeoutScale"`
	// MemLimit is the worker process's soft memory limit (GOMEMLIMIT),
	// 0 for none.
	MemLimit  uint64 `json:"memLimit,omitempty"`
	GossipKey []byte `json:"gossipKey"`
}

type command struct {
	Op    string      `json:"op"`
	Init  *hostConfig `json:"init,omitempty"`
	Seeds []string    `json:"seeds,omitempty"`
	// Only limits a join to these clusters; nil: every cluster.
	Only   []int   `json:"only,omitempty"`
	Change *change `json:"change,omitempty"`
	Victim int     `json:"victim,omitempty"`
	// Light asks opStats for counters only: no sidecar build.
	Light bool `json:"light,omitempty"`
}

// change turns endpoint 0 of service Service in cluster Origin unready.
type change struct {
	ID      int `json:"id"`
	Origin  int `json:"origin"`
	Service int `json:"service"`
}

type event struct {
	Kind    string     `json:"ev"`
	Cluster int        `json:"cluster,omitempty"`
	Addr    string     `json:"addr,omitempty"`
	ID      int        `json:"id,omitempty"`
	Victim  int        `json:"victim,omitempty"`
	At      int64      `json:"at,omitempty"`
	Err     string     `json:"err,omitempty"`
	Stats   *hostStats `json:"stats,omitempty"`
}

// hostStats are one host process's counters at one time.
type hostStats struct {
	At int64 `json:"at"`
	// CPU is the process's user and system time.
	CPU time.Duration `json:"cpu"`
	// RSS is the process's resident memory; Heap the Go heap in use.
	RSS  uint64 `json:"rss"`
	Heap uint64 `json:"heap"`
	// Clusters is how many control planes the host runs now.
	Clusters int `json:"clusters"`
	// GossipBytes are the bytes the host's members sent (UDP and TCP).
	GossipBytes uint64 `json:"gossipBytes"`
	// CatalogBytes are the bytes the host's etcd servers sent to peers'
	// replicators (watches, lists, proofs) and received from them.
	CatalogBytesOut uint64 `json:"catalogBytesOut"`
	CatalogBytesIn  uint64 `json:"catalogBytesIn"`
	// CatalogConns is how many peer connections the catalogs hold now.
	CatalogConns int64 `json:"catalogConns"`
	// Views are how many views the host's federations published, and
	// PlanTime the time their xDS servers took to plan them (UpdateView).
	Views    uint64        `json:"views"`
	PlanTime time.Duration `json:"planTime"`
	// BuildTime is one sidecar's full xDS build from one cluster's
	// current view (0 when the host runs none).
	BuildTime time.Duration `json:"buildTime"`
	// Counters are the control planes' counters of interest, summed.
	Counters map[string]float64 `json:"counters,omitempty"`
	// FDs is how many file descriptors the process holds.
	FDs int `json:"fds"`
}

// scaled is d stretched by TimeoutScale (see Config.TimeoutScale).
func (c *hostConfig) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * max(1, c.TimeoutScale))
}
