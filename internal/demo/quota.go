package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// The clusterset quota phase (docs/quota.md): after the other phases, a
// RateLimitPolicy with one quota for demo/echo goes into every cluster's
// source; the clients of east-1 and west-1 (each served by its own
// cluster's echo) together ask for more than the quota, first mostly
// east-1's, then mostly west-1's, and the admitted rate must hold at the
// quota within the stated tolerance while the split follows the load.
const (
	// QuotaID is the quota's NAMESPACE/POLICY/QUOTA.
	QuotaID = "demo/echo-quota/shared"
	// QuotaFile is the policy's file in each cluster's source.
	QuotaFile = "quota.yaml"
	// quotaSettle is how long after the load moved the split may still
	// move (LRS reports, the averaging window, a round and the hold).
	quotaSettle = 6 * time.Second
	// quotaMeasure is how long each part of the phase is measured.
	quotaMeasure = 8 * time.Second
)

// QuotaResult is the quota phase's outcome.
type QuotaResult struct {
	Quota string `json:"quota"`
	// Requests is the quota per second, across the clusterset.
	Requests  int           `json:"requests"`
	Parts     []QuotaPart   `json:"parts"`
	Tolerance string        `json:"tolerance"`
	OK        bool          `json:"ok"`
	Reason    string        `json:"reason,omitempty"`
	Took      time.Duration `json:"took"`
}

// QuotaPart is one part of the quota phase: which client asks most, and
// what the clusterset admitted while it did, after quotaSettle.
type QuotaPart struct {
	Name string `json:"name"`
	// Busy is the cluster whose client asks twice the quota; the other
	// client asks a quarter of it.
	Busy string `json:"busy"`
	// Seconds is the measured window; Admitted and Refused (429) count
	// the requests of both clients that started in it, by client.
	Seconds  float64        `json:"seconds"`
	Admitted map[string]int `json:"admitted"`
	Refused  map[string]int `json:"refused"`
	// AdmittedPerSecond is the clusterset's admitted rate; Bound the most
	// the window may admit (Tolerance).
	AdmittedPerSecond float64 `json:"admittedPerSecond"`
	Bound             int     `json:"bound"`
	// BusyShare is the busy client's share of the admitted requests, in
	// percent.
	BusyShare float64 `json:"busyShare"`
	OK        bool    `json:"ok"`
	Reason    string  `json:"reason,omitempty"`
}

// quotaPolicy is the RateLimitPolicy of the phase, for q requests a
// second.
func quotaPolicy(q int) string {
	name := strings.Split(QuotaID, "/")
	return fmt.Sprintf(`apiVersion: fedmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: %s, namespace: %s}
spec:
  targetRefs: [{kind: Service, name: echo}]
  quotas:
  - {name: %s, requests: %d, interval: 1s}
`, name[1], name[0], name[2], q)
}

// quotaScenario runs the quota phase and removes the policy again.
func (d *demo) quotaScenario(ctx context.Context) (*QuotaResult, error) {
	start := time.Now()
	q := max(d.cfg.Rate*2/5, 4)
	res := &QuotaResult{Quota: QuotaID, Requests: q, OK: true,
		Tolerance: "admitted in a window of w seconds <= (w+2)·quota: the shares add up to the quota, a token bucket may start the window full and refill once, and one more quota for a share moving; the busy client gets at least 60% of what is admitted"}
	d.progress("clusterset quota: %s, %d requests/s for anyone calling demo/echo, in every cluster's source (%s)", QuotaID, q, QuotaFile)
	for _, c := range d.clusters {
		if err := os.WriteFile(filepath.Join(SourceDir(d.cfg.Dir, c), QuotaFile), []byte(quotaPolicy(q)), 0o644); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, c := range d.clusters {
			_ = os.Remove(filepath.Join(SourceDir(d.cfg.Dir, c), QuotaFile))
		}
	}()
	if err := poll(ctx, 30*time.Second, "every control plane to split the quota among every cluster", func() error {
		for _, c := range d.clusters {
			var page struct {
				Quotas []struct {
					Quota    string             `json:"quota"`
					Clusters []quotaClusterJSON `json:"clusters"`
				} `json:"quotas"`
			}
			if err := d.getJSON(c.Admin()+"/debug/quotas", &page); err != nil {
				return err
			}
			if len(page.Quotas) != 1 || len(page.Quotas[0].Clusters) != len(d.clusters) {
				return fmt.Errorf("%s splits %+v", c.Name, page.Quotas)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	callers := d.callers()
	fmt.Fprintf(d.cfg.Out, "\n%6s  %-24s %8s %8s  %-36s\n", "TIME", "QUOTA PHASE", "ADMITTED", "REFUSED", "ADMITTED BY CLIENT")
	for i := range callers {
		busy := callers[i]
		name := fmt.Sprintf("quota: %s's client busy", busy.Name)
		p, err := d.quotaPart(ctx, name, q, busy, callers)
		if err != nil {
			return res, err
		}
		if !p.OK {
			res.OK = false
			res.Reason = strings.TrimPrefix(res.Reason+"; "+p.Name+": "+p.Reason, "; ")
		}
		res.Parts = append(res.Parts, p)
	}
	res.Took = time.Since(start)
	return res, nil
}

// quotaClusterJSON is the part of a QuotaClusterStatus the demo reads.
type quotaClusterJSON struct {
	Cluster string `json:"cluster"`
	Share   int64  `json:"share"`
}

// quotaPart runs both clients, busy's at twice the quota and the other's
// at a quarter, for quotaSettle and quotaMeasure, printing a line a
// second, and judges the measured window.
func (d *demo) quotaPart(ctx context.Context, name string, q int, busy Cluster, callers []Cluster) (QuotaPart, error) {
	p := QuotaPart{Name: name, Busy: busy.Name, Admitted: map[string]int{}, Refused: map[string]int{}}
	total := quotaSettle + quotaMeasure
	loads := make([]*Load, len(callers))
	lctx, stop := context.WithTimeout(ctx, total)
	defer stop()
	var wg sync.WaitGroup
	for i, c := range callers {
		rate := max(q/4, 1)
		if c.Name == busy.Name {
			rate = 2 * q
		}
		loads[i] = &Load{URL: echoURL, Rate: rate, MaxRequests: rate * int(total/time.Second+1), Client: d.client(c)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			loads[i].Run(lctx)
		}()
	}
	began := time.Now()
	for next := began.Add(time.Second); next.Before(began.Add(total)) || next.Equal(began.Add(total)); next = next.Add(time.Second) {
		select {
		case <-ctx.Done():
			wg.Wait()
			return p, ctx.Err()
		case <-time.After(time.Until(next)):
		}
		adm, ref := map[string]int{}, 0
		for i, c := range callers {
			for _, s := range loads[i].Between(next.Add(-time.Second), next) {
				switch {
				case s.Err == nil:
					adm[c.Name]++
				case s.Code == 429:
					ref++
				}
			}
		}
		fmt.Fprintf(d.cfg.Out, "%5.0fs  %-24s %8d %8d  %-36s\n", time.Since(d.started).Seconds(), name, sum(adm), ref, byCluster(adm))
	}
	wg.Wait()
	from, to := began.Add(quotaSettle), began.Add(total)
	p.Seconds = to.Sub(from).Seconds()
	for i, c := range callers {
		for _, s := range loads[i].Between(from, to) {
			switch {
			case s.Err == nil:
				p.Admitted[c.Name]++
			case s.Code == 429:
				p.Refused[c.Name]++
			}
		}
	}
	judgeQuotaPart(&p, q)
	return p, nil
}

// judgeQuotaPart applies QuotaResult.Tolerance to a measured part.
func judgeQuotaPart(p *QuotaPart, q int) {
	admitted := sum(p.Admitted)
	w := int(p.Seconds + 0.5)
	p.Bound = (w + 2) * q
	if p.Seconds > 0 {
		p.AdmittedPerSecond = float64(admitted) / p.Seconds
	}
	if admitted > 0 {
		p.BusyShare = float64(p.Admitted[p.Busy]) * 100 / float64(admitted)
	}
	var why []string
	if admitted > p.Bound {
		why = append(why, fmt.Sprintf("%d admitted in %.0fs, more than %d", admitted, p.Seconds, p.Bound))
	}
	if sum(p.Refused) == 0 {
		why = append(why, "no request refused: the quota did not bind")
	}
	if admitted < w*q/2 {
		why = append(why, fmt.Sprintf("%d admitted in %.0fs, less than half the quota", admitted, p.Seconds))
	}
	if p.BusyShare < 60 {
		why = append(why, fmt.Sprintf("the busy client got %.0f%% of what was admitted, less than 60%%", p.BusyShare))
	}
	p.OK, p.Reason = len(why) == 0, strings.Join(why, "; ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// byCluster renders counts as "east-1=12 west-1=3", sorted.
func byCluster(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}
