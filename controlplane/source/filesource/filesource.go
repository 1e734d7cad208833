package filesource

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/policy"
	"github.com/fedmesh/fedmesh/topology"
)

var (
	_ source.Source        = (*FileSource)(nil)
	_ source.PolicySource  = (*FileSource)(nil)
	_ source.TrafficSource = (*FileSource)(nil)
)

// FileSource reads a cluster's objects from a directory of YAML and JSON
// files and turns them into the cluster's exports. Its methods may be called
// from any goroutine; Run runs at most once at a time.
type FileSource struct {
	cfg      Config
	log      *slog.Logger
	local    topology.Locality
	running  atomic.Bool
	rejected *prometheus.CounterVec
	problems prometheus.Gauge
	exported prometheus.Gauge
	policyN  prometheus.Gauge
	trafficN *prometheus.GaugeVec

	mu sync.Mutex // guards the following
	// files by name: what each file held when last read.
	files map[string]*fileState
	// dirErr is why the directory could not be listed, or nil.
	dirErr error
	// firstSeen stamps ServiceExports without a creationTimestamp.
	firstSeen map[catalog.ServiceKey]time.Time
	// exports is the current export set; gen counts its changes.
	exports []catalog.Export
	gen     uint64
	// built are the problems found combining the files.
	built []source.Problem
	// policies are the AuthorizationPolicies in force, sorted;
	// policiesReady is set once the directory was read; policiesChanged
	// is closed (and replaced) when either changes.
	policies        []policy.AuthorizationPolicy
	policiesReady   bool
	policiesChanged chan struct{}
	// traffic are the traffic objects in force (routes whose references
	// resolve, and the policies), each list sorted; trafficChanged is
	// closed (and replaced) when it or policiesReady changes.
	traffic        policy.Traffic
	trafficChanged chan struct{}
}

// fileState is what the source knows of one file.
type fileState struct {
	// hash is of the content last parsed; readErr is set instead when the
	// last read failed.
	hash    [sha256.Size]byte
	readErr string
	// cur is the last parse, good or bad: its problems are reported.
	cur *File
	// good is the last parse without a fatal problem: its objects are
	// used. nil when the file was never good.
	good *File
}

// New checks cfg and returns a FileSource that has read nothing yet.
func New(cfg Config) (*FileSource, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &FileSource{
		cfg:   cfg,
		local: topology.Locality{Region: cfg.Region, Zone: cfg.Zone, Cluster: cfg.Cluster},
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_source_rejected_total",
			Help: "Files and objects the source rejected, by reason.",
		}, []string{"reason"}),
		problems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_source_problems",
			Help: "Problems the source currently reports (rejected files and objects).",
		}),
		exported: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_source_exported_services",
			Help: "Services the source currently exports.",
		}),
		policyN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_source_authorization_policies",
			Help: "AuthorizationPolicies the source currently holds in force.",
		}),
		trafficN: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fedmesh_source_traffic_objects",
			Help: "Traffic objects (routes and traffic policies) the source currently holds in force, by kind.",
		}, []string{"kind"}),
		policiesChanged: make(chan struct{}),
		trafficChanged:  make(chan struct{}),
		files:           make(map[string]*fileState),
		firstSeen:       make(map[catalog.ServiceKey]time.Time),
	}
	s.log = cfg.Logger.With("component", "source", "cluster", cfg.Cluster, "dir", cfg.Dir)
	for _, r := range source.Reasons {
		s.rejected.WithLabelValues(string(r))
	}
	for _, k := range trafficKinds {
		s.trafficN.WithLabelValues(k)
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.rejected, s.problems, s.exported, s.policyN, s.trafficN} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register source metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Load reads the directory once and returns the exports and the current
// problems. It shares state with Run: files that did not change are not
// parsed again, and bad files keep their last good objects.
func (s *FileSource) Load() ([]catalog.Export, []source.Problem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scanLocked()
	return cloneExports(s.exports), s.problemsLocked()
}

// Problems returns what is wrong now: unreadable directory, rejected files
// and objects, and problems combining them, in file order.
func (s *FileSource) Problems() []source.Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.problemsLocked()
}

// Exports returns the current exports, as last read.
func (s *FileSource) Exports() []catalog.Export {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneExports(s.exports)
}

func (s *FileSource) problemsLocked() []source.Problem {
	var out []source.Problem
	if s.dirErr != nil {
		out = append(out, source.Problem{Reason: source.ReasonRead, Err: s.dirErr})
	}
	for _, name := range s.namesLocked() {
		if cur := s.files[name].cur; cur != nil {
			out = append(out, cur.Problems...)
		}
	}
	return append(out, s.built...)
}

func (s *FileSource) namesLocked() []string {
	names := make([]string, 0, len(s.files))
	for n := range s.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// wanted reports whether a directory entry named name is a source file:
// .yaml, .yml or .json, and not hidden, an editor backup or an autosave.
func wanted(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") || strings.HasSuffix(name, "~") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// scanLocked reads the directory, parses the files whose content changed,
// and rebuilds the exports when any file changed. It reports whether the
// export set changed.
func (s *FileSource) scanLocked() bool {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		// Keep everything: a directory that is briefly away (replaced,
		// unmounted) must not withdraw every export.
		if s.dirErr == nil || s.dirErr.Error() != err.Error() {
			s.count(source.Problem{Reason: source.ReasonRead, Err: err})
		}
		s.dirErr = err
		s.problems.Set(float64(len(s.problemsLocked())))
		return false
	}
	s.dirErr = nil
	if !s.policiesReady {
		s.policiesReady = true
		s.notifyPoliciesLocked()
		s.notifyTrafficLocked()
	}
	changed := false
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		name := e.Name()
		if !wanted(name) {
			continue
		}
		data, err := readFile(filepath.Join(s.cfg.Dir, name))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotRegular) {
			continue // gone since listed, a dangling link, or a directory
		}
		present[name] = true
		st := s.files[name]
		if st == nil {
			st = &fileState{}
			s.files[name] = st
		}
		if err != nil {
			if st.readErr == err.Error() {
				continue
			}
			st.readErr = err.Error()
			st.hash = [sha256.Size]byte{}
			st.cur = &File{Name: name, Problems: []source.Problem{{File: name, Reason: source.ReasonRead, Err: err}}}
			s.reject(st)
			changed = true
			continue
		}
		h := sha256.Sum256(data)
		if st.cur != nil && st.readErr == "" && h == st.hash {
			continue
		}
		st.hash, st.readErr = h, ""
		st.cur = ParseFile(name, data)
		if st.cur.Bad() {
			s.reject(st)
		} else {
			st.good = st.cur
			for _, p := range st.cur.Problems {
				s.count(p)
			}
		}
		changed = true
	}
	for name := range s.files {
		if !present[name] {
			delete(s.files, name)
			changed = true
		}
	}
	exportsChanged := false
	if changed {
		exportsChanged = s.rebuildLocked()
	}
	s.problems.Set(float64(len(s.problemsLocked())))
	return exportsChanged
}

// reject counts and logs a bad file's problems; its last good objects stay.
func (s *FileSource) reject(st *fileState) {
	kept := "the file was never good: none of its objects are used"
	if st.good != nil {
		kept = "keeping the file's last good version"
	}
	for _, p := range st.cur.Problems {
		s.rejected.WithLabelValues(string(p.Reason)).Inc()
		s.log.Warn("rejected file", "problem", p.Error(), "reason", string(p.Reason), "file", p.File, "doc", p.Doc, "object", p.Object, "kept", kept)
	}
}

func (s *FileSource) count(p source.Problem) {
	s.rejected.WithLabelValues(string(p.Reason)).Inc()
	s.log.Warn("rejected object", "problem", p.Error(), "reason", string(p.Reason), "file", p.File, "doc", p.Doc, "object", p.Object)
}

// origin is where an object was read.
type origin struct {
	file string
	doc  int
}

// rebuildLocked combines the good objects of every file, in file name
// order, into exports. It reports whether the export set changed.
func (s *FileSource) rebuildLocked() bool {
	var objs source.Objects
	var problems []source.Problem
	var policies []policy.AuthorizationPolicy
	var traffic policy.Traffic
	origins := make(map[source.ObjectRef]origin)
	exported := make(map[catalog.ServiceKey]bool)
	for _, name := range s.namesLocked() {
		good := s.files[name].good
		if good == nil {
			continue
		}
		for _, o := range good.Objects {
			if first, dup := origins[o.Ref]; dup {
				problems = append(problems, source.Problem{File: name, Doc: o.Doc, Object: o.Ref.String(), Reason: source.ReasonDuplicate,
					Err: fmt.Errorf("already defined in %s document %d, which is used", first.file, first.doc)})
				continue
			}
			origins[o.Ref] = origin{name, o.Doc}
			if ap, ok := o.Value.(*policy.AuthorizationPolicy); ok {
				policies = append(policies, *ap)
				continue
			}
			if traffic.Add(o.Value) == nil {
				continue // a route or traffic policy
			}
			objs.Add(o.Value)
			if se, ok := o.Value.(*mcsv1alpha1.ServiceExport); ok {
				exported[catalog.ServiceKey{Namespace: se.Namespace, Name: se.Name}] = true
			}
		}
	}
	// A ServiceExport that goes away and comes back is a new export.
	for k := range s.firstSeen {
		if !exported[k] {
			delete(s.firstSeen, k)
		}
	}
	exports, built := source.Build(&objs, s.local, func(k catalog.ServiceKey) time.Time {
		t, ok := s.firstSeen[k]
		if !ok {
			t = s.cfg.Now().UTC().Truncate(time.Second)
			s.firstSeen[k] = t
		}
		return t
	})
	byName := make(map[string]origin, len(origins))
	for ref, o := range origins {
		byName[ref.String()] = o
	}
	for _, p := range built {
		if o, ok := byName[p.Object]; ok {
			p.File, p.Doc = o.file, o.doc
		}
		problems = append(problems, p)
	}
	// A route whose ExtensionRef names no FaultInjection is left out as
	// a whole: never half-applied.
	policy.SortTraffic(&traffic)
	unresolved := traffic.Resolve()
	for _, rp := range unresolved {
		p := source.Problem{Object: rp.Object(), Reason: source.ReasonUnmatched, Err: rp}
		if o, ok := byName[p.Object]; ok {
			p.File, p.Doc = o.file, o.doc
		}
		problems = append(problems, p)
	}
	traffic = traffic.Without(unresolved)
	// Count and log only what is new, so a problem that persists across
	// unrelated changes is counted once.
	old := make(map[string]bool, len(s.built))
	for _, p := range s.built {
		old[p.Error()] = true
	}
	for _, p := range problems {
		if !old[p.Error()] {
			s.count(p)
		}
	}
	s.built = problems
	policy.Sort(policies)
	if !reflect.DeepEqual(policies, s.policies) {
		s.policies = policies
		s.policyN.Set(float64(len(policies)))
		s.log.Info("authorization policies", "policies", len(policies))
		s.notifyPoliciesLocked()
	}
	if !reflect.DeepEqual(traffic, s.traffic) {
		s.traffic = traffic
		counts := []int{len(traffic.HTTPRoutes), len(traffic.GRPCRoutes), len(traffic.Resilience), len(traffic.Faults), len(traffic.Telemetry), len(traffic.RateLimits)}
		for i, k := range trafficKinds {
			s.trafficN.WithLabelValues(k).Set(float64(counts[i]))
		}
		s.log.Info("traffic objects", "httpRoutes", counts[0], "grpcRoutes", counts[1], "resiliencePolicies", counts[2], "faultInjections", counts[3], "telemetryPolicies", counts[4], "rateLimitPolicies", counts[5])
		s.notifyTrafficLocked()
	}
	s.exported.Set(float64(len(exports)))
	if reflect.DeepEqual(exports, s.exports) {
		return false
	}
	s.exports = exports
	s.gen++
	return true
}

// AuthorizationPolicies returns the AuthorizationPolicies in force: the
// valid ones of every file's last good version, sorted by
// namespace/name; ready once the directory was read (by Load or Run);
// and a channel closed at the next change of either. A file with a bad
// object keeps its last good version, policies included.
func (s *FileSource) AuthorizationPolicies() ([]policy.AuthorizationPolicy, bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.policies), s.policiesReady, s.policiesChanged
}

func (s *FileSource) notifyPoliciesLocked() {
	close(s.policiesChanged)
	s.policiesChanged = make(chan struct{})
}

// trafficKinds label fedmesh_source_traffic_objects, in Traffic's order.
var trafficKinds = []string{policy.KindHTTPRoute, policy.KindGRPCRoute, policy.KindResiliencePolicy, policy.KindFaultInjection, policy.KindTelemetryPolicy, policy.KindRateLimitPolicy}

// Traffic returns the traffic objects in force: the valid ones of every
// file's last good version, less the routes whose ExtensionRef names no
// FaultInjection of their namespace (each reported as a Problem), each
// list sorted by namespace/name; ready once the directory was read (by
// Load or Run); and a channel closed at the next change of either. The
// caller must not change the objects.
func (s *FileSource) Traffic() (policy.Traffic, bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := policy.Traffic{
		HTTPRoutes: slices.Clone(s.traffic.HTTPRoutes),
		GRPCRoutes: slices.Clone(s.traffic.GRPCRoutes),
		Resilience: slices.Clone(s.traffic.Resilience),
		Faults:     slices.Clone(s.traffic.Faults),
		Telemetry:  slices.Clone(s.traffic.Telemetry),
		RateLimits: slices.Clone(s.traffic.RateLimits),
	}
	return t, s.policiesReady, s.trafficChanged
}

func (s *FileSource) notifyTrafficLocked() {
	close(s.trafficChanged)
	s.trafficChanged = make(chan struct{})
}

var errNotRegular = errors.New("not a regular file")

// readFile reads at most MaxFileSize+1 bytes of a regular file, following
// symbolic links.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	return io.ReadAll(io.LimitReader(f, MaxFileSize+1))
}

// cloneExports deep-copies exports, so that callers own what they get.
func cloneExports(in []catalog.Export) []catalog.Export {
	if in == nil {
		return []catalog.Export{}
	}
	out := make([]catalog.Export, len(in))
	for i, e := range in {
		out[i] = e
		out[i].Service.Ports = append([]catalog.Port(nil), e.Service.Ports...)
		out[i].Endpoints = append([]catalog.Endpoint(nil), e.Endpoints...)
	}
	return out
}
