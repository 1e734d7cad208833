// Package portset reads and holds sets of TCP ports written as a list of
// ports and ranges, "25,587,3306,5000-5010", as annotations and flags
// give them (fedmesh.io/opaque-ports, --opaque-ports). It is pure: no
// I/O.
//
//	s, err := portset.Parse(portset.DefaultOpaque)
//	s.Contains(3306) // true
//	s.String()       // "25,587,3306,4444,5432,6379,9300,11211"
package portset
