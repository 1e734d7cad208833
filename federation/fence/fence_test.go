package fence

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	cfg := Config{CatalogPeriod: 15 * time.Second, ProbeFailures: 3, ProbeGrace: 4 * time.Second, StaleAfter: time.Hour}
	now := at(time.Minute)
	reachable := Catalog{Reachable: true, Since: at(0), LastState: at(59 * time.Second)}
	// down since 20 s: more than the catalog period.
	down := Catalog{Since: at(40 * time.Second), LastState: at(40 * time.Second)}
	// down since 5 s: less than the catalog period.
	downShort := Catalog{Since: at(55 * time.Second), LastState: at(55 * time.Second)}
	ok := Probe{Probing: true, Since: at(0), Last: at(59 * time.Second), LastOK: at(59 * time.Second)}
	failing := func(n int) Probe {
		return Probe{Probing: true, Since: at(0), Failures: n, Unanswered: n, Last: at(59 * time.Second), LastOK: at(50 * time.Second)}
	}
	tests := []struct {
		name string
		in   Input
		want Verdict
		// reason is a part the reason must contain.
		reason string
	}{
		{name: "all well", in: Input{Serf: SerfAlive, Catalog: reachable, Probe: ok},
			want: Verdict{Rule: RuleHealthy}, reason: "gateway answers probes"},
		{name: "all well, not probed", in: Input{Serf: SerfAlive, Catalog: reachable},
			want: Verdict{Rule: RuleHealthy}, reason: "control plane reachable"},
		{name: "leaving wins over a serving gateway", in: Input{Serf: SerfLeaving, Catalog: reachable, Probe: ok},
			want: Verdict{Fenced: true, Rule: RuleLeaving}, reason: "left"},
		{name: "control plane killed, gateway serves: serf failed", in: Input{Serf: SerfFailed, Catalog: down, Probe: ok},
			want: Verdict{Rule: RuleGatewayServes}, reason: "serf reports the control plane failed, but its gateway answers"},
		{name: "control plane killed, gateway serves: catalog gone, serf unknown (restart during outage)", in: Input{Serf: SerfUnknown, Catalog: down, Probe: ok},
			want: Verdict{Rule: RuleGatewayServes}, reason: "catalog unreachable for more than 15s"},
		{name: "control plane and gateway dead: serf failed, one probe failed", in: Input{Serf: SerfFailed, Catalog: downShort, Probe: failing(1)},
			want: Verdict{Fenced: true, Rule: RuleControlPlaneAndGatewayDown}, reason: "failed and its gateway probe failed"},
		{name: "gateway dead, control plane alive: below the failure bound", in: Input{Serf: SerfAlive, Catalog: reachable, Probe: failing(2)},
			want: Verdict{Rule: RuleHealthy}, reason: "control plane reachable"},
		{name: "gateway dead, control plane alive: at the failure bound", in: Input{Serf: SerfAlive, Catalog: reachable, Probe: failing(3)},
			want: Verdict{Fenced: true, Rule: RuleGatewayDown}, reason: "3 probes in a row unanswered"},
		{name: "gateway answers but no endpoint behind it, control plane alive: the catalog decides", in: Input{Serf: SerfAlive, Catalog: reachable,
			Probe: Probe{Probing: true, Since: at(0), Failures: 9, Last: at(59 * time.Second)}},
			want: Verdict{Rule: RuleHealthy}},
		{name: "gateway answers but no endpoint behind it, control plane gone", in: Input{Serf: SerfFailed, Catalog: down,
			Probe: Probe{Probing: true, Since: at(0), Failures: 1, Last: at(59 * time.Second)}},
			want: Verdict{Fenced: true, Rule: RuleControlPlaneAndGatewayDown}},
		{name: "gateway dead, catalog down briefly, serf alive", in: Input{Serf: SerfAlive, Catalog: downShort, Probe: failing(2)},
			want: Verdict{Rule: RuleHealthy}},
		{name: "no probing: serf failed fences, reason as before", in: Input{Serf: SerfFailed, Catalog: downShort},
			want: Verdict{Fenced: true, Rule: RuleControlPlaneDown, Reason: "serf reports the control plane failed"}},
		{name: "no probing: catalog down past the period fences", in: Input{Serf: SerfAlive, Catalog: down},
			want: Verdict{Fenced: true, Rule: RuleControlPlaneDown, Reason: "catalog unreachable for more than 15s"}},
		{name: "no probing: catalog down less than the period", in: Input{Serf: SerfAlive, Catalog: downShort},
			want: Verdict{Rule: RuleHealthy, Reason: "catalog unreachable for less than 15s"}},
		{name: "probe result too old is no evidence", in: Input{Serf: SerfFailed, Catalog: down,
			Probe: Probe{Probing: true, Since: at(0), Last: at(50 * time.Second), LastOK: at(50 * time.Second)}},
			want: Verdict{Fenced: true, Rule: RuleControlPlaneDown}, reason: "no recent gateway probe result"},
		{name: "old failures are no evidence either", in: Input{Serf: SerfAlive, Catalog: reachable,
			Probe: Probe{Probing: true, Since: at(0), Failures: 9, Last: at(50 * time.Second)}},
			want: Verdict{Rule: RuleHealthy}},
		{name: "awaiting the first probe", in: Input{Serf: SerfFailed, Catalog: down, Probe: Probe{Probing: true, Since: at(58 * time.Second)}},
			want: Verdict{Rule: RuleAwaitingProbe}, reason: "awaiting"},
		{name: "first probe overdue", in: Input{Serf: SerfFailed, Catalog: down, Probe: Probe{Probing: true, Since: at(50 * time.Second)}},
			want: Verdict{Fenced: true, Rule: RuleControlPlaneDown}},
		{name: "gateway serves but state too old", in: Input{Serf: SerfFailed,
			Catalog: Catalog{Since: at(-2 * time.Hour), LastState: at(-2 * time.Hour)}, Probe: ok},
			want: Verdict{Fenced: true, Rule: RuleStale}, reason: "older than 1h0m0s"},
		{name: "gateway serves, state never confirmed: nothing to be stale", in: Input{Serf: SerfUnknown,
			Catalog: Catalog{Since: at(0)}, Probe: ok},
			want: Verdict{Rule: RuleGatewayServes}},
		{name: "control plane alive, state old: alive catalogs confirm it", in: Input{Serf: SerfAlive,
			Catalog: Catalog{Reachable: true, Since: at(-3 * time.Hour), LastState: at(-2 * time.Hour)}, Probe: ok},
			want: Verdict{Rule: RuleHealthy}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = now
			got := Decide(cfg, tt.in)
			if !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", got.Reason, tt.reason)
			}
			if tt.want.Reason == "" {
				tt.want.Reason = got.Reason
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
			if got.Reason == "" {
				t.Error("no reason")
			}
		})
	}
}

// TestDecideDeadPeerBound walks a peer that dies at t=0 (control plane
// and gateway, connections refused) through probe rounds a second apart
// with serf silent: it is fenced at the ProbeFailures-th failure, and
// not before.
func TestDecideDeadPeerBound(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	cfg := Config{}
	p := Probe{Probing: true, Since: t0.Add(-time.Hour), Last: t0, LastOK: t0}
	for i := 1; i <= DefaultProbeFailures; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		p.Failures, p.Unanswered, p.Last = i, i, now
		v := Decide(cfg, Input{Now: now, Serf: SerfAlive, Catalog: Catalog{Since: t0, LastState: t0}, Probe: p})
		if want := i == DefaultProbeFailures; v.Fenced != want {
			t.Fatalf("after %d failures: fenced %v (%s), want %v", i, v.Fenced, v.Reason, want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.WithDefaults()
	want := Config{CatalogPeriod: DefaultCatalogPeriod, ProbeFailures: DefaultProbeFailures, ProbeGrace: DefaultProbeGrace, StaleAfter: DefaultStaleAfter}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
