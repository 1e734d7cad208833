package source

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/topology"
)

// Objects is the set of cluster objects a source has read. Build expects
// each object to have passed its Validate function and no two objects of
// one kind to share a namespace and name.
type Objects struct {
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	ServiceExports []*mcsv1alpha1.ServiceExport
	Workloads      []*Workload
}

// Add appends obj to the list of its kind. It reports false, and adds
// nothing, when obj is of no kind that Objects holds.
func (o *Objects) Add(obj any) bool {
	switch v := obj.(type) {
	case *corev1.Service:
		o.Services = append(o.Services, v)
	case *discoveryv1.EndpointSlice:
		o.EndpointSlices = append(o.EndpointSlices, v)
	case *mcsv1alpha1.ServiceExport:
		o.ServiceExports = append(o.ServiceExports, v)
	case *Workload:
		o.Workloads = append(o.Workloads, v)
	default:
		return false
	}
	return true
}

// ErrNotExportable is wrapped by the problem of a ServiceExport whose
// Service cannot be exported (ExternalName).
var ErrNotExportable = errors.New("service cannot be exported")

// ErrNoService is wrapped by the problem of a ServiceExport without a
// Service of the same namespace and name.
var ErrNoService = errors.New("no Service of that namespace and name")

// Build maps the objects to this cluster's exports, following the rules in
// the package documentation. local gives the exporting cluster and the
// default region and zone of its endpoints; firstSeen gives the export time
// of a ServiceExport without a creationTimestamp. The exports are sorted by
// namespace/name, each Sort()ed and valid; an export that fails validation
// is left out and reported. Build does not modify objs.
func Build(objs *Objects, local topology.Locality, firstSeen func(catalog.ServiceKey) time.Time) ([]catalog.Export, []Problem) {
	b := builder{local: local}
	b.index(objs)

	exports := make([]catalog.Export, 0, len(objs.ServiceExports))
	ses := append([]*mcsv1alpha1.ServiceExport(nil), objs.ServiceExports...)
	sort.Slice(ses, func(i, j int) bool {
		return keyOf(ses[i].Namespace, ses[i].Name).Less(keyOf(ses[j].Namespace, ses[j].Name))
	})
	for _, se := range ses {
		key := keyOf(se.Namespace, se.Name)
		svc, ok := b.services[key]
		if !ok {
			b.problem(ObjectRef{Kind: "ServiceExport", Namespace: se.Namespace, Name: se.Name}, ReasonUnmatched, ErrNoService)
			continue
		}
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			b.problem(ObjectRef{Kind: "ServiceExport", Namespace: se.Namespace, Name: se.Name}, ReasonInvalid,
				fmt.Errorf("%w: Service %s is of type ExternalName", ErrNotExportable, key))
			continue
		}
		created := se.CreationTimestamp.Time
		if created.IsZero() && firstSeen != nil {
			created = firstSeen(key)
		}
		exp := catalog.Export{Service: catalog.Service{
			Namespace:     svc.Namespace,
			Name:          svc.Name,
			Type:          serviceType(svc),
			Ports:         servicePorts(svc),
			ExportCreated: created.UTC(),
			Cluster:       local.Cluster,
			ClusterIPs:    clusterIPs(svc),
		}}
		exp.Endpoints = b.endpoints(svc, &exp.Service)
		exp.Sort()
		if err := exp.Validate(); err != nil {
			b.problem(ObjectRef{Kind: "Service", Namespace: svc.Namespace, Name: svc.Name}, ReasonInvalid, err)
			continue
		}
		exports = append(exports, exp)
	}
	return exports, b.problems
}

type builder struct {
	local    topology.Locality
	services map[catalog.ServiceKey]*corev1.Service
	slices   map[catalog.ServiceKey][]*discoveryv1.EndpointSlice
	// workloads by namespace, sorted by name.
	workloads map[string][]*Workload
	problems  []Problem
}

func keyOf(namespace, name string) catalog.ServiceKey {
	return catalog.ServiceKey{Namespace: namespace, Name: name}
}

func (b *builder) index(objs *Objects) {
	b.services = make(map[catalog.ServiceKey]*corev1.Service, len(objs.Services))
	for _, s := range objs.Services {
		b.services[keyOf(s.Namespace, s.Name)] = s
	}
	b.slices = make(map[catalog.ServiceKey][]*discoveryv1.EndpointSlice)
	for _, es := range objs.EndpointSlices {
		k := keyOf(es.Namespace, es.Labels[discoveryv1.LabelServiceName])
		b.slices[k] = append(b.slices[k], es)
	}
	for _, l := range b.slices {
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}
	b.workloads = make(map[string][]*Workload)
	for _, w := range objs.Workloads {
		b.workloads[w.Namespace] = append(b.workloads[w.Namespace], w)
	}
	for _, l := range b.workloads {
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}
}

func (b *builder) problem(ref ObjectRef, reason Reason, err error) {
	b.problems = append(b.problems, Problem{Object: ref.String(), Reason: reason, Err: err})
}

// endpoints collects the service's endpoints from its EndpointSlices, then
// from the Workloads its selector matches. An address serving a port name
// twice keeps its first occurrence; the later one is reported.
func (b *builder) endpoints(svc *corev1.Service, cs *catalog.Service) []catalog.Endpoint {
	type epKey struct{ addr, port string }
	seen := make(map[epKey]string)
	var eps []catalog.Endpoint
	add := func(ep catalog.Endpoint, from ObjectRef) {
		k := epKey{ep.Address, ep.PortName}
		if first, dup := seen[k]; dup {
			b.problem(from, ReasonDuplicate, fmt.Errorf("address %s already serves port %q of Service %s (from %s)", ep.Address, ep.PortName, cs.Key(), first))
			return
		}
		seen[k] = from.String()
		eps = append(eps, ep)
	}

	for _, es := range b.slices[cs.Key()] {
		ref := ObjectRef{Kind: "EndpointSlice", Namespace: es.Namespace, Name: es.Name}
		sa := es.Annotations[AnnotationServiceAccount]
		if sa == "" {
			sa = DefaultServiceAccount
		}
		for i, p := range es.Ports {
			name := deref(p.Name)
			if _, ok := cs.PortByName(name); !ok {
				b.problem(ref, ReasonUnmatched, fmt.Errorf("ports[%d].name %q names no port of Service %s", i, name, cs.Key()))
				continue
			}
			for _, e := range es.Endpoints {
				zone := deref(e.Zone)
				if zone == "" {
					zone = b.local.Zone
				}
				ready := e.Conditions.Ready == nil || *e.Conditions.Ready
				serving := ready
				if e.Conditions.Serving != nil {
					serving = *e.Conditions.Serving
				}
				workload := ""
				if e.TargetRef != nil {
					workload = e.TargetRef.Name
				}
				for _, a := range e.Addresses {
					add(catalog.Endpoint{
						Address:        a,
						Port:           deref(p.Port),
						PortName:       name,
						Locality:       topology.Locality{Region: b.local.Region, Zone: zone, Cluster: b.local.Cluster},
						Ready:          ready,
						Serving:        serving,
						ServiceAccount: sa,
						Workload:       workload,
					}, ref)
				}
			}
		}
	}

	if len(svc.Spec.Selector) == 0 {
		return eps
	}
	for _, w := range b.workloads[svc.Namespace] {
		if !selects(svc.Spec.Selector, w.Labels) {
			continue
		}
		ref := ObjectRef{Kind: WorkloadKind, Namespace: w.Namespace, Name: w.Name}
		zone := w.Spec.Zone
		if zone == "" {
			zone = b.local.Zone
		}
		sa := w.Spec.ServiceAccount
		if sa == "" {
			sa = DefaultServiceAccount
		}
		ready := w.Spec.Ready == nil || *w.Spec.Ready
		for _, sp := range cs.Ports {
			port, ok := WorkloadPort(w, sp.Name, len(cs.Ports))
			if !ok {
				continue
			}
			add(catalog.Endpoint{
				Address:        w.Spec.Address,
				Port:           port,
				PortName:       sp.Name,
				Locality:       topology.Locality{Region: b.local.Region, Zone: zone, Cluster: b.local.Cluster},
				Ready:          ready,
				Serving:        ready,
				ServiceAccount: sa,
				Workload:       w.Name,
				Labels:         catalog.EndpointLabels(w.Labels),
			}, ref)
		}
	}
	return eps
}

// WorkloadPort returns the port where w receives traffic for the service
// port named portName, of a service with servicePorts ports. A named port
// matches only the key of that name. A service's single unnamed port
// matches the key "", or else the only entry of a one-entry map.
func WorkloadPort(w *Workload, portName string, servicePorts int) (int32, bool) {
	if p, ok := w.Spec.Ports[portName]; ok {
		return p, true
	}
	if portName == "" && servicePorts == 1 && len(w.Spec.Ports) == 1 {
		for _, p := range w.Spec.Ports {
			return p, true
		}
	}
	return 0, false
}

// selects reports whether every selector label is among labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func serviceType(svc *corev1.Service) catalog.ServiceType {
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return catalog.Headless
	}
	return catalog.ClusterSetIP
}

// clusterIPs returns the Service's virtual addresses in canonical form:
// spec.clusterIPs, or spec.clusterIP when that is all it sets (a Service
// read from a file); none for a headless Service or one without.
// ValidateService has checked them.
func clusterIPs(svc *corev1.Service) []string {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []string
	for _, s := range ips {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, ip.String())
		}
	}
	return out
}

// servicePorts maps the Service's ports. An empty protocol becomes TCP, as
// the Kubernetes API server defaults it, so that a port read from a file
// equals the same port read from a cluster.
func servicePorts(svc *corev1.Service) []catalog.Port {
	ports := make([]catalog.Port, 0, len(svc.Spec.Ports))
	for _, p := range svc.Spec.Ports {
		proto := catalog.Protocol(p.Protocol)
		if proto == "" {
			proto = catalog.TCP
		}
		ports = append(ports, catalog.Port{
			Name:        p.Name,
			Protocol:    proto,
			AppProtocol: deref(p.AppProtocol),
			Port:        p.Port,
		})
	}
	return ports
}
