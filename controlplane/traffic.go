package controlplane

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/federation/merge"
	"github.com/fedmesh/fedmesh/internal/httpjson"
	"github.com/fedmesh/fedmesh/policy"
)

// TrafficPath lists the traffic objects in force in this cluster and
// where each came from (TrafficPage).
const TrafficPath = "/debug/traffic"

// Origins of a traffic object on TrafficPage.
const (
	// OriginLocal: this cluster's source (files or CRDs).
	OriginLocal = "local"
	// OriginExport: producer policies another cluster publishes with its
	// export of a service, in force through the merged view.
	OriginExport = "export"
)

// TrafficPage is the JSON of TrafficPath.
type TrafficPage struct {
	Cluster string `json:"cluster"`
	// ViewRevision is the revision of the federation view the exported
	// objects were read from; 0 without one.
	ViewRevision uint64 `json:"viewRevision"`
	// SourceReady is false while the source has not read its traffic
	// objects once (or has none to read: SourceTraffic false).
	SourceReady   bool `json:"sourceReady"`
	SourceTraffic bool `json:"sourceTraffic"`
	// Objects are sorted by kind, namespace, name and origin.
	Objects []TrafficObject `json:"objects"`
	// Conflicts are the PolicyConflict conditions of the view.
	Conflicts []TrafficConflict `json:"conflicts,omitempty"`
}

// TrafficObject is one route or policy and where it came from.
type TrafficObject struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Origin is OriginLocal or OriginExport; Cluster is where the object
	// was written (this cluster for local objects).
	Origin  string `json:"origin"`
	Cluster string `json:"cluster"`
	// Service is the service whose export carries the object (exported
	// objects), or that a local producer object belongs to; empty for
	// local consumer routes.
	Service string `json:"service,omitempty"`
	// Published is true for a local producer object that this cluster's
	// export carries to every cluster.
	Published bool `json:"published,omitempty"`
	// Refs are the parentRefs of a route or the targetRefs of a policy,
	// as "Kind namespace/name".
	Refs []string `json:"refs,omitempty"`
	// Rules counts a route's rules.
	Rules int `json:"rules,omitempty"`
	// Digest is that of the exported policies carrying the object.
	Digest string `json:"digest,omitempty"`
	// Note says why an object may not act as it reads: not published, or
	// in conflict.
	Note string `json:"note,omitempty"`
	// Object is the object itself.
	Object json.RawMessage `json:"object"`
}

// TrafficConflict is a PolicyConflict condition of the view.
type TrafficConflict struct {
	Service string `json:"service"`
	Cluster string `json:"cluster"`
	// InForce is the cluster whose producer policies are in force.
	InForce string `json:"inForce"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// viewSource holds the function that returns the federation's view,
// set once the mesh runs.
type viewSource struct {
	fn atomic.Pointer[func() *catalog.View]
}

func (v *viewSource) set(fn func() *catalog.View) { v.fn.Store(&fn) }

func (v *viewSource) get() *catalog.View {
	if fn := v.fn.Load(); fn != nil {
		return (*fn)()
	}
	return nil
}

// serveTraffic writes the TrafficPage.
func (s *Server) serveTraffic(w http.ResponseWriter, _ *http.Request) {
	page := TrafficPage{Cluster: s.cfg.Cluster, Objects: []TrafficObject{}}
	var local policy.Traffic
	if ts, ok := s.cfg.Source.(source.TrafficSource); ok {
		page.SourceTraffic = true
		local, page.SourceReady, _ = ts.Traffic()
	}
	view := s.view.get()
	if view != nil {
		page.ViewRevision = view.Revision
	}
	page.Objects = trafficObjects(s.cfg.Cluster, &local, s.producers.Unpublished(), view)
	page.Conflicts = policyConflicts(view)
	httpjson.Write(w, http.StatusOK, page)
}

// trafficObjects lists the local objects and, from the view, the
// producer objects other clusters publish.
func trafficObjects(cluster string, local *policy.Traffic, unpublished []Unpublished, view *catalog.View) []TrafficObject {
	out := []TrafficObject{}
	notPublished := map[string][]string{} // kind ns/name -> services
	for _, u := range unpublished {
		k := u.Kind + " " + u.Namespace + "/" + u.Name
		notPublished[k] = append(notPublished[k], u.Service)
	}
	conflictOf := map[string]string{} // service -> the local export's policy conflict
	if view != nil {
		for _, svc := range view.Services {
			for _, c := range svc.Conditions {
				if c.Cluster == cluster && merge.IsPolicyConflict(c) {
					conflictOf[svc.Key().String()] = c.Message
				}
			}
		}
	}
	add := func(o TrafficObject, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte("null")
			o.Note = strings.TrimPrefix(o.Note+"; cannot encode: "+err.Error(), "; ")
		}
		o.Object = b
		out = append(out, o)
	}
	localObj := func(kind, ns, name string, producerOf []catalog.ServiceKey) TrafficObject {
		o := TrafficObject{Kind: kind, Namespace: ns, Name: name, Origin: OriginLocal, Cluster: cluster}
		if len(producerOf) == 0 {
			return o
		}
		var svcs []string
		for _, k := range producerOf {
			svcs = append(svcs, k.String())
		}
		o.Service = strings.Join(svcs, ",")
		np := notPublished[kind+" "+ns+"/"+name]
		if len(np) > 0 {
			o.Note = "not published (this cluster does not export " + strings.Join(np, ", ") + "): producer objects are in force only with their service's export"
		}
		o.Published = len(np) < len(producerOf)
		for _, k := range producerOf {
			if msg, ok := conflictOf[k.String()]; ok {
				o.Note = strings.TrimPrefix(o.Note+"; "+catalog.ReasonPolicyConflict+": "+msg, "; ")
			}
		}
		return o
	}
	for i := range local.HTTPRoutes {
		r := &local.HTTPRoutes[i]
		o := localObj(policy.KindHTTPRoute, r.Namespace, r.Name, producerParents(r.Namespace, r.Spec.ParentRefs))
		o.Refs, o.Rules = parentRefs(r.Namespace, r.Spec.ParentRefs), len(r.Spec.Rules)
		add(o, r)
	}
	for i := range local.GRPCRoutes {
		r := &local.GRPCRoutes[i]
		o := localObj(policy.KindGRPCRoute, r.Namespace, r.Name, producerParents(r.Namespace, r.Spec.ParentRefs))
		o.Refs, o.Rules = parentRefs(r.Namespace, r.Spec.ParentRefs), len(r.Spec.Rules)
		add(o, r)
	}
	for i := range local.Resilience {
		p := &local.Resilience[i]
		var own []catalog.ServiceKey
		for _, ref := range p.Spec.TargetRefs {
			if policy.Targets([]policy.TargetRef{ref}, p.Namespace, p.Namespace, ref.Name) {
				own = append(own, catalog.ServiceKey{Namespace: p.Namespace, Name: ref.Name})
			}
		}
		o := localObj(policy.KindResiliencePolicy, p.Namespace, p.Name, own)
		o.Refs = targetRefs(p.Namespace, p.Spec.TargetRefs)
		add(o, p)
	}
	for i := range local.Faults {
		f := &local.Faults[i]
		add(TrafficObject{Kind: policy.KindFaultInjection, Namespace: f.Namespace, Name: f.Name, Origin: OriginLocal, Cluster: cluster}, f)
	}
	for i := range local.Telemetry {
		p := &local.Telemetry[i]
		add(TrafficObject{Kind: policy.KindTelemetryPolicy, Namespace: p.Namespace, Name: p.Name, Origin: OriginLocal, Cluster: cluster,
			Refs: targetRefs(p.Namespace, p.Spec.TargetRefs)}, p)
	}
	for i := range local.RateLimits {
		p := &local.RateLimits[i]
		add(TrafficObject{Kind: policy.KindRateLimitPolicy, Namespace: p.Namespace, Name: p.Name, Origin: OriginLocal, Cluster: cluster,
			Refs: targetRefs(p.Namespace, p.Spec.TargetRefs)}, p)
	}
	if view != nil {
		for _, svc := range view.Services {
			if svc.Policies == nil || svc.PoliciesCluster == cluster {
				continue // none, or this cluster's own: listed as local
			}
			key := svc.Key().String()
			t, err := policy.DecodePolicies(svc.Policies)
			if err != nil {
				// The federation checked them; say so if that ever fails.
				out = append(out, TrafficObject{Origin: OriginExport, Cluster: svc.PoliciesCluster, Service: key, Digest: svc.Policies.Digest,
					Note: "cannot decode: " + err.Error(), Object: json.RawMessage("null")})
				continue
			}
			exp := func(kind, ns, name string) TrafficObject {
				return TrafficObject{Kind: kind, Namespace: ns, Name: name, Origin: OriginExport, Cluster: svc.PoliciesCluster, Service: key, Digest: svc.Policies.Digest}
			}
			for i := range t.HTTPRoutes {
				r := &t.HTTPRoutes[i]
				o := exp(policy.KindHTTPRoute, r.Namespace, r.Name)
				o.Refs, o.Rules = parentRefs(r.Namespace, r.Spec.ParentRefs), len(r.Spec.Rules)
				add(o, r)
			}
			for i := range t.GRPCRoutes {
				r := &t.GRPCRoutes[i]
				o := exp(policy.KindGRPCRoute, r.Namespace, r.Name)
				o.Refs, o.Rules = parentRefs(r.Namespace, r.Spec.ParentRefs), len(r.Spec.Rules)
				add(o, r)
			}
			for i := range t.Resilience {
				p := &t.Resilience[i]
				o := exp(policy.KindResiliencePolicy, p.Namespace, p.Name)
				o.Refs = targetRefs(p.Namespace, p.Spec.TargetRefs)
				add(o, p)
			}
			for i := range t.Faults {
				f := &t.Faults[i]
				add(exp(policy.KindFaultInjection, f.Namespace, f.Name), f)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b TrafficObject) int {
		for _, c := range [][2]string{{a.Kind, b.Kind}, {a.Namespace, b.Namespace}, {a.Name, b.Name}, {a.Origin, b.Origin}, {a.Cluster, b.Cluster}, {a.Service, b.Service}} {
			if d := strings.Compare(c[0], c[1]); d != 0 {
				return d
			}
		}
		return 0
	})
	return out
}

// policyConflicts lists the view's conditions that report a policy
// conflict (merge.IsPolicyConflict).
func policyConflicts(view *catalog.View) []TrafficConflict {
	if view == nil {
		return nil
	}
	var out []TrafficConflict
	for _, svc := range view.Services {
		for _, c := range svc.Conditions {
			if !merge.IsPolicyConflict(c) {
				continue
			}
			out = append(out, TrafficConflict{Service: svc.Key().String(), Cluster: c.Cluster, InForce: svc.PoliciesCluster, Reason: c.Reason, Message: c.Message})
		}
	}
	return out
}

func parentRefs(ns string, refs []gatewayv1.ParentReference) []string {
	out := make([]string, 0, len(refs))
	for _, pr := range refs {
		kind, refNS := policy.KindService, ns
		if pr.Kind != nil {
			kind = string(*pr.Kind)
		}
		if pr.Namespace != nil {
			refNS = string(*pr.Namespace)
		}
		s := fmt.Sprintf("%s %s/%s", kind, refNS, pr.Name)
		if pr.Port != nil {
			s += fmt.Sprintf(":%d", *pr.Port)
		}
		out = append(out, s)
	}
	return out
}

func targetRefs(ns string, refs []policy.TargetRef) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, fmt.Sprintf("%s %s/%s", r.Kind, ns, r.Name))
	}
	return out
}
