package demo

import (
	"strings"
	"testing"

	"github.com/fedmesh/fedmesh/policy"
)

func TestJudgeQuotaPart(t *testing.T) {
	tests := []struct {
		name     string
		admitted map[string]int
		refused  map[string]int
		ok       bool
		reason   string
	}{
		{"at the quota", map[string]int{"east-1": 140, "west-1": 20}, map[string]int{"east-1": 160}, true, ""},
		{"over the bound", map[string]int{"east-1": 190, "west-1": 20}, map[string]int{"east-1": 10}, false, "more than 200"},
		{"never refused", map[string]int{"east-1": 150}, nil, false, "did not bind"},
		{"starved", map[string]int{"east-1": 30, "west-1": 5}, map[string]int{"east-1": 300}, false, "less than half the quota"},
		{"split does not follow", map[string]int{"east-1": 80, "west-1": 80}, map[string]int{"east-1": 160}, false, "less than 60%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := QuotaPart{Busy: "east-1", Seconds: 8, Admitted: tt.admitted, Refused: tt.refused}
			judgeQuotaPart(&p, 20)
			if p.OK != tt.ok || !strings.Contains(p.Reason, tt.reason) {
				t.Errorf("judged ok=%v %q, want ok=%v with %q", p.OK, p.Reason, tt.ok, tt.reason)
			}
			if p.Bound != 200 {
				t.Errorf("bound %d, want (8+2)·20 = 200", p.Bound)
			}
		})
	}
}

func TestQuotaPolicyParses(t *testing.T) {
	obj, err := policy.ParseObject([]byte(quotaPolicy(20)))
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.ValidateObject(obj); err != nil {
		t.Fatal(err)
	}
	rp, ok := obj.(*policy.RateLimitPolicy)
	if !ok || len(rp.Spec.Quotas) != 1 {
		t.Fatalf("parsed %T %+v, want a RateLimitPolicy with one quota", obj, obj)
	}
	if id := rp.Namespace + "/" + rp.Name + "/" + rp.Spec.Quotas[0].Name; id != QuotaID || rp.Spec.Quotas[0].Requests != 20 {
		t.Errorf("quota %s of %d requests, want %s of 20", id, rp.Spec.Quotas[0].Requests, QuotaID)
	}
}
