package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/fedmesh/fedmesh/federation/gwprobe"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/federation/merge"
	"github.com/fedmesh/fedmesh/internal/httpjson"
)

// Paths served by Handler.
const (
	StatusPath = "/federation/v1/status"
	ViewPath   = "/debug/view"
)

// Status is what `fedmesh status` shows: the members as this control
// plane sees them, the fenced peers, and the conflicts of the view.
type Status struct {
	// Cluster is this cluster's name.
	Cluster string `json:"cluster"`
	// ViewRevision is the revision of the last published view.
	ViewRevision uint64 `json:"viewRevision"`
	// ViewHash is merge.Hash of that view: equal on every cluster that
	// agrees on the federation.
	ViewHash string `json:"viewHash"`
	// Services counts the services of the view.
	Services int `json:"services"`
	// Members are this cluster first, then its peers by name.
	Members []MemberStatus `json:"members"`
	// Fenced lists the fenced peers with why.
	Fenced []FencedPeer `json:"fenced,omitempty"`
	// Conflicts lists every export in conflict.
	Conflicts []Conflict `json:"conflicts,omitempty"`
	// RefusedPolicies lists the exports whose producer policies were
	// refused; they are merged as if they carried none.
	RefusedPolicies []RefusedPolicies `json:"refusedPolicies,omitempty"`
	// Untrusted lists the gossip members that have not proved the
	// control plane identity of the cluster they name: they are not
	// members, and nothing is granted to or read from them.
	Untrusted []UntrustedMember `json:"untrusted,omitempty"`
}

// UntrustedMember is a gossip member waiting for, or failing, its proof.
type UntrustedMember struct {
	Name string `json:"name"`
	// Addr is its gossip address.
	Addr string `json:"addr"`
	// CatalogAddress is the catalog URL it announces, where it was asked
	// for its certificate.
	CatalogAddress string `json:"catalogAddress,omitempty"`
	// State is its gossip status.
	State string `json:"state"`
	// Reason is "proving" before the first answer, else why the last
	// proof failed (a reason label of package proof).
	Reason string `json:"reason"`
	// Error is the last proof's error, for humans.
	Error string `json:"error,omitempty"`
	// Since is when this instance of the member was first seen.
	Since time.Time `json:"since"`
	// Attempts counts the proofs that answered.
	Attempts int `json:"attempts"`
}

// MemberStatus is one cluster of the federation.
type MemberStatus struct {
	Name string `json:"name"`
	// Local is true for this cluster.
	Local bool `json:"local,omitempty"`
	// State is the gossip status (alive, leaving, left, failed), or
	// "unknown" for a peer known only from persisted imports.
	State  string `json:"state"`
	Region string `json:"region,omitempty"`
	Zone   string `json:"zone,omitempty"`
	// RTT is the round trip estimated from serf's coordinates.
	RTT Duration `json:"rtt,omitempty"`
	// CatalogAddress is the etcd URL the peer is replicated from.
	CatalogAddress string `json:"catalogAddress,omitempty"`
	// Connected is true while the peer's catalog answers.
	Connected bool `json:"connected"`
	// CatalogRevision is the peer revision the imported exports are at
	// (for this cluster: of its own exports).
	CatalogRevision int64 `json:"catalogRevision"`
	// PeerRevision is the peer's etcd revision at the last probe.
	PeerRevision int64 `json:"peerRevision,omitempty"`
	// LastSync is when the peer last answered.
	LastSync time.Time `json:"lastSync,omitzero"`
	// ImportLag is how long ago that was.
	ImportLag Duration `json:"importLag,omitempty"`
	// Exports counts the cluster's exported services.
	Exports int `json:"exports"`
	// Fenced and FenceReason tell whether its endpoints are fenced.
	Fenced      bool   `json:"fenced,omitempty"`
	FenceReason string `json:"fenceReason,omitempty"`
	// FenceRule is the rule of package fence that decided, fenced or
	// trusted (healthy, gateway_serves, gateway_down, ...), and
	// FenceDecision says why in words; empty for this cluster.
	FenceRule     string `json:"fenceRule,omitempty"`
	FenceDecision string `json:"fenceDecision,omitempty"`
	// GatewayProbe is how the probes of the peer's gateway are doing
	// (through an exported service, or at the gateway itself when the
	// peer exports nothing with a ready endpoint: Self); absent when it
	// is not probed (probes off, or no gateway).
	GatewayProbe *gwprobe.Result `json:"gatewayProbe,omitempty"`
	// LastError is the last replication error, for humans.
	LastError string `json:"lastError,omitempty"`
	// Replicas are the gossip members (CLUSTER.REPLICA) of a peer whose
	// control plane runs several replicas and that proved the cluster's
	// identity; the peer is replicated from one of them (CatalogAddress).
	Replicas []string `json:"replicas,omitempty"`
	// Identity is the control plane SPIFFE ID the peer proved; empty
	// while it has not (yet) in this run, when it is known only from
	// persisted imports or proving a new instance.
	Identity string `json:"identity,omitempty"`
}

// FencedPeer is a fenced peer and why.
type FencedPeer struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Conflict is one export in conflict (an MCS Conflict condition).
type Conflict struct {
	Service string `json:"service"`
	Cluster string `json:"cluster"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Duration renders as Go's duration text ("1.5ms") in JSON and YAML.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Status asks Run for the federation's status; it returns ErrNotRunning
// before Run is called and after it returned.
func (f *Federation) Status(ctx context.Context) (Status, error) {
	if !f.started.Load() {
		return Status{}, ErrNotRunning
	}
	reply := make(chan Status, 1)
	select {
	case f.statusReq <- reply:
	case <-f.done:
		return Status{}, ErrNotRunning
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
	select {
	case s := <-reply:
		return s, nil
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
}

// status builds the Status; it runs on Run's goroutine.
func (f *Federation) status() Status {
	now := f.cfg.Now()
	st := Status{Cluster: f.cfg.Cluster}
	if v := f.view.Load(); v != nil {
		st.ViewRevision = v.Revision
		st.ViewHash = merge.Hash(v)
		st.Services = len(v.Services)
		for _, s := range v.Services {
			for _, c := range s.Conditions {
				st.Conflicts = append(st.Conflicts, Conflict{Service: s.Key().String(), Cluster: c.Cluster, Reason: c.Reason, Message: c.Message})
			}
		}
	}
	st.Members = append(st.Members, MemberStatus{
		Name: f.cfg.Cluster, Local: true, State: string(membership.StatusAlive),
		Region: f.cfg.Locality.Region, Zone: f.cfg.Locality.Zone,
		Connected: true, CatalogRevision: f.local.Revision, Exports: len(f.local.Exports),
	})
	for _, name := range slices.Sorted(maps.Keys(f.peers)) {
		p := f.peers[name]
		loc := f.localityOf(p)
		ms := MemberStatus{
			Name: name, State: "unknown", Region: loc.Region, Zone: loc.Zone,
			RTT: Duration(p.rtt), CatalogRevision: p.revision, LastSync: p.lastSync,
			Exports: len(p.exports), Fenced: p.fenced, FenceReason: p.reason,
			Identity:  p.identity,
			FenceRule: p.verdict.Rule, FenceDecision: p.verdict.Reason,
		}
		if f.prober != nil {
			if r, ok := f.prober.Result(name); ok {
				ms.GatewayProbe = &r
			}
		}
		if p.member != nil {
			ms.State = string(p.member.Status)
			ms.CatalogAddress = p.member.CatalogAddr
		}
		for _, r := range p.proven {
			if r != name {
				ms.Replicas = append(ms.Replicas, r)
			}
		}
		slices.Sort(ms.Replicas)
		if p.rep != nil {
			rs := p.rep.r.State()
			ms.Connected = rs.Connected
			ms.PeerRevision = rs.PeerRevision
			ms.LastError = rs.LastError
			if rs.LastContact.After(ms.LastSync) {
				ms.LastSync = rs.LastContact
			}
		}
		if !ms.LastSync.IsZero() {
			ms.ImportLag = Duration(now.Sub(ms.LastSync))
		}
		st.Members = append(st.Members, ms)
		if p.fenced {
			st.Fenced = append(st.Fenced, FencedPeer{Name: name, Reason: p.reason})
		}
	}
	st.RefusedPolicies = f.refusedPolicies()
	for _, name := range slices.Sorted(maps.Keys(f.candidates)) {
		c := f.candidates[name]
		st.Untrusted = append(st.Untrusted, UntrustedMember{
			Name: name, Addr: c.member.Addr, CatalogAddress: c.member.CatalogAddr, State: string(c.member.Status),
			Reason: c.reason, Error: c.err, Since: c.since, Attempts: c.attempts,
		})
	}
	return st
}

// Handler serves StatusPath (the Status as JSON) and ViewPath (the last
// view as JSON) for the control plane's admin port.
func (f *Federation) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, r *http.Request) {
		st, err := f.Status(r.Context())
		if err != nil {
			http.Error(w, "federation status: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		httpjson.Write(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET "+ViewPath, func(w http.ResponseWriter, _ *http.Request) {
		v := f.View()
		if v == nil {
			http.Error(w, "federation view: none published yet", http.StatusServiceUnavailable)
			return
		}
		httpjson.Write(w, http.StatusOK, v)
	})
	return mux
}
