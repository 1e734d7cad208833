package main

import (
	"strings"
	"testing"

	"github.com/fedmesh/fedmesh/internal/demo"
)

func TestPrintQuota(t *testing.T) {
	q := &demo.QuotaResult{Quota: demo.QuotaID, Requests: 20, Tolerance: "admitted in a window of w seconds <= (w+2)·quota", Parts: []demo.QuotaPart{
		{Name: "quota: east-1's client busy", Busy: "east-1", Seconds: 8, Admitted: map[string]int{"east-1": 130, "west-1": 22},
			Refused: map[string]int{"east-1": 170}, AdmittedPerSecond: 19, Bound: 200, BusyShare: 85.5, OK: true},
		{Name: "quota: west-1's client busy", Busy: "west-1", Seconds: 8, Admitted: map[string]int{"west-1": 90, "east-1": 90},
			Refused: map[string]int{"west-1": 200}, AdmittedPerSecond: 22.5, Bound: 200, BusyShare: 50, Reason: "the busy client got 50%"},
	}}
	var b strings.Builder
	printQuota(&b, q)
	for _, w := range []string{
		"clusterset quota demo/echo-quota/shared: 20 requests/s across the clusters",
		"quota: east-1's client busy  8s      19.0        20       152 (200)         170      86%                  ok",
		"FAIL: the busy client got 50%",
		"tolerance: admitted in a window of w seconds <= (w+2)·quota",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, b.String())
		}
	}
	b.Reset()
	printQuota(&b, nil)
	if b.Len() != 0 {
		t.Errorf("no quota phase printed %q", b.String())
	}
}
