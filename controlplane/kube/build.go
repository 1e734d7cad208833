package kube

import (
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/source"
	"github.com/fedmesh/fedmesh/topology"
)

// Reasons of a ServiceExport's Valid condition. The first three are the
// MCS API's; InvalidService is fedmesh's for a Service whose ports the
// catalog cannot take, InvalidServiceExport for an export whose own name is
// wrong.
const (
	ReasonValid                = "Valid"
	ReasonNoService            = "NoService"
	ReasonInvalidServiceType   = "InvalidServiceType"
	ReasonInvalidService       = "InvalidService"
	ReasonInvalidServiceExport = "InvalidServiceExport"
)

// Validity is the Valid condition of one ServiceExport.
type Validity struct {
	// Valid is true when the export's Service is exported.
	Valid bool
	// Reason is one of the Reason constants above.
	Reason string
	// Message says what is wrong, for humans; empty when valid.
	Message string
}

// Input is what Build reads: the informers' objects, and lookups of Pods
// and Nodes by name.
type Input struct {
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	ServiceExports []*mcsv1alpha1.ServiceExport
	// Pod finds a Pod by namespace and name; nil finds none.
	Pod func(namespace, name string) (*corev1.Pod, bool)
	// Node finds a Node by name; nil finds none.
	Node func(name string) (*corev1.Node, bool)
}

// Result is what Build makes of an Input.
type Result struct {
	// Exports are sorted by namespace/name, each Sort()ed and valid.
	Exports []catalog.Export
	// Problems are the objects left out, with the reason.
	Problems []source.Problem
	// Validity holds the Valid condition of every ServiceExport.
	Validity map[catalog.ServiceKey]Validity
}

// Build maps a cluster's objects to its exports with the rules of package
// source, then refines every endpoint with what only a cluster knows:
//
//   - the zone of an endpoint without one is its node's
//     topology.kubernetes.io/zone label (the node named by the endpoint, or
//     else by its Pod), then local.Zone;
//   - the region is the node's topology.kubernetes.io/region label, then
//     local.Region;
//   - the service account is the Pod's (the endpoint's targetRef), then the
//     slice's fedmesh.io/service-account annotation, then "default";
//   - the labels are the Pod's, as catalog.EndpointLabels carries them
//     (failoverPriority compares them with the client's).
//
// EndpointSlices without the kubernetes.io/service-name label (such as the
// multi-cluster slices the Sink writes) are ignored. Build is pure: it does
// not modify in.
func Build(in *Input, local topology.Locality, firstSeen func(catalog.ServiceKey) time.Time) Result {
	pod := in.Pod
	if pod == nil {
		pod = func(string, string) (*corev1.Pod, bool) { return nil, false }
	}
	node := in.Node
	if node == nil {
		node = func(string) (*corev1.Node, bool) { return nil, false }
	}
	var objs source.Objects
	var problems []source.Problem
	problem := func(kind, ns, name string, reason source.Reason, err error) {
		ref := source.ObjectRef{Kind: kind, Namespace: ns, Name: name}
		problems = append(problems, source.Problem{Object: ref.String(), Reason: reason, Err: err})
	}

	badService := map[catalog.ServiceKey]error{}
	services := map[catalog.ServiceKey]*corev1.Service{}
	for _, svc := range in.Services {
		k := catalog.ServiceKey{Namespace: svc.Namespace, Name: svc.Name}
		if err := source.ValidateService(svc); err != nil {
			badService[k] = err
			problem("Service", svc.Namespace, svc.Name, source.ReasonInvalid, err)
			continue
		}
		services[k] = svc
		objs.Add(svc)
	}

	type addrKey struct{ namespace, address string }
	nodeOf := map[addrKey]string{}
	for _, es := range in.EndpointSlices {
		if _, ok := es.Labels[discoveryv1.LabelServiceName]; !ok {
			continue
		}
		if err := source.ValidateEndpointSlice(es); err != nil {
			problem("EndpointSlice", es.Namespace, es.Name, source.ReasonInvalid, err)
			continue
		}
		es = es.DeepCopy()
		for i := range es.Endpoints {
			e := &es.Endpoints[i]
			nodeName := deref(e.NodeName)
			if nodeName == "" && e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				if p, ok := pod(es.Namespace, e.TargetRef.Name); ok {
					nodeName = p.Spec.NodeName
				}
			}
			if nodeName == "" {
				continue
			}
			for _, a := range e.Addresses {
				nodeOf[addrKey{es.Namespace, a}] = nodeName
			}
			if deref(e.Zone) == "" {
				if n, ok := node(nodeName); ok && n.Labels[corev1.LabelTopologyZone] != "" {
					z := n.Labels[corev1.LabelTopologyZone]
					e.Zone = &z
				}
			}
		}
		objs.Add(es)
	}

	validity := map[catalog.ServiceKey]Validity{}
	for _, se := range in.ServiceExports {
		k := catalog.ServiceKey{Namespace: se.Namespace, Name: se.Name}
		if err := source.ValidateServiceExport(se); err != nil {
			problem("ServiceExport", se.Namespace, se.Name, source.ReasonInvalid, err)
			validity[k] = Validity{Reason: ReasonInvalidServiceExport, Message: err.Error()}
			continue
		}
		if badService[k] == nil { // else reported with its Service
			objs.Add(se)
		}
		validity[k] = Validity{} // decided below
		switch svc, ok := services[k]; {
		case badService[k] != nil:
			validity[k] = Validity{Reason: ReasonInvalidService, Message: badService[k].Error()}
		case !ok:
			validity[k] = Validity{Reason: ReasonNoService, Message: fmt.Sprintf("no Service %s in this cluster", k)}
		case svc.Spec.Type == corev1.ServiceTypeExternalName:
			validity[k] = Validity{Reason: ReasonInvalidServiceType, Message: fmt.Sprintf("Service %s is of type ExternalName, which cannot be exported", k)}
		}
	}

	exports, more := source.Build(&objs, local, firstSeen)
	for _, p := range more {
		problems = append(problems, p)
		var ve *catalog.ValidationError
		if p.Reason != source.ReasonInvalid || !errors.As(p.Err, &ve) {
			continue
		}
		// An export the catalog refused: its Service is at fault.
		for k := range validity {
			if ref := (source.ObjectRef{Kind: "Service", Namespace: k.Namespace, Name: k.Name}); ref.String() == p.Object {
				validity[k] = Validity{Reason: ReasonInvalidService, Message: p.Err.Error()}
			}
		}
	}
	for i := range exports {
		exp := &exports[i]
		k := exp.Service.Key()
		validity[k] = Validity{Valid: true, Reason: ReasonValid}
		for j := range exp.Endpoints {
			ep := &exp.Endpoints[j]
			if ep.Workload != "" {
				if p, ok := pod(exp.Service.Namespace, ep.Workload); ok {
					if p.Spec.ServiceAccountName != "" {
						ep.ServiceAccount = p.Spec.ServiceAccountName
					}
					ep.Labels = catalog.EndpointLabels(p.Labels)
				}
			}
			if n, ok := node(nodeOf[addrKey{exp.Service.Namespace, ep.Address}]); ok && n.Labels[corev1.LabelTopologyRegion] != "" {
				ep.Locality.Region = n.Labels[corev1.LabelTopologyRegion]
			}
		}
	}
	// A ServiceExport whose Service was valid but not exported for a
	// reason Build reported elsewhere keeps the first reason found above;
	// one with no reason at all is not expected, but say so if it happens.
	for k, v := range validity {
		if !v.Valid && v.Reason == "" {
			validity[k] = Validity{Reason: ReasonInvalidService, Message: "the Service could not be exported"}
		}
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Object < problems[j].Object })
	return Result{Exports: exports, Problems: problems, Validity: validity}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
