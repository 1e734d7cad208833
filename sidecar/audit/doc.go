// Package audit writes the sidecar's authorization audit trail: one JSON
// line per DENY decision and per AUDIT (RBAC LOG) match, with the fields
// of docs/xds.md ("Inbound authorization"):
//
//	{"time":"2026-03-01T12:00:00.123Z","decision":"deny","policy":"demo/deny-admin","rule":0,
//	 "reason":"denied by DENY policy","source_principal":"spiffe://fed/ns/web/sa/frontend",
//	 "source_cluster":"east-1","destination_service":"demo/echo","destination_port":8080,
//	 "method":"GET","path":"/admin","protocol":"http"}
//
// The data path hands a Record to Log.Record, which never blocks: records
// wait in a bounded queue, and one that does not fit is dropped and
// counted (fedmesh_audit_dropped_total{reason}). Log.Run, owned by the
// sidecar, encodes what is queued and writes it to the sink in batches of
// whole lines; when its context ends it writes what is still queued and
// returns, so a shutdown loses nothing that was accepted.
//
// The sink is any io.Writer: os.Stdout, or a File, which rotates by size
// (path, path.1 ... path.N, the oldest dropped):
//
//	f, err := audit.OpenFile("/var/log/fedmesh/audit.log", 100<<20, 5)
//	log, err := audit.New(audit.Config{Sink: f}, reg)
//	go log.Run(ctx) // then f.Close() after Run has returned
//	log.Record(audit.Record{...})
package audit
