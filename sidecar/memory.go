package sidecar

import (
	"runtime/debug"

	"github.com/fedmesh/fedmesh/internal/xdsclient"
)

// largeUpdate is the number of resources in one xDS update from which
// the sidecar returns its freed heap to the operating system once the
// update is applied.
//
// Decoding and translating a large update (the first configuration of
// a node that sees a thousand services: each of clusters, endpoints and
// listeners is one response of a thousand resources) grows the heap by
// several times what is kept, and Go's scavenger returns the idle part
// to the system only slowly and only down to the next GC goal, so an
// idle sidecar would hold it for good: 5-6 MB of RSS with 1,000
// services (bench/README.md). debug.FreeOSMemory runs a GC and returns
// every idle span at once; it costs one GC cycle (a few milliseconds of
// CPU for a 15 MB heap) per large update, which comes at start and when
// many services change at once, never per request. Small updates (one
// service's endpoints) leave little behind and do not pay it.
const largeUpdate = 100

// releasesMemory reports whether applying u is followed by returning
// the freed heap to the system.
func releasesMemory(u xdsclient.Update) bool {
	return len(u.Resources)+len(u.Removed) >= largeUpdate
}

// releaseMemory returns the freed heap to the system; a variable for
// tests.
var releaseMemory = debug.FreeOSMemory
