package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/controlplane"
)

func TestPrintQuotas(t *testing.T) {
	page := controlplane.QuotaPage{Cluster: "east-1", Quotas: []controlplane.QuotaStatus{{
		Quota: "demo/limits/shared", Requests: 600, Interval: controlplane.Duration(time.Minute), Total: 600,
		Minority: true, Mismatch: []string{"north-1"},
		Clusters: []controlplane.QuotaClusterStatus{
			{Cluster: "east-1", Local: true, Admitted: 300, Refused: 20, Share: 320},
			{Cluster: "north-1", Admitted: 10, Share: 40},
			{Cluster: "west-1", Fenced: true, Admitted: 200, Share: 0},
		},
		Sidecars: []controlplane.QuotaSidecarStatus{{Node: "echo-1", Admitted: 300, Refused: 20, Share: 320}},
	}}}
	var narrow, wide bytes.Buffer
	if err := printQuotas(&narrow, page, false); err != nil {
		t.Fatal(err)
	}
	if err := printQuotas(&wide, page, true); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"QUOTA               LIMIT   CLUSTER  ADMITTED  REFUSED  SHARE  STATE",
		"demo/limits/shared  600/1m  east-1   300       20       320    local, minority (share frozen)",
		"demo/limits/shared  600/1m  north-1  10        0        40     defines the quota differently",
		"demo/limits/shared  600/1m  west-1   200       0        0      fenced",
	} {
		if !strings.Contains(narrow.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, narrow.String())
		}
	}
	if strings.Contains(narrow.String(), "SIDECAR") {
		t.Errorf("the narrow table lists sidecars:\n%s", narrow.String())
	}
	if w := "demo/limits/shared  echo-1   300       20       320"; !strings.Contains(wide.String(), w) {
		t.Errorf("wide table lacks %q:\n%s", w, wide.String())
	}
}

func TestGetQuotas(t *testing.T) {
	admin := getTestControlPlane(t)
	out, errOut, code := runCmd(context.Background(), t, "get", "quotas", "--admin", admin)
	if code != 0 || !strings.Contains(out, "No clusterset quotas in force in cluster east-1.") {
		t.Errorf("get quotas: exit %d\n%s%s", code, out, errOut)
	}
	for _, format := range []string{"json", "yaml"} {
		out, errOut, code := runCmd(context.Background(), t, "get", "quotas", "-o", format, "--admin", admin)
		if code != 0 {
			t.Fatalf("-o %s: exit %d: %s", format, code, errOut)
		}
		raw := []byte(out)
		if format == "yaml" {
			var err error
			if raw, err = yaml.YAMLToJSON(raw); err != nil {
				t.Fatal(err)
			}
		}
		var page controlplane.QuotaPage
		if err := json.Unmarshal(raw, &page); err != nil || page.Cluster != "east-1" || page.Quotas == nil {
			t.Errorf("-o %s: page %+v, err %v:\n%s", format, page, err, out)
		}
	}
	if _, errOut, code := runCmd(context.Background(), t, "get", "quotas", "-o", "xml", "--admin", admin); code != 2 || !strings.Contains(errOut, `unknown output format "xml"`) {
		t.Errorf("-o xml: exit %d, %s; want 2 and the format named", code, errOut)
	}
}
