package source

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"

	"github.com/fedmesh/fedmesh/catalog"
)

// The validators below check one object on its own, with the rules that
// matter for exporting it, and return a *catalog.ValidationError whose
// fields are paths in the object (spec.ports[0].port), or nil.

type fields []*catalog.FieldError

func (f *fields) add(field, value, reason string) {
	*f = append(*f, &catalog.FieldError{Field: field, Value: value, Reason: reason})
}

func (f fields) err(ref ObjectRef) error {
	if len(f) == 0 {
		return nil
	}
	return &catalog.ValidationError{Object: ref.String(), Fields: f}
}

func (f *fields) meta(namespace, name string, nameCheck func(string) string) {
	if why := catalog.IsDNS1123Label(namespace); why != "" {
		f.add("metadata.namespace", namespace, why)
	}
	if why := nameCheck(name); why != "" {
		f.add("metadata.name", name, why)
	}
}

// ValidateService checks a Service's name and ports as the catalog needs
// them. A Service without ports is valid here (Kubernetes allows headless
// ones) but cannot be exported.
func ValidateService(svc *corev1.Service) error {
	ref := ObjectRef{Kind: "Service", Namespace: svc.Namespace, Name: svc.Name}
	var f fields
	f.meta(svc.Namespace, svc.Name, catalog.IsServiceName)
	if len(svc.Spec.Ports) > 0 {
		cs := catalog.Service{
			Namespace: "placeholder", Name: "placeholder", Cluster: "placeholder",
			Type: catalog.ClusterSetIP, Ports: servicePorts(svc),
		}
		var ve *catalog.ValidationError
		if err := cs.Validate(); errors.As(err, &ve) {
			for _, fe := range ve.Fields {
				if strings.HasPrefix(fe.Field, "ports[") {
					f = append(f, &catalog.FieldError{Field: "spec." + fe.Field, Value: fe.Value, Reason: fe.Reason})
				}
			}
		}
	}
	validateClusterIPs(&f, svc)
	switch svc.Spec.Type {
	case "", corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName:
	default:
		f.add("spec.type", string(svc.Spec.Type), "must be ClusterIP, NodePort, LoadBalancer or ExternalName")
	}
	return f.err(ref)
}

// validateClusterIPs checks spec.clusterIP and spec.clusterIPs: each
// "None" (headless, alone), empty (not allocated) or an IP address, at
// most one per family; when both are set, clusterIPs[0] is clusterIP, as
// the API server keeps them.
func validateClusterIPs(f *fields, svc *corev1.Service) {
	ips := svc.Spec.ClusterIPs
	if len(ips) > 0 && svc.Spec.ClusterIP != "" && ips[0] != svc.Spec.ClusterIP {
		f.add("spec.clusterIPs[0]", ips[0], "must equal spec.clusterIP ("+svc.Spec.ClusterIP+")")
	}
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	if len(ips) > catalog.MaxClusterIPs {
		f.add("spec.clusterIPs", strings.Join(ips, ","), fmt.Sprintf("must have at most %d addresses", catalog.MaxClusterIPs))
		return
	}
	field := func(i int) string {
		if len(svc.Spec.ClusterIPs) == 0 {
			return "spec.clusterIP"
		}
		return fmt.Sprintf("spec.clusterIPs[%d]", i)
	}
	families := map[bool]int{}
	for i, s := range ips {
		if s == corev1.ClusterIPNone {
			if len(ips) > 1 {
				f.add(field(i), s, "None must be the only address")
			}
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" || ip.Is4In6() {
			f.add(field(i), s, "must be None or an IPv4 or IPv6 address")
			continue
		}
		if j, dup := families[ip.Is4()]; dup {
			f.add(field(i), s, fmt.Sprintf("must be of another IP family than spec.clusterIPs[%d]", j))
			continue
		}
		families[ip.Is4()] = i
	}
}

// ValidateServiceExport checks a ServiceExport's name: it must be the name
// of a Service.
func ValidateServiceExport(se *mcsv1alpha1.ServiceExport) error {
	ref := ObjectRef{Kind: "ServiceExport", Namespace: se.Namespace, Name: se.Name}
	var f fields
	f.meta(se.Namespace, se.Name, catalog.IsServiceName)
	return f.err(ref)
}

// ValidateEndpointSlice checks the service-name label, the address type,
// every address and every port. FQDN slices are not supported.
func ValidateEndpointSlice(es *discoveryv1.EndpointSlice) error {
	ref := ObjectRef{Kind: "EndpointSlice", Namespace: es.Namespace, Name: es.Name}
	var f fields
	f.meta(es.Namespace, es.Name, catalog.IsDNS1123Subdomain)
	svc, ok := es.Labels[discoveryv1.LabelServiceName]
	if !ok {
		f.add("metadata.labels", "", "must have the label "+discoveryv1.LabelServiceName)
	} else if why := catalog.IsServiceName(svc); why != "" {
		f.add("metadata.labels["+discoveryv1.LabelServiceName+"]", svc, why)
	}
	if sa, ok := es.Annotations[AnnotationServiceAccount]; ok {
		if why := catalog.IsDNS1123Subdomain(sa); why != "" {
			f.add("metadata.annotations["+AnnotationServiceAccount+"]", sa, why)
		}
	}
	var want func(netip.Addr) bool
	switch es.AddressType {
	case discoveryv1.AddressTypeIPv4:
		want = netip.Addr.Is4
	case discoveryv1.AddressTypeIPv6:
		want = netip.Addr.Is6
	default:
		f.add("addressType", string(es.AddressType), "must be IPv4 or IPv6")
	}
	for i, ep := range es.Endpoints {
		if len(ep.Addresses) == 0 {
			f.add(fmt.Sprintf("endpoints[%d].addresses", i), "", "must not be empty")
		}
		for j, a := range ep.Addresses {
			addr, err := netip.ParseAddr(a)
			switch {
			case err != nil:
				f.add(fmt.Sprintf("endpoints[%d].addresses[%d]", i, j), a, "must be an IP address")
			case addr.Zone() != "":
				f.add(fmt.Sprintf("endpoints[%d].addresses[%d]", i, j), a, "must not have an IPv6 zone")
			case want != nil && !want(addr):
				f.add(fmt.Sprintf("endpoints[%d].addresses[%d]", i, j), a, "must be an "+string(es.AddressType)+" address")
			}
		}
	}
	names := make(map[string]int, len(es.Ports))
	for i, p := range es.Ports {
		name := deref(p.Name)
		if name != "" {
			if why := catalog.IsDNS1123Label(name); why != "" {
				f.add(fmt.Sprintf("ports[%d].name", i), name, why)
			}
		}
		if j, dup := names[name]; dup {
			f.add(fmt.Sprintf("ports[%d].name", i), name, fmt.Sprintf("duplicate port name (also ports[%d])", j))
		} else {
			names[name] = i
		}
		switch {
		case p.Port == nil:
			f.add(fmt.Sprintf("ports[%d].port", i), "", "must be set")
		case *p.Port < 1 || *p.Port > 65535:
			f.add(fmt.Sprintf("ports[%d].port", i), fmt.Sprint(*p.Port), "must be between 1 and 65535")
		}
		if p.Protocol != nil {
			switch *p.Protocol {
			case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
			default:
				f.add(fmt.Sprintf("ports[%d].protocol", i), string(*p.Protocol), "must be TCP, UDP or SCTP")
			}
		}
	}
	return f.err(ref)
}

// ValidateWorkload checks a Workload's name, labels, address, ports and
// service account.
func ValidateWorkload(w *Workload) error {
	ref := ObjectRef{Kind: WorkloadKind, Namespace: w.Namespace, Name: w.Name}
	var f fields
	f.meta(w.Namespace, w.Name, catalog.IsDNS1123Subdomain)
	if w.Spec.Address == "" {
		f.add("spec.address", "", "must not be empty")
	} else if addr, err := netip.ParseAddr(w.Spec.Address); err != nil || addr.Zone() != "" {
		f.add("spec.address", w.Spec.Address, "must be an IPv4 or IPv6 address")
	}
	if len(w.Spec.Ports) == 0 {
		f.add("spec.ports", "", "must list at least one port")
	}
	keys := make([]string, 0, len(w.Spec.Ports))
	for k := range w.Spec.Ports {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != "" {
			if why := catalog.IsDNS1123Label(k); why != "" {
				f.add("spec.ports", k, "key "+why)
			}
		}
		if p := w.Spec.Ports[k]; p < 1 || p > 65535 {
			f.add(fmt.Sprintf("spec.ports[%q]", k), fmt.Sprint(p), "must be between 1 and 65535")
		}
	}
	if w.Spec.ServiceAccount != "" {
		if why := catalog.IsDNS1123Subdomain(w.Spec.ServiceAccount); why != "" {
			f.add("spec.serviceAccount", w.Spec.ServiceAccount, why)
		}
	}
	// The labels become its endpoints' (failoverPriority compares them).
	if len(w.Labels) > catalog.MaxEndpointLabels {
		f.add("metadata.labels", fmt.Sprint(len(w.Labels)), fmt.Sprintf("must hold at most %d labels", catalog.MaxEndpointLabels))
	}
	keys = keys[:0]
	for k := range w.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why := catalog.ValidateLabel(k, w.Labels[k]); why != "" {
			f.add("metadata.labels", k, why)
		}
	}
	return f.err(ref)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
