package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/clusterset"
)

// Labels and values fedmesh puts on what it writes.
const (
	// LabelManagedBy marks ServiceImports the sink owns.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of LabelManagedBy.
	ManagedBy = "fedmesh"
	// SliceManagedBy is the value of endpointslice.kubernetes.io/managed-by
	// on the EndpointSlices the sink owns.
	SliceManagedBy = "controlplane.fedmesh.io"
)

// maxSliceEndpoints is the most endpoints one EndpointSlice holds (the
// API server's limit).
const maxSliceEndpoints = 1000

// Import is the desired state of one imported service: its ServiceImport
// and the EndpointSlices of every exporting cluster. The slices' owner
// reference is added when the ServiceImport's UID is known.
type Import struct {
	ServiceImport *mcsv1alpha1.ServiceImport
	Slices        []*discoveryv1.EndpointSlice
}

// DesiredImports maps the merged view to ServiceImports and EndpointSlices:
// one ServiceImport per service (its type, ports, its ClusterSetIP in
// spec.ips, allocated within prefix by clusterset.Allocate, the clusters
// that export it and a Conflict condition), and for each exporting cluster one
// EndpointSlice per address family and target-port set, labelled with
// multicluster.kubernetes.io/service-name and source-cluster. An endpoint
// is ready when the view says it is healthy. The result is sorted by
// namespace/name; it is pure and deterministic.
func DesiredImports(v *catalog.View, prefix netip.Prefix) []Import {
	if v == nil {
		return nil
	}
	ips := clusterset.FromView(prefix, v)
	out := make([]Import, 0, len(v.Services))
	for i := range v.Services {
		svc := &v.Services[i]
		si := desiredServiceImport(svc)
		if ip, ok := ips[svc.Key()]; ok {
			si.Spec.IPs = []string{ip.String()}
		}
		out = append(out, Import{ServiceImport: si, Slices: desiredSlices(svc)})
	}
	return out
}

func desiredServiceImport(svc *catalog.ImportedService) *mcsv1alpha1.ServiceImport {
	si := &mcsv1alpha1.ServiceImport{
		ObjectMeta: metav1.ObjectMeta{
			Name:      svc.Name,
			Namespace: svc.Namespace,
			Labels:    map[string]string{LabelManagedBy: ManagedBy},
		},
		Spec: mcsv1alpha1.ServiceImportSpec{Type: mcsv1alpha1.ServiceImportType(svc.Type)},
	}
	for _, p := range svc.Ports {
		sp := mcsv1alpha1.ServicePort{Name: p.Name, Protocol: protocol(p.Protocol), Port: p.Port}
		if p.AppProtocol != "" {
			ap := p.AppProtocol
			sp.AppProtocol = &ap
		}
		si.Spec.Ports = append(si.Spec.Ports, sp)
	}
	for _, c := range svc.Clusters {
		si.Status.Clusters = append(si.Status.Clusters, mcsv1alpha1.ClusterStatus{Cluster: c})
	}
	si.Status.Conditions = importConditions(svc)
	return si
}

// importConditions sums up the view's conflicts of the service: Conflict
// True with every reason (comma-joined, as MCS allows) and one line per
// cluster, or Conflict False with NoConflicts.
func importConditions(svc *catalog.ImportedService) []metav1.Condition {
	reasons := map[string]bool{}
	var lines []string
	for _, c := range svc.Conditions {
		if c.Type != catalog.ConditionConflict || c.Status != string(metav1.ConditionTrue) {
			continue
		}
		reasons[c.Reason] = true
		lines = append(lines, c.Cluster+": "+c.Message)
	}
	if len(reasons) == 0 {
		return []metav1.Condition{{Type: catalog.ConditionConflict, Status: metav1.ConditionFalse, Reason: catalog.ReasonNoConflicts, Message: "the exports of every cluster agree"}}
	}
	rs := make([]string, 0, len(reasons))
	for r := range reasons {
		rs = append(rs, r)
	}
	sort.Strings(rs)
	sort.Strings(lines)
	return []metav1.Condition{{Type: catalog.ConditionConflict, Status: metav1.ConditionTrue, Reason: strings.Join(rs, ","), Message: strings.Join(lines, "; ")}}
}

func protocol(p catalog.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return corev1.Protocol(p)
}

// desiredSlices groups the service's endpoints by cluster, address family
// and the set of (port name, target port) each address serves, one slice
// per group (split at 1000 endpoints).
func desiredSlices(svc *catalog.ImportedService) []*discoveryv1.EndpointSlice {
	type addrKey struct{ cluster, address string }
	type addrInfo struct {
		ports map[string]int32 // port name -> target port
		ep    catalog.ViewEndpoint
	}
	addrs := map[addrKey]*addrInfo{}
	var order []addrKey
	for _, ep := range svc.Endpoints {
		k := addrKey{ep.Locality.Cluster, ep.Address}
		ai, ok := addrs[k]
		if !ok {
			ai = &addrInfo{ports: map[string]int32{}, ep: ep}
			addrs[k] = ai
			order = append(order, k)
		}
		ai.ports[ep.PortName] = ep.Port
		// An address is as ready as its least ready port.
		ai.ep.Healthy = ai.ep.Healthy && ep.Healthy
		ai.ep.Serving = ai.ep.Serving && ep.Serving
	}

	type groupKey struct {
		cluster string
		family  discoveryv1.AddressType
		sig     string
	}
	groups := map[groupKey][]addrKey{}
	var gorder []groupKey
	for _, k := range order {
		ai := addrs[k]
		g := groupKey{cluster: k.cluster, family: addressType(k.address), sig: portSignature(ai.ports)}
		if _, ok := groups[g]; !ok {
			gorder = append(gorder, g)
		}
		groups[g] = append(groups[g], k)
	}
	sort.Slice(gorder, func(i, j int) bool {
		a, b := gorder[i], gorder[j]
		if a.cluster != b.cluster {
			return a.cluster < b.cluster
		}
		if a.family != b.family {
			return a.family < b.family
		}
		return a.sig < b.sig
	})

	protoOf := map[string]catalog.Port{}
	for _, p := range svc.Ports {
		protoOf[p.Name] = p
	}
	var out []*discoveryv1.EndpointSlice
	for _, g := range gorder {
		members := groups[g]
		sort.Slice(members, func(i, j int) bool { return members[i].address < members[j].address })
		ports := addrs[members[0]].ports
		for chunk := 0; chunk*maxSliceEndpoints < len(members); chunk++ {
			part := members[chunk*maxSliceEndpoints : min(len(members), (chunk+1)*maxSliceEndpoints)]
			es := &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{
					Name:      sliceName(svc.Name, g.cluster, string(g.family), g.sig, chunk),
					Namespace: svc.Namespace,
					Labels: map[string]string{
						mcsv1alpha1.LabelServiceName:   svc.Name,
						mcsv1alpha1.LabelSourceCluster: g.cluster,
						discoveryv1.LabelManagedBy:     SliceManagedBy,
					},
				},
				AddressType: g.family,
			}
			names := make([]string, 0, len(ports))
			for n := range ports {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				p := discoveryv1.EndpointPort{Port: ptr(ports[n]), Protocol: ptr(protocol(protoOf[n].Protocol))}
				p.Name = ptr(n)
				if ap := protoOf[n].AppProtocol; ap != "" {
					p.AppProtocol = ptr(ap)
				}
				es.Ports = append(es.Ports, p)
			}
			for _, k := range part {
				ep := addrs[k].ep
				e := discoveryv1.Endpoint{
					Addresses: []string{k.address},
					Conditions: discoveryv1.EndpointConditions{
						Ready:       ptr(ep.Healthy),
						Serving:     ptr(ep.Serving),
						Terminating: ptr(!ep.Ready && ep.Serving),
					},
				}
				if ep.Locality.Zone != "" {
					e.Zone = ptr(ep.Locality.Zone)
				}
				es.Endpoints = append(es.Endpoints, e)
			}
			out = append(out, es)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func addressType(a string) discoveryv1.AddressType {
	if addr, err := netip.ParseAddr(a); err == nil && addr.Is6() && !addr.Is4In6() {
		return discoveryv1.AddressTypeIPv6
	}
	return discoveryv1.AddressTypeIPv4
}

func portSignature(ports map[string]int32) string {
	parts := make([]string, 0, len(ports))
	for n, p := range ports {
		parts = append(parts, n+"="+strconv.Itoa(int(p)))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// sliceName is NAME-CLUSTER-HASH, where the hash covers everything that
// tells the slices of one service apart, so that names never collide
// (service "a-b" of cluster "c" and service "a" of cluster "b-c").
func sliceName(service, cluster, family, sig string, chunk int) string {
	h := sha256.Sum256([]byte(service + "\x00" + cluster + "\x00" + family + "\x00" + sig + "\x00" + strconv.Itoa(chunk)))
	return fmt.Sprintf("%s-%s-%s", service, cluster, hex.EncodeToString(h[:])[:8])
}

// ExportConditions returns the conditions of the local cluster's
// ServiceExport of key, given the merged view and the export's validity
// (nil when the source has not judged it). Valid comes from the validity;
// Conflict from the view's conditions about the local cluster's export,
// False with NoConflicts when the service is in the view without one, and
// absent while the view does not have the service yet.
func ExportConditions(v *catalog.View, local string, key catalog.ServiceKey, validity *Validity) []metav1.Condition {
	var out []metav1.Condition
	if validity != nil {
		c := metav1.Condition{Type: catalog.ConditionValid, Status: metav1.ConditionTrue, Reason: validity.Reason, Message: validity.Message}
		if !validity.Valid {
			c.Status = metav1.ConditionFalse
		}
		if c.Message == "" {
			c.Message = "the Service is exported"
		}
		out = append(out, c)
	}
	if v == nil || validity == nil || !validity.Valid {
		return out
	}
	for i := range v.Services {
		svc := &v.Services[i]
		if svc.Key() != key {
			continue
		}
		for _, c := range svc.Conditions {
			if c.Cluster == local && c.Type == catalog.ConditionConflict {
				return append(out, metav1.Condition{Type: c.Type, Status: metav1.ConditionStatus(c.Status), Reason: c.Reason, Message: c.Message})
			}
		}
		for _, c := range svc.Clusters {
			if c == local {
				return append(out, metav1.Condition{Type: catalog.ConditionConflict, Status: metav1.ConditionFalse, Reason: catalog.ReasonNoConflicts, Message: "no conflicting exports in other clusters"})
			}
		}
	}
	return out
}

// mergeConditions applies want to have with meta.SetStatusCondition (which
// keeps the transition time of a condition whose status did not change)
// and reports whether anything changed. Conditions of other types are kept.
func mergeConditions(have *[]metav1.Condition, want []metav1.Condition, generation int64) bool {
	changed := false
	for _, c := range want {
		c.ObservedGeneration = generation
		if meta.SetStatusCondition(have, c) {
			changed = true
		}
	}
	return changed
}
