package demo

import "time"

// Federation are the gossip and fencing timings of the demo's control
// planes.
type Federation struct {
	// Name names the timings in reports.
	Name string `json:"name"`
	// GossipProfile is the control planes' --gossip-profile (wan, lan,
	// local); "" leaves the control plane's default.
	GossipProfile string `json:"gossipProfile,omitempty"`
	// FencePeriod is their --fence-period; 0 leaves the control plane's
	// default.
	FencePeriod time.Duration `json:"fencePeriod,omitempty"`
}

// LocalFederation is what the demo runs with: the local gossip profile
// and a 5s fence period, for a demo that moves quickly on one machine.
var LocalFederation = Federation{Name: "local", GossipProfile: "local", FencePeriod: 5 * time.Second}

// DefaultFederation leaves every timing at the control plane's default
// (the WAN gossip profile and its fence period), as a real federation
// runs.
var DefaultFederation = Federation{Name: "defaults (wan)"}

// args are the control plane flags of f; nil f means LocalFederation.
func (f *Federation) args() []string {
	if f == nil {
		f = &LocalFederation
	}
	var out []string
	if f.GossipProfile != "" {
		out = append(out, "--gossip-profile", f.GossipProfile)
	}
	if f.FencePeriod != 0 {
		out = append(out, "--fence-period", f.FencePeriod.String())
	}
	return out
}
