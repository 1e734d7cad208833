package portset

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		ranges         []Range
		wantErr        bool
	}{
		{name: "empty", in: "", want: "none"},
		{name: "none", in: " none ", want: "none"},
		{name: "default", in: DefaultOpaque, want: DefaultOpaque,
			ranges: []Range{{25, 25}, {587, 587}, {3306, 3306}, {4444, 4444}, {5432, 5432}, {6379, 6379}, {9300, 9300}, {11211, 11211}}},
		{name: "sorted, merged, spaces", in: " 5010 ,5000-5009, 3306,3306, 1-1", want: "1,3306,5000-5010",
			ranges: []Range{{1, 1}, {3306, 3306}, {5000, 5010}}},
		{name: "overlapping ranges", in: "10-20,15-30,31", want: "10-31", ranges: []Range{{10, 31}}},
		{name: "every port", in: "1-65535", want: "1-65535", ranges: []Range{{1, 65535}}},
		{name: "zero", in: "0", wantErr: true},
		{name: "too high", in: "65536", wantErr: true},
		{name: "backwards", in: "20-10", wantErr: true},
		{name: "not a number", in: "mysql", wantErr: true},
		{name: "empty item", in: "25,,587", wantErr: true},
		{name: "sign", in: "+25", wantErr: true},
		{name: "leading zero", in: "025", wantErr: true},
		{name: "open range", in: "25-", wantErr: true},
		{name: "none in a list", in: "25,none", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Parse(%q) = %v, want error %t", tc.in, err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if got := s.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if d := cmp.Diff(tc.ranges, s.Ranges()); d != "" {
				t.Errorf("Ranges() (-want +got):\n%s", d)
			}
		})
	}
}

func TestContains(t *testing.T) {
	s := MustParse("25,3306,5000-5010")
	for p, want := range map[uint16]bool{0: false, 24: false, 25: true, 26: false, 3306: true, 4999: false, 5000: true, 5005: true, 5010: true, 5011: false, 65535: false} {
		if got := s.Contains(p); got != want {
			t.Errorf("Contains(%d) = %t, want %t", p, got, want)
		}
	}
	if (Set{}).Contains(25) || !(Set{}).Empty() {
		t.Error("the zero Set is not empty")
	}
}

// FuzzParse: annotations and flags are outside input. What Parse accepts
// is written back as a list it reads again to the same set, and
// Contains agrees with the ranges.
func FuzzParse(f *testing.F) {
	for _, s := range []string{DefaultOpaque, "", "none", "1-65535", "5000-5010, 25", "20-10", "0", "65536", "a,b", "1-2-3"} {
		f.Add(s, uint16(25))
	}
	f.Fuzz(func(t *testing.T, s string, p uint16) {
		set, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(set.String())
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q, which Parse refuses: %v", s, set.String(), err)
		}
		if d := cmp.Diff(set.Ranges(), again.Ranges()); d != "" {
			t.Fatalf("%q read back differently (-first +again):\n%s", s, d)
		}
		in := false
		prev := -1
		for _, r := range set.Ranges() {
			if r.Lo == 0 || r.Hi < r.Lo || int(r.Lo) <= prev+1 {
				t.Fatalf("Parse(%q): ranges %v are not sorted, disjoint and apart", s, set.Ranges())
			}
			prev = int(r.Hi)
			in = in || (r.Lo <= p && p <= r.Hi)
		}
		if set.Contains(p) != in {
			t.Fatalf("Parse(%q).Contains(%d) = %t, the ranges say %t", s, p, !in, in)
		}
	})
}
