package merge

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/fedmesh/fedmesh/catalog"
)

// Health reasons of merged endpoints (the fenced reason is built per
// cluster by FenceHealthReason).
const (
	HealthNotReady    = "not ready"
	HealthTerminating = "terminating"
)

// FenceHealthReason is the HealthReason of an endpoint of a fenced cluster.
func FenceHealthReason(cluster, fenceReason string) string {
	return "cluster " + cluster + " fenced: " + fenceReason
}

// Merge builds the view that cluster local has of the federation.
//
// clusters describes the known clusters by name (locality, gateway, RTT,
// fencing); exports holds each cluster's exports, by cluster name. The map
// key names the exporting cluster, whatever an export's Service.Cluster
// says; clusters that export but are missing from clusters get a bare
// ClusterInfo. Within one cluster a service key should appear once; when it
// appears more often the last one counts. The result shares no memory with
// the inputs, and its Revision is zero: the caller numbers views.
func Merge(local string, clusters map[string]catalog.ClusterInfo, exports map[string][]catalog.Export) catalog.View {
	view := catalog.View{
		Local:    local,
		Clusters: make(map[string]catalog.ClusterInfo, len(clusters)),
	}
	for name, ci := range clusters {
		ci.Name = name
		view.Clusters[name] = ci
	}

	byKey := make(map[catalog.ServiceKey][]candidate)
	for _, cluster := range slices.Sorted(maps.Keys(exports)) {
		if _, ok := view.Clusters[cluster]; !ok {
			view.Clusters[cluster] = catalog.ClusterInfo{Name: cluster}
		}
		seen := make(map[catalog.ServiceKey]int)
		for i := range exports[cluster] {
			c := candidate{cluster: cluster, export: &exports[cluster][i]}
			k := c.export.Service.Key()
			if j, dup := seen[k]; dup {
				byKey[k][j] = c
				continue
			}
			seen[k] = len(byKey[k])
			byKey[k] = append(byKey[k], c)
		}
	}

	keys := slices.SortedFunc(maps.Keys(byKey), compareKeys)
	view.Services = make([]catalog.ImportedService, 0, len(keys))
	for _, k := range keys {
		view.Services = append(view.Services, mergeService(local, k, byKey[k], view.Clusters))
	}
	return view
}

func compareKeys(a, b catalog.ServiceKey) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

// candidate is one cluster's export of a service.
type candidate struct {
	cluster string
	export  *catalog.Export
}

// conflict is how one export disagrees with the winner.
type conflict struct {
	reason  string // "" when the export agrees with the winner
	details []string
}

// rank orders conflict reasons: a higher one is reported over a lower one.
func rank(reason string) int {
	switch reason {
	case catalog.ReasonTypeConflict:
		return 4
	case catalog.ReasonPortConflict:
		return 3
	case catalog.ReasonAppProtocolConflict:
		return 2
	case catalog.ReasonPolicyConflict:
		return 1
	}
	return 0
}

// notes collects what the merge of one service says about each cluster's
// export; every cluster with notes gets one Conflict condition, with the
// highest ranked reason and the messages in the order they were added.
type notes map[string][]note

type note struct{ reason, message string }

func (n notes) add(cluster, reason, message string) {
	n[cluster] = append(n[cluster], note{reason, message})
}

func (n notes) conditions() []catalog.Condition {
	out := make([]catalog.Condition, 0, len(n))
	for _, cluster := range slices.Sorted(maps.Keys(n)) {
		c := catalog.Condition{Type: catalog.ConditionConflict, Status: "True", Cluster: cluster}
		msgs := make([]string, 0, len(n[cluster]))
		for _, nt := range n[cluster] {
			if rank(nt.reason) > rank(c.Reason) {
				c.Reason = nt.reason
			}
			msgs = append(msgs, nt.message)
		}
		c.Message = strings.Join(msgs, "; ")
		out = append(out, c)
	}
	return out
}

func mergeService(local string, k catalog.ServiceKey, cands []candidate, clusters map[string]catalog.ClusterInfo) catalog.ImportedService {
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(a.export.Service.ExportCreated.Compare(b.export.Service.ExportCreated), strings.Compare(a.cluster, b.cluster))
	})
	winner := cands[0]
	ws := &winner.export.Service
	svc := catalog.ImportedService{
		Namespace: k.Namespace,
		Name:      k.Name,
		Type:      ws.Type,
		Ports:     sortedPorts(ws.Ports),
	}
	winnerPorts := portSet(ws.Ports)

	var losers []string
	worst := ""
	conflicts := notes{}
	var merged []candidate
	for _, c := range cands {
		var cf conflict
		if c.cluster != winner.cluster {
			cf = compare(ws, winnerPorts, &c.export.Service)
		}
		if cf.reason != "" {
			losers = append(losers, c.cluster+" ("+cf.reason+")")
			if rank(cf.reason) > rank(worst) {
				worst = cf.reason
			}
			conflicts.add(c.cluster, cf.reason, fmt.Sprintf("export from %s conflicts with the oldest export, from %s: %s", c.cluster, winner.cluster, strings.Join(cf.details, "; ")))
		}
		if cf.reason == catalog.ReasonTypeConflict {
			continue // not merged: see the package doc
		}
		merged = append(merged, c)
		svc.Clusters = append(svc.Clusters, c.cluster)
		if c.cluster == local && len(c.export.Service.ClusterIPs) > 0 {
			svc.LocalClusterIPs = slices.Clone(c.export.Service.ClusterIPs)
		}
		ports := portSet(c.export.Service.Ports)
		info := clusters[c.cluster]
		for _, ep := range c.export.Endpoints {
			if cf.reason == catalog.ReasonPortConflict {
				p, ok := ports[ep.PortName]
				if wp, wok := winnerPorts[ep.PortName]; !ok || !wok || p != wp {
					continue // a port the merged service does not have
				}
			}
			svc.Endpoints = append(svc.Endpoints, viewEndpoint(c.cluster, ep, info))
		}
	}
	if len(losers) > 0 {
		conflicts.add(winner.cluster, worst, fmt.Sprintf("oldest export, from %s, wins; conflicting exports: %s", winner.cluster, strings.Join(losers, ", ")))
	}
	mergePolicies(&svc, merged, conflicts)
	mergeQuotas(&svc, merged)
	if len(conflicts) > 0 {
		svc.Conditions = conflicts.conditions()
	}
	slices.Sort(svc.Clusters)
	slices.SortFunc(svc.Endpoints, compareEndpoints)
	if svc.Endpoints == nil {
		svc.Endpoints = []catalog.ViewEndpoint{}
	}
	return svc
}

// mergePolicies puts in force the producer policies of the oldest merged
// export that carries any (merged is sorted oldest first) and notes every
// other export whose policies differ from them (by Digest) as a
// PolicyConflict, on both sides. Exports without policies never conflict.
func mergePolicies(svc *catalog.ImportedService, merged []candidate, conflicts notes) {
	var winner *candidate
	var losers []string
	for i := range merged {
		c := &merged[i]
		p := c.export.Policies
		if p == nil {
			continue
		}
		if winner == nil {
			winner = c
			svc.Policies = clonePolicies(p)
			svc.PoliciesCluster = c.cluster
			continue
		}
		if p.Digest == winner.export.Policies.Digest {
			continue
		}
		losers = append(losers, c.cluster)
		conflicts.add(c.cluster, catalog.ReasonPolicyConflict, fmt.Sprintf(
			policyLoserMessage, c.cluster, p.Digest, winner.cluster, winner.export.Policies.Digest))
	}
	if len(losers) > 0 {
		conflicts.add(winner.cluster, catalog.ReasonPolicyConflict, fmt.Sprintf(
			policyWinnerMessage, winner.cluster, strings.Join(losers, ", ")))
	}
}

// Messages of policy conflicts. A Conflict condition whose reason is
// worse (a port conflict of the same export) still carries them.
const (
	policyLoserMessage  = "producer policies from %s (digest %s) differ from those in force, from %s (digest %s), the oldest export that carries any"
	policyWinnerMessage = "producer policies of the oldest export that carries any, from %s, are in force; conflicting producer policies: %s"
)

// IsPolicyConflict reports whether condition c reports a policy
// conflict: its reason is PolicyConflict, or a worse reason of the same
// export also carries the policy conflict's message.
func IsPolicyConflict(c catalog.Condition) bool {
	if c.Type != catalog.ConditionConflict {
		return false
	}
	return c.Reason == catalog.ReasonPolicyConflict || strings.Contains(c.Message, "producer policies from ") || strings.Contains(c.Message, "producer policies of the oldest export")
}

// clonePolicies copies p, so that the view shares no memory with the
// exports it was merged from.
func clonePolicies(p *catalog.Policies) *catalog.Policies {
	out := &catalog.Policies{Digest: p.Digest, Objects: make([]json.RawMessage, len(p.Objects))}
	for i, o := range p.Objects {
		out.Objects[i] = slices.Clone(o)
	}
	return out
}

func compareEndpoints(a, b catalog.ViewEndpoint) int {
	return cmp.Or(
		strings.Compare(a.Locality.Cluster, b.Locality.Cluster),
		strings.Compare(a.Address, b.Address),
		strings.Compare(a.PortName, b.PortName),
		cmp.Compare(a.Port, b.Port),
		strings.Compare(a.Workload, b.Workload),
		strings.Compare(a.ServiceAccount, b.ServiceAccount),
		strings.Compare(a.Locality.String(), b.Locality.String()),
		cmpBool(a.Ready, b.Ready),
		cmpBool(a.Serving, b.Serving),
	)
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}

func viewEndpoint(cluster string, ep catalog.Endpoint, info catalog.ClusterInfo) catalog.ViewEndpoint {
	ep.Locality.Cluster = cluster
	ve := catalog.ViewEndpoint{Endpoint: ep, Healthy: ep.Ready && !info.Fenced}
	switch {
	case info.Fenced:
		ve.HealthReason = FenceHealthReason(cluster, info.FenceReason)
	case !ep.Ready && ep.Serving:
		ve.HealthReason = HealthTerminating
	case !ep.Ready:
		ve.HealthReason = HealthNotReady
	}
	return ve
}

// wirePort is what must be equal for two ports of the same name to be the
// same port on the wire.
type wirePort struct {
	number   int32
	protocol catalog.Protocol
}

// portSet maps port names to their number and protocol (empty meaning TCP).
func portSet(ports []catalog.Port) map[string]wirePort {
	m := make(map[string]wirePort, len(ports))
	for _, p := range ports {
		m[p.Name] = wirePort{number: p.Port, protocol: normProto(p.Protocol)}
	}
	return m
}

func normProto(p catalog.Protocol) catalog.Protocol {
	if p == "" {
		return catalog.TCP
	}
	return p
}

// compare says how s disagrees with the winner w.
func compare(w *catalog.Service, wPorts map[string]wirePort, s *catalog.Service) conflict {
	var cf conflict
	worse := func(reason, detail string) {
		if rank(reason) > rank(cf.reason) {
			cf.reason = reason
		}
		cf.details = append(cf.details, detail)
	}
	if s.Type != w.Type {
		worse(catalog.ReasonTypeConflict, fmt.Sprintf("type %s, not %s", s.Type, w.Type))
	}
	sPorts := portSet(s.Ports)
	if !maps.Equal(sPorts, wPorts) || len(s.Ports) != len(w.Ports) {
		worse(catalog.ReasonPortConflict, fmt.Sprintf("ports %s, not %s", renderPorts(s.Ports), renderPorts(w.Ports)))
	} else {
		wApp := make(map[string]string, len(w.Ports))
		for _, p := range w.Ports {
			wApp[p.Name] = p.AppProtocol
		}
		for _, p := range sortedPorts(s.Ports) {
			if wApp[p.Name] != p.AppProtocol {
				worse(catalog.ReasonAppProtocolConflict, fmt.Sprintf("port %s appProtocol %q, not %q", portLabel(p), p.AppProtocol, wApp[p.Name]))
			}
		}
	}
	return cf
}

func sortedPorts(ports []catalog.Port) []catalog.Port {
	out := slices.Clone(ports)
	slices.SortFunc(out, func(a, b catalog.Port) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), strings.Compare(string(normProto(a.Protocol)), string(normProto(b.Protocol))), strings.Compare(a.Name, b.Name), strings.Compare(a.AppProtocol, b.AppProtocol))
	})
	if out == nil {
		out = []catalog.Port{}
	}
	return out
}

func portLabel(p catalog.Port) string {
	name := p.Name
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Sprintf("%s:%d/%s", name, p.Port, normProto(p.Protocol))
}

func renderPorts(ports []catalog.Port) string {
	parts := make([]string, 0, len(ports))
	for _, p := range sortedPorts(ports) {
		parts = append(parts, portLabel(p))
	}
	return "[" + strings.Join(parts, " ") + "]"
}
