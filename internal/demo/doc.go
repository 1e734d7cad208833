// Package demo runs `fedmesh demo`: three local clusters (east-1, east-2,
// west-1), each a control plane with its embedded etcd, a gateway and
// echo workloads behind sidecars, on loopback addresses of their own. It
// federates them, sends traffic from a client sidecar and walks through
// the phases a user watches: locality, failover when a cluster dies,
// recovery when it comes back. Every cluster's source also holds the same
// AuthorizationPolicies (PolicyFile: echo admits only the client, nobody
// on DeniedPath); each phase ends with a request for DeniedPath, which the
// echo sidecars of the cluster serving that phase must refuse with 403 and
// record in their audit log (WORKDIR/CLUSTER/workloads/echo-N/audit.log),
// whose record the demo shows.
//
// Then the traffic phases, with a second client in west-1 sending too.
// west-1 alone runs and exports echo-v2, the canary. Each phase writes
// TrafficFile into east-1's source only: the objects of one of the files
// in traffic/ (CanaryFile, FaultsFile, ABFile; the README shows them)
// and the ResiliencePolicy (ResilienceFile). They are echo's producer
// side, so they travel with echo's export and both clients obey them: a
// 10% canary to echo-v2, a FaultInjection aborting 20% and delaying 10%,
// an A/B route on VariantHeader; then the file is removed and the local
// echo serves again. A phase is measured once each client's requests
// follow its file (Change), and judged per client and request class
// (Split, EvaluateCaller): shares within Sigmas binomial standard
// deviations of the configured share (JudgeShare), injected faults
// (FaultHeader) counted apart from real errors, which must be 0.
//
// With a Jaeger binary (Config.Jaeger, FindJaeger) the demo runs it on
// JaegerIP and every sidecar sends it TraceSampling percent of its
// traces over OTLP; each failover phase ends with the trace check
// (FindCrossing): a trace in Jaeger from east-1's client to the cluster
// that served, whose Jaeger UI URL the demo shows. Without one the demo
// runs untraced and says so (Summary.Tracing).
//
// Every child is a real process of the fedmesh binaries (and Jaeger),
// stopped when the demo ends. The demo knows its own: before starting it bind-probes every
// address they will listen on (Bindings, CheckFree) and fails naming
// those taken, so that it never drives another demo's processes; once
// started, a child that exits without the demo stopping it (it could not
// bind, it crashed) ends the run at once, every other child stopped, with
// the child's exit status and last log lines (ExitError). Config's
// BaseAddress moves the whole demo (LayoutAt): clusters on A.B.C.(D+i-1),
// workloads on A.B.(C+i).0/24, so two demos with other A.B never meet.
//
// RunBounds is the bounds scenario (`fedmesh demo --scenario bounds`):
// how long until a killed or frozen peer is fenced and trusted again,
// what a client's requests meet meanwhile, and how long proxies take to
// reconnect to a restarted control plane, per Federation timings.
package demo
