package sidecar

import (
	"strings"

	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/balancer"
	"github.com/fedmesh/fedmesh/sidecar/config"
)

// ConfigDumpView is the /config_dump page.
type ConfigDumpView struct {
	Node     NodeView          `json:"node"`
	XDS      xdsclient.Status  `json:"xds"`
	Services []*config.Service `json:"services"`
	Inbound  []config.Inbound  `json:"inbound"`
	Cert     *CertView         `json:"certificate,omitempty"`
	Versions map[string]string `json:"versions"`
	Bound    map[string]string `json:"listeners"`
}

// NodeView describes the sidecar's node.
type NodeView struct {
	Cluster        string `json:"cluster"`
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
	Workload       string `json:"workload"`
	Outbound       string `json:"outbound"`
	Inbound        string `json:"inbound,omitempty"`
	DNS            string `json:"dns,omitempty"`
}

// CertView describes the workload certificate in use.
type CertView struct {
	ID       string `json:"id"`
	NotAfter string `json:"notAfter"`
}

// EndpointsView is one service on the /endpoints page.
type EndpointsView struct {
	Service  string            `json:"service"`
	Protocol config.Protocol   `json:"protocol"`
	Balancer balancer.Snapshot `json:"balancer"`
}

// ConfigDump implements admin.Source.
func (s *Sidecar) ConfigDump() any {
	snap := s.proxy.Snapshot()
	v := ConfigDumpView{
		Node: NodeView{Cluster: s.cfg.Cluster, Namespace: s.cfg.Namespace, ServiceAccount: s.cfg.ServiceAccount,
			Workload: s.cfg.Workload, Outbound: s.OutboundAddr(), Inbound: s.InboundAddr(), DNS: s.DNSAddr()},
		XDS:      s.xds.Status(),
		Services: snap.ServiceList(),
		Inbound:  snap.Inbound,
		Versions: snap.Versions,
		Bound:    map[string]string{},
	}
	if c := snap.Certificate; c != nil && c.Leaf != nil {
		cv := &CertView{NotAfter: c.Leaf.NotAfter.UTC().Format("2006-01-02T15:04:05Z")}
		if len(c.Leaf.URIs) == 1 {
			cv.ID = c.Leaf.URIs[0].String()
		}
		v.Cert = cv
	}
	s.mu.Lock()
	for k, m := range s.listeners {
		v.Bound[k] = m.addr
	}
	s.mu.Unlock()
	return v
}

// Endpoints implements admin.Source.
func (s *Sidecar) Endpoints() any {
	snap := s.proxy.Snapshot()
	bals := s.proxy.Balancers()
	var out []EndpointsView
	for _, svc := range snap.ServiceList() {
		b := bals[svc.Port]
		if b == nil {
			continue
		}
		out = append(out, EndpointsView{Service: svc.Port.String(), Protocol: svc.Protocol, Balancer: b.Snapshot()})
	}
	return out
}

// Ready implements admin.Source: ready once the certificate, the bundle,
// clusters and listeners have arrived. Ready from the persisted state
// (Config.DataDir) while no control plane has answered since start, with
// a "stale config" note; not ready, saying why, when the persisted state
// was refused (an expired certificate).
func (s *Sidecar) Ready() (bool, string) {
	snap := s.proxy.Snapshot()
	st := s.xds.Status()
	switch {
	case snap.Certificate == nil && strings.HasPrefix(st.Restore, "refused"):
		return false, "no control plane answered and the persisted state was " + st.Restore
	case snap.Certificate == nil:
		return false, "no workload certificate from SDS yet"
	case snap.Bundle == nil:
		return false, "no trust bundle from SDS yet"
	case snap.Versions[xdsclient.ClusterType] == "":
		return false, "no clusters from the control plane yet"
	case len(snap.Services) > 0 && snap.Versions[xdsclient.EndpointType] == "":
		return false, "no endpoints from the control plane yet"
	case snap.Versions[xdsclient.ListenerType] == "":
		return false, "no listeners from the control plane yet"
	case st.Source == xdsclient.SourcePersisted:
		return true, StaleConfigNote
	}
	return true, ""
}

// StaleConfigNote is what /ready adds while the sidecar serves the
// persisted configuration.
const StaleConfigNote = "stale config: serving the persisted configuration; no control plane has answered since start"
