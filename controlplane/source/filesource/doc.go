// Package filesource is the local-mode source (--source file:DIR): it reads
// a directory of Kubernetes-style YAML or JSON files, the same kinds the
// Kubernetes source reads plus the local Workload kind (see package source
// for the kinds and the mapping rules), and produces this cluster's exports.
//
//	src, err := filesource.New(filesource.Config{
//		Dir: "examples/local/east-1", Cluster: "east-1", Region: "us-east", Zone: "a",
//		Logger: logger, Registerer: reg,
//	})
//	...
//	err = src.Run(ctx, func(exports []catalog.Export) { store.Publish(exports) })
//
// # Files
//
// Files ending in .yaml, .yml or .json directly inside the directory are
// read, in name order; hidden files (.name), editor backups (name~) and
// autosaves (#name) are not. A YAML file may hold several documents
// separated by "---" lines; a JSON file holds one. Objects are decoded
// strictly: an unknown or repeated field is an error that names it
// (unknown field "spec.portz"). Namespace and ServiceAccount objects are
// accepted and ignored; other unknown kinds are reported and skipped, and
// the rest of the file is used.
//
// # Last good state, per file
//
// A file with any other problem (unreadable, malformed YAML, unknown field,
// invalid value) is rejected as a whole: the objects it held when it was
// last good keep being used, and it shows in Problems until it is fixed.
// A fixed file is used as it now is; a deleted file's objects go away. When
// two files (or two documents) define the same kind, namespace and name,
// the first in file order is used and the other is reported as a
// duplicate. Each rejection increments fedmesh_source_rejected_total{reason}
// once, when it is first seen, and is logged.
//
// # Policies and traffic objects
//
// AuthorizationPolicy objects (fedmesh.io/v1alpha1) are read beside the
// Services and returned by AuthorizationPolicies. The traffic objects,
// HTTPRoute and GRPCRoute (gateway.networking.k8s.io/v1, parents and
// backends being Services or ServiceImports) and ResiliencePolicy,
// FaultInjection, TelemetryPolicy and RateLimitPolicy
// (fedmesh.io/v1alpha1), are returned by Traffic (see
// examples/traffic). Neither is exported as a service. Each object is
// validated as policy.ValidateObject says; a route whose ExtensionRef
// filter names a FaultInjection that is not in its namespace is left out
// as a whole, with a problem of reason "unmatched" naming the route and
// the field, until the FaultInjection appears.
//
// # Export time
//
// A ServiceExport's metadata.creationTimestamp is its export time, which
// decides conflicts between clusters (the oldest export wins). When it is
// not set, the source uses the time it first saw the ServiceExport; that
// time lives in memory only, so a restart resets it. Set
// creationTimestamp in files (the samples in examples/local do) to make
// conflict resolution deterministic.
//
// # Watching
//
// Run watches the directory (inotify or the platform's equivalent) and
// re-reads it Config.Debounce after changes stop, and every Config.Rescan
// in any case, parsing again only the files whose content changed. When the
// platform cannot watch, the periodic rescan alone sees changes. A
// directory that cannot be listed is reported and changes nothing.
package filesource
