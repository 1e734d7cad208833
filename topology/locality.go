package topology

import "strings"

// Locality is where an endpoint or a client runs: a region, a zone inside
// it, and the fedmesh cluster it belongs to. Zones are named per region, as
// in Kubernetes (topology.kubernetes.io/zone), so two zones compare equal
// only when their regions do too.
type Locality struct {
	Region  string `json:"region,omitempty"`
	Zone    string `json:"zone,omitempty"`
	Cluster string `json:"cluster,omitempty"`
}

// String renders the locality as region/zone/cluster, with empty parts kept
// so that the form can be parsed back.
func (l Locality) String() string {
	return l.Region + "/" + l.Zone + "/" + l.Cluster
}

// ParseLocality reads the form written by String. Missing trailing parts are
// empty.
func ParseLocality(s string) Locality {
	parts := strings.SplitN(s, "/", 3)
	var l Locality
	if len(parts) > 0 {
		l.Region = parts[0]
	}
	if len(parts) > 1 {
		l.Zone = parts[1]
	}
	if len(parts) > 2 {
		l.Cluster = parts[2]
	}
	return l
}
