package catalog

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateQuotaRecords(t *testing.T) {
	good := QuotaRecord{Quota: "demo/limits/shared", Requests: 600, Interval: time.Minute, Admitted: 10, Refused: 2, Share: 300}
	tests := []struct {
		name   string
		change func(*Export)
		field  string // "" means valid
	}{
		{"valid", func(*Export) {}, ""},
		{"other namespace", func(e *Export) { e.Quotas[0].Quota = "other/limits/shared" }, "quotas[0].quota"},
		{"two segments", func(e *Export) { e.Quotas[0].Quota = "demo/limits" }, "quotas[0].quota"},
		{"bad label", func(e *Export) { e.Quotas[0].Quota = "demo/Limits/shared" }, "quotas[0].quota"},
		{"repeated", func(e *Export) { e.Quotas = append(e.Quotas, good) }, "quotas[1].quota"},
		{"no requests", func(e *Export) { e.Quotas[0].Requests = 0 }, "quotas[0].requests"},
		{"no interval", func(e *Export) { e.Quotas[0].Interval = 0 }, "quotas[0].interval"},
		{"long interval", func(e *Export) { e.Quotas[0].Interval = 25 * time.Hour }, "quotas[0].interval"},
		{"negative share", func(e *Export) { e.Quotas[0].Share = -1 }, "quotas[0].share"},
		{"huge demand", func(e *Export) { e.Quotas[0].Refused = 1 << 50 }, "quotas[0].refused"},
		{"too many", func(e *Export) { e.Quotas = make([]QuotaRecord, MaxQuotaRecords+1) }, "quotas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Export{Service: Service{Namespace: "demo", Name: "echo", Type: ClusterSetIP, Cluster: "east-1",
				Ports: []Port{{Name: "http", Port: 80}}}, Quotas: []QuotaRecord{good}}
			tt.change(&e)
			err := e.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.field+" ") && !strings.Contains(err.Error(), tt.field+":") {
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.field)
			}
		})
	}
}
