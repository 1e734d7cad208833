package plan

import (
	"cmp"
	"encoding/json"
	"maps"
	"slices"

	"github.com/fedmesh/fedmesh/policy"
)

// This file plans telemetry (docs/xds.md, "Telemetry"): which
// TelemetryPolicies of the local traffic set are in force for a node's
// workload, merged into one Telemetry that controlplane/xds renders into
// every HTTP connection manager of the node (tracing and access_log).

// Telemetry is what one node records beyond its always-on metrics. The
// zero value (nil from Plan.Telemetry) means no policy applies: the
// node's HCMs carry no tracing and no access_log, as before policies.
type Telemetry struct {
	// SamplingPercent, when set, is the share of new traces started
	// (0-100).
	SamplingPercent *float64 `json:"samplingPercent,omitempty"`
	// Tags are literal span and access log tags, by name.
	Tags map[string]string `json:"tags,omitempty"`
	// AccessLog, when set, turns the access log on.
	AccessLog *AccessLog `json:"accessLog,omitempty"`
}

// AccessLog is an access log that is on.
type AccessLog struct {
	// ErrorsOnly logs only responses of 500 or more and requests the
	// mesh failed (a response flag).
	ErrorsOnly bool `json:"errorsOnly,omitempty"`
}

// Key is a canonical string of t: nodes whose Telemetry has the same
// key receive the same HCMs. The key of nil is "".
func (t *Telemetry) Key() string {
	if t == nil {
		return ""
	}
	b, _ := json.Marshal(t) // maps marshal in key order
	return string(b)
}

// Telemetry returns the telemetry in force for the sidecar of workload
// in namespace ns, or nil when none applies. Policies are merged field
// by field from the least to the most specific: a policy of
// policy.RootNamespace without targetRefs (mesh-wide), then one of ns
// without targetRefs (the namespace), then one of ns whose targetRefs
// name a Service that the workload's local endpoints serve. A later
// level overrides samplingPercent and the whole accessLog section when
// it sets them, and custom tags one by one. Within a level, the policy
// whose name sorts first wins (as Gateway API policy attachment breaks
// ties by name when creation times are equal). A workload that is not
// named (workload == "") gets the namespace level only.
func (p *Plan) Telemetry(ns, workload string) *Telemetry {
	tps := p.traffic.Telemetry
	if len(tps) == 0 {
		return nil
	}
	var root, nsWide, targeted []*policy.TelemetryPolicy
	var served map[string]bool // services of ns the workload serves
	for i := range tps {
		tp := &tps[i]
		switch {
		case len(tp.Spec.TargetRefs) == 0 && tp.Namespace == ns:
			nsWide = append(nsWide, tp)
		case len(tp.Spec.TargetRefs) == 0 && tp.Namespace == policy.RootNamespace:
			root = append(root, tp)
		case tp.Namespace == ns && workload != "":
			if served == nil {
				served = p.workloadServices(ns, workload)
			}
			for _, r := range tp.Spec.TargetRefs {
				if r.Group == "" && r.Kind == policy.KindService && served[r.Name] {
					targeted = append(targeted, tp)
					break
				}
			}
		}
	}
	var t Telemetry
	applied := false
	for _, level := range [][]*policy.TelemetryPolicy{root, nsWide, targeted} {
		// The first by name is applied last, so it wins its level.
		slices.SortFunc(level, func(a, b *policy.TelemetryPolicy) int { return cmp.Compare(b.Name, a.Name) })
		for _, tp := range level {
			t.apply(&tp.Spec)
			applied = true
		}
	}
	if !applied || t.SamplingPercent == nil && len(t.Tags) == 0 && t.AccessLog == nil {
		return nil
	}
	return &t
}

func (t *Telemetry) apply(s *policy.TelemetrySpec) {
	if tr := s.Tracing; tr != nil {
		if tr.SamplingPercent != nil {
			v := float64(*tr.SamplingPercent)
			t.SamplingPercent = &v
		}
		if len(tr.CustomTags) > 0 {
			if t.Tags == nil {
				t.Tags = make(map[string]string, len(tr.CustomTags))
			}
			maps.Copy(t.Tags, tr.CustomTags)
		}
	}
	if a := s.AccessLog; a != nil {
		t.AccessLog = nil
		if a.Enabled {
			t.AccessLog = &AccessLog{ErrorsOnly: a.Filter == policy.AccessLogErrors}
		}
	}
}

// workloadServices returns the names of the services (of ns) that the
// local endpoints of workload serve.
func (p *Plan) workloadServices(ns, workload string) map[string]bool {
	out := map[string]bool{}
	for _, ref := range p.workloadEndpoints(ns, workload) {
		out[p.view.Services[ref.svc].Name] = true
	}
	return out
}
