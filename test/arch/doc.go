// Package arch holds the architecture tests: checks, run by the ordinary
// `go test ./...`, that the code keeps the shape that the fedmesh design (DESIGN.md, its
// "Packages" table and the arrows under it) gives it.
//
// The package has no code of its own; everything is in its _test.go files.
//
// The import rules (imports_test.go) are a table. Each row names the packages
// it applies to, the packages they may not import, and why. The whole module
// is loaded once with `go list -deps -json`; a row either forbids packages
// anywhere in the transitive imports ("reach", for example the sidecar may
// never link etcd) or forbids packages that the module's own code imports
// directly ("own", for example topology may not import os, although fmt,
// which topology uses, does). A failure names the package that imports the
// forbidden one and the shortest import chain from the package under the
// rule, for example:
//
//	--- FAIL: TestImportRules/sidecar_reaches_only_topology_and_internal
//	    imports_test.go:213: 1 forbidden import(s); rule: arrows point one way: ...
//	        github.com/fedmesh/fedmesh/sidecar/dns imports github.com/fedmesh/fedmesh/store
//	        	chain: github.com/fedmesh/fedmesh/sidecar/dns -> github.com/fedmesh/fedmesh/store
//
// A row for a package that does not exist yet but is planned carries a
// pending note; it is skipped until the package's directory appears and
// then applies by itself. Adding a rule is adding a row.
//
// The file rule (filesize_test.go) keeps every non-test, hand-written .go
// file at or under maxLines lines; knownOversize lists the exceptions being
// worked on, each with the condition for removing it.
//
// The tests read every Go file and directory of the module, so that
// `go test` reruns them, instead of reusing a cached result, whenever any
// of them changes.
package arch
