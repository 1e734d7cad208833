package sidecar

import (
	"runtime/debug"

	"github.com/fedmesh/fedmesh/internal/xdsclient"
)

// largeUpdate is the number of resources in one xDS update from which
// the sidecar returns its freed heap to the operating system once the
// update is applied; it does the same once every subscribed type has
// been applied for the first time (the first whole configuration).
//
// Decoding and translating a large update (the first configuration of
// a node that sees a thousand services: each of clusters, endpoints and
// listeners is one response of a thousand resources, the route
// configuration one resource of a thousand virtual hosts) grows the
// heap by several times what is kept, and Go's scavenger returns the
// idle part to the system only slowly and only down to the next GC
// goal, so an idle sidecar would hold it for good. debug.FreeOSMemory
// runs a GC and returns every idle span at once; it costs one GC cycle
// (a few milliseconds of CPU for a 15 MB heap) per large update and one
// at the first whole configuration, which come at start and when many
// services change at once, never per request. Small updates (one
// service's endpoints) leave little behind and do not pay it.
const largeUpdate = 100

// memoryRelease decides when the sidecar returns its freed heap to the
// system. It is used from one goroutine at a time (the xDS client's
// Handler).
type memoryRelease struct {
	types   []string        // the subscribed types
	applied map[string]bool // types applied at least once
	whole   bool            // every type was applied once
}

func newMemoryRelease(types []string) *memoryRelease {
	return &memoryRelease{types: types, applied: map[string]bool{}}
}

// after reports whether applying u is followed by returning the freed
// heap to the system: u is large, or it completes the first whole
// configuration.
func (m *memoryRelease) after(u xdsclient.Update) bool {
	large := len(u.Resources)+len(u.Removed) >= largeUpdate
	if m.whole {
		return large
	}
	m.applied[u.TypeURL] = true
	for _, t := range m.types {
		if !m.applied[t] {
			return large
		}
	}
	m.whole = true
	return true
}

// dropPages drops the binary's pages from the process's resident set
// whenever the freed heap is returned: after the first whole
// configuration and after a large update, whose decoding and translation
// touched code that an idle sidecar does not run (pages_linux.go).
func (s *Sidecar) dropPages() {
	n, err := dropBinaryPages()
	if err != nil {
		s.log.Warn("could not drop the binary's startup pages", "err", err)
		return
	}
	s.log.Debug("dropped the binary's startup pages", "bytes", n)
}

// dropBinaryPages is dropStartupPages; a variable for tests.
var dropBinaryPages = dropStartupPages

// releaseMemory returns the freed heap to the system; a variable for
// tests.
var releaseMemory = debug.FreeOSMemory
