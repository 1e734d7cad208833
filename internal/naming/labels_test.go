package naming

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLabels(t *testing.T) {
	var many []string
	for i := range MaxLabels + 1 {
		many = append(many, fmt.Sprintf("k%d=v", i))
	}
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{name: "blank", in: "  ", want: nil},
		{name: "one", in: "tier=gold", want: map[string]string{"tier": "gold"}},
		{name: "prefixed keys, spaces around items", in: "topology.fedmesh.io/rack=r1 , app=echo", want: map[string]string{"topology.fedmesh.io/rack": "r1", "app": "echo"}},
		{name: "empty value left out", in: "app=echo,canary=", want: map[string]string{"app": "echo"}},
		{name: "no equals", in: "app", wantErr: `label 0 "app" is not KEY=VALUE`},
		{name: "bad key", in: "-app=echo", wantErr: `label 0: key "-app"`},
		{name: "empty key", in: "=echo", wantErr: `label 0: key ""`},
		{name: "bad value", in: "app=echo,tier=a b", wantErr: `label 1: value "a b" of key "tier"`},
		{name: "value too long", in: "app=" + strings.Repeat("a", 64), wantErr: `label 0: value`},
		{name: "key twice", in: "app=a,app=b", wantErr: `label 1: key "app" given twice`},
		{name: "too many", in: strings.Join(many, ","), wantErr: fmt.Sprintf("%d labels, more than %d", MaxLabels+1, MaxLabels)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLabels(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseLabels(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLabels(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseLabels(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestFormatLabels(t *testing.T) {
	if got := FormatLabels(nil); got != "" {
		t.Errorf("FormatLabels(nil) = %q, want empty", got)
	}
	in := map[string]string{"zone": "a", "app": "echo", "fedmesh.io/tier": "gold"}
	const want = "app=echo,fedmesh.io/tier=gold,zone=a"
	if got := FormatLabels(in); got != want {
		t.Errorf("FormatLabels = %q, want %q", got, want)
	}
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"", "a=b", "a=b,c=d", "x.io/k=v", "a=", "=", ",", "a=b,a=c", "k=v v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseLabels(s)
		if err != nil {
			return
		}
		if len(m) > MaxLabels {
			t.Fatalf("ParseLabels(%q) kept %d labels", s, len(m))
		}
		for k, v := range m {
			if v == "" {
				t.Fatalf("ParseLabels(%q) kept the empty value of %q", s, k)
			}
		}
		back, err := ParseLabels(FormatLabels(m))
		if err != nil {
			t.Fatalf("round trip of %v: %v", m, err)
		}
		if !cmp.Equal(m, back) {
			t.Fatalf("round trip of %v gave %v", m, back)
		}
	})
}
