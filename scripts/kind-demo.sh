#!/usr/bin/env bash
# The multi-cluster demo on three kind clusters (make kind-demo): creates the
# clusters from kind-configs/, builds and loads the images, installs fedmesh
# with `fedmesh install` (its cluster CA issued from one federation root)
# and the kind overlay (deploy/overlays/kind), joins the clusters with
# `fedmesh join --from-context` through their API servers, deploys the
# echo sample and the demo's AuthorizationPolicies in all three
# (scripts/kind-demo/authz.yaml), echo-v2 in west-1 only and a client in
# east-1 and in west-1, then runs the phases of the local demo (`make
# demo`, internal/demo), in its order and judged its way:
#
#   1. steady: east-1's client is served by east-1 (95%, west-1 none);
#   2. east-1's echo scaled to 0: served by east-2 (same region);
#   3. east-2's echo scaled to 0 too: served by west-1 (other region);
#   4. both scaled back: served by east-1 again;
#      in each, GET /admin answers 403 and the serving cluster's echo
#      sidecar has the audit record of the deny by demo/deny-admin;
#   5. canary: east-1 applies internal/demo/traffic/resilience.yaml and
#      canary.yaml (one producer route): both clients get 10% from echo-v2;
#   6. fault injection (faults.yaml): 20% aborted (503 marked by the
#      x-fedmesh-fault header, not real errors), 10% of answers delayed;
#   7. a/b (ab.yaml): x-variant: b to echo-v2 only, the rest to echo only;
#   8. routes removed: everything to echo, east-1's client served by east-1;
#   9. clusterset quota (scripts/kind-demo/quota.yaml in every cluster):
#      east-1's client, then west-1's, asks twice the quota, the other a
#      quarter; the clusterset admits at most the quota (within the local
#      demo's tolerance), refuses the rest with 429, the busy client gets
#      at least 60%.
#
# Shares are judged as the local demo judges them: within 4 binomial
# standard deviations of the configured share, 0% and 100% exactly.
# The clients are plain curl in injected pods: they call
# http://echo.demo.svc.clusterset.local:8080/ with no proxy; the pods' DNS
# and connections are captured by their sidecars (docs/capture.md).
# Each phase is checked; the script exits non-zero naming the phase that
# failed. The clusters are deleted at the end unless KEEP=1.
# Needs a Docker engine, kind and kubectl. FEDMESH_BIN names a fedmesh
# binary to use instead of building one; TRUST_DOMAIN the federation's
# trust domain (default: the local demo's, fedmesh.local).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
clusters=(east-1 east-2 west-1)
regions=(us-east us-east us-west)
zones=(us-east-1a us-east-1c us-west-1a)
trust_domain=${TRUST_DOMAIN:-fedmesh.local}
work=$(mktemp -d "${TMPDIR:-/tmp}/fedmesh-kind-XXXXXX")
fedmesh=${FEDMESH_BIN:-$work/fedmesh}
# The clients' clusters (the local demo's callers), the manifests of the
# demo's objects (scripts/kind-demo/) and the local demo's traffic files,
# applied as they are (internal/demo/traffic/).
callers=(east-1 west-1)
manifests=$repo/scripts/kind-demo
routes=$repo/internal/demo/traffic
url=http://echo.demo.svc.clusterset.local:8080/

log() { printf 'kind-demo: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

cleanup() {
	local rc=$?
	if [ "${KEEP:-0}" != 1 ]; then
		bash "$repo/scripts/kind-down.sh" || true
		rm -rf "$work"
	else
		log "clusters kept (KEEP=1); work dir $work (federation root: $work/root); 'make kind-down' removes them"
	fi
	exit "$rc"
}
trap cleanup EXIT

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 is not installed ($2)"
}
need docker "https://docs.docker.com/engine/install/"
need kind "go install sigs.k8s.io/kind@latest"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
docker info >/dev/null 2>&1 || die "no Docker engine answers (kind runs its nodes as containers)"

ctx() { echo "kind-fedmesh-$1"; }
k() { local c=$1; shift; kubectl --context "$(ctx "$c")" "$@"; }

log "building the fedmesh binary and images"
if [ -z "${FEDMESH_BIN:-}" ]; then
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$fedmesh" ./cmd/fedmesh)
fi
docker build -q -t fedmesh:dev "$repo" >/dev/null
docker build -q --target fedmesh-init -t fedmesh-init:dev "$repo" >/dev/null

log "creating clusters"
for c in "${clusters[@]}"; do
	if ! kind get clusters 2>/dev/null | grep -qx "fedmesh-$c"; then
		kind create cluster --config "$repo/kind-configs/$c.yaml" --wait 120s
	fi
	kind load docker-image fedmesh:dev fedmesh-init:dev --name "fedmesh-$c"
done

log "creating the federation root"
"$fedmesh" ca init --trust-domain "$trust_domain" --dir "$work/root" >/dev/null

node_ip() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "fedmesh-$1-control-plane"; }

log "installing fedmesh"
for i in "${!clusters[@]}"; do
	c=${clusters[$i]}
	# The cluster's identity, its CA Secret (issued from the root) and the
	# webhook's serving certificate (its CA in the webhook's caBundle).
	"$fedmesh" install --context "$(ctx "$c")" --cluster "$c" --region "${regions[$i]}" --zone "${zones[$i]}" \
		--trust-domain "$trust_domain" --gateway-address "$(node_ip "$c"):31443" \
		--root-dir "$work/root" --wait=false >/dev/null || die "fedmesh install in $c failed"
	# What kind needs on top of the base install applies: NodePorts, one
	# replica each, the node's address announced. The overlay carries the
	# base's placeholder identity, so the identity is set again after it.
	k "$c" apply --server-side --force-conflicts -k "$repo/deploy/overlays/kind" >/dev/null
	k "$c" -n fedmesh-system create configmap fedmesh-cluster --dry-run=client -o yaml \
		--from-literal=cluster="$c" --from-literal=region="${regions[$i]}" --from-literal=zone="${zones[$i]}" \
		--from-literal=trustDomain="$trust_domain" --from-literal=gatewayAddress="$(node_ip "$c"):31443" |
		k "$c" apply -f - >/dev/null
	k "$c" -n fedmesh-system create configmap fedmesh-roots --dry-run=client -o yaml \
		--from-file=root.pem="$work/root/root.crt" | k "$c" apply -f - >/dev/null
	# Restart so the pods read the cluster's identity.
	k "$c" -n fedmesh-system rollout restart statefulset/fedmesh-controlplane deployment/fedmesh-gateway deployment/fedmesh-webhook >/dev/null
done
for c in "${clusters[@]}"; do
	k "$c" -n fedmesh-system rollout status statefulset/fedmesh-controlplane --timeout=180s >/dev/null ||
		die "control plane of $c not ready"
	k "$c" -n fedmesh-system rollout status deployment/fedmesh-webhook --timeout=120s >/dev/null ||
		die "webhook of $c not ready"
done

log "joining the clusters"
# Through the API servers: east-1's current join token (Secret
# fedmesh-join-token) is copied to the joining cluster, whose control plane
# joins with it and records the outcome, which join waits for.
for c in east-2 west-1; do
	"$fedmesh" join --context "$(ctx "$c")" --from-context "$(ctx east-1)" --wait 3m >/dev/null ||
		die "$c could not join"
done

log "deploying the echo sample in every cluster, echo-v2 in west-1, the clients in east-1 and west-1"
for c in "${clusters[@]}"; do
	k "$c" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: demo
  labels: {fedmesh.io/inject: enabled}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: echo, namespace: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      serviceAccountName: echo
      containers:
        - name: echo
          image: fedmesh:dev
          args: [echo, --listen=0.0.0.0:8080, --cluster=$c, --workload=\$(POD_NAME), --service=echo, --version=v1]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, targetPort: http, appProtocol: http}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: echo, namespace: demo}
YAML
	k "$c" -n demo create configmap fedmesh-roots --dry-run=client -o yaml \
		--from-file=root.pem="$work/root/root.crt" | k "$c" apply -f - >/dev/null
	# The local demo's policies, in the federation's trust domain.
	sed "s#spiffe://fedmesh.local/#spiffe://$trust_domain/#" "$manifests/authz.yaml" | k "$c" apply -f - >/dev/null
done
k west-1 apply -f "$manifests/echo-v2.yaml" >/dev/null
for c in "${callers[@]}"; do
	k "$c" apply -f "$manifests/client.yaml" >/dev/null
done
for c in "${clusters[@]}"; do
	k "$c" -n demo rollout status deployment/echo --timeout=180s >/dev/null || die "echo in $c not ready"
done
k west-1 -n demo rollout status deployment/echo-v2 --timeout=180s >/dev/null || die "echo-v2 in west-1 not ready"
for c in "${callers[@]}"; do
	k "$c" -n demo wait --for=condition=Ready pod/client --timeout=180s >/dev/null || die "the client in $c not ready"
done

# requests CLUSTER N [CURL-OPTION...] sends N requests from CLUSTER's
# client, one curl in the pod (URL globbing), and prints a line per
# request: STATUS FAULT SERVED-BY SERVICE, '-' for what the answer lacks
# (STATUS 000: no answer). FAULT is the x-fedmesh-fault header, with which
# the caller's sidecar marks what an injected fault aborted or delayed.
# The client is plain curl, no proxy: the pod's sidecar answers its DNS
# query for the clusterset name with echo's ClusterSetIP, and its
# connection there is captured and sent through the mesh.
requests() {
	local c=$1 n=$2
	shift 2
	{ k "$c" -n demo exec client -c curl -- curl -sS --max-time 2 "$@" \
		-w '\n@@ %{http_code} fault=%header{x-fedmesh-fault}\n' "$url?n=[1-$n]" 2>/dev/null || true; } |
		awk '
		/^@@ / {
			f = $0; sub(/^@@ [0-9]+ fault=/, "", f); gsub(/ /, "", f)
			printf "%s %s %s %s\n", $2, (f == "" ? "-" : f), (cl == "" ? "-" : cl), (sv == "" ? "-" : sv)
			cl = ""; sv = ""; next
		}
		{
			if (match($0, /"cluster":"[^"]*"/)) cl = substr($0, RSTART + 11, RLENGTH - 12)
			if (match($0, /"service":"[^"]*"/)) sv = substr($0, RSTART + 11, RLENGTH - 12)
		}'
}

# count WHAT [CLUSTER] counts the lines of requests on stdin that are
# WHAT, as the local demo classifies its samples: "all"; "error" (no
# answer, or an error status that no injected fault explains); "aborted"
# (an error status marked abort); "answered" (by an echo replica);
# "delayed" (answered, marked delay); "v2" (answered by echo-v2); "by"
# (answered in CLUSTER); "429" (refused by the quota).
count() {
	awk -v what="$1" -v cluster="${2:-}" '
	function has(list, tok,   n, i, a) { n = split(list, a, ","); for (i = 1; i <= n; i++) if (a[i] == tok) return 1; return 0 }
	{
		aborted = $1 != "200" && $1 != "000" && has($2, "abort")
		answered = $1 == "200" && $3 != "-"
		if (what == "all" ||
			what == "error" && !aborted && !answered ||
			what == "aborted" && aborted ||
			what == "answered" && answered ||
			what == "delayed" && answered && has($2, "delay") ||
			what == "v2" && answered && $4 == "echo-v2" ||
			what == "by" && answered && $3 == cluster ||
			what == "429" && $1 == "429") n++
	}
	END { print n + 0 }'
}

# share WHAT COUNT OF WANT judges COUNT of OF against the share WANT (in
# percent) as the local demo does (internal/demo/share.go, JudgeShare):
# within 4 binomial standard deviations, exactly for 0% and 100%. It
# prints the finding and fails when the share is out of bounds.
share() {
	awk -v what="$1" -v c="$2" -v of="$3" -v want="$4" 'BEGIN {
		if (of <= 0) { print what ": no requests"; exit 1 }
		s = 100 * c / of; tol = 0
		if (want <= 0) ok = c == 0
		else if (want >= 100) ok = c == of
		else { p = want / 100; tol = 400 * sqrt(p * (1 - p) / of); ok = (s - want <= tol && want - s <= tol) }
		w = want "%"; if (tol > 0) w = w sprintf(" ± %.1f%%", tol)
		printf "%s %d of %d, %.1f%% (want %s)\n", what, c, of, s, w
		exit !ok
	}'
}

# judge_split PHASE CALLER WHAT V2 ABORT DELAY judges the requests on
# stdin of CALLER's client (WHAT names them) as the local demo judges a
# traffic phase's split (EvaluateCaller): no real error, the aborted
# share of all requests, the delayed and echo-v2 shares of the answered.
judge_split() {
	local phase=$1 caller=$2 what=$3 v2=$4 abort=$5 delay=$6 recs n answered out check name class of want seen=() why=()
	recs=$(cat)
	n=$(count all <<<"$recs")
	answered=$(count answered <<<"$recs")
	for check in "real errors:error:$n:0" "aborted by the fault:aborted:$n:$abort" \
		"delayed by the fault:delayed:$answered:$delay" "echo-v2 answered:v2:$answered:$v2"; do
		IFS=: read -r name class of want <<<"$check"
		if out=$(share "$name" "$(count "$class" <<<"$recs")" "$of" "$want"); then
			seen+=("$out")
		else
			seen+=("$out FAIL") why+=("$out")
		fi
	done
	log "  $caller's client$what: $(IFS=';'; echo "${seen[*]}" | sed 's/;/; /g')"
	if [ "${#why[@]}" -gt 0 ]; then
		die "phase $phase: $caller's client$what: $(IFS=';'; echo "${why[*]}" | sed 's/;/; /g')"
	fi
}

# judge_served PHASE EXPECT MINSHARE FORBID... judges the requests on
# stdin as the local demo judges a phase (Evaluate): EXPECT served at
# least MINSHARE percent of them (0: not judged), FORBID none.
judge_served() {
	local phase=$1 want=$2 min=$3 recs n got f why=()
	shift 3
	recs=$(cat)
	n=$(count all <<<"$recs")
	got=$(count by "$want" <<<"$recs")
	if [ "$min" -gt 0 ] && ! awk -v g="$got" -v n="$n" -v m="$min" 'BEGIN { exit !(n > 0 && 100 * g >= m * n) }'; then
		why+=("$want served $got of $n requests, want at least $min%")
	fi
	for f in "$@"; do
		got=$(count by "$f" <<<"$recs")
		[ "$got" = 0 ] || why+=("$f served $got requests, want none")
	done
	if [ "${#why[@]}" -gt 0 ]; then
		die "phase $phase: $(IFS=';'; echo "${why[*]}" | sed 's/;/; /g')"
	fi
	log "  served: $(awk '$1 == "200" && $3 != "-" {n[$3]++} END {for (c in n) printf "%s=%d ", c, n[c]}' <<<"$recs")of $n"
}

# settle PHASE CALLER PREDICATE [CURL-OPTION...] polls CALLER's client,
# 20 requests at a time, until PREDICATE (a command reading those
# requests' lines) holds, for at most 90s: the failover or the route
# change has happened.
settle() {
	local phase=$1 caller=$2 pred=$3 recs deadline=$((SECONDS + 90))
	shift 3
	while [ "$SECONDS" -lt "$deadline" ]; do
		recs=$(requests "$caller" 20 "$@")
		if "$pred" <<<"$recs"; then
			return 0
		fi
		sleep 2
	done
	die "phase $phase: $caller's client: no change within 90s (the last requests: $(awk '{print $1 "/" $3 "/" $4}' <<<"$recs" | sort | uniq -c | tr -s ' \n' ' '))"
}

# Predicates of settle.
mostly() { [ "$(count by "$expect")" -gt 10 ]; }
from_v2() { [ "$(count v2)" -gt 0 ]; }
from_v1() { awk '$1 == "200" && $4 == "echo" {n++} END {exit !(n > 0)}'; }
from_fault() { [ "$(count aborted)" -gt 0 ]; }
refused() { [ "$(count 429)" -gt 0 ]; }

# probe PHASE EXPECT sends GET /admin, which the demo's policy
# demo/deny-admin denies, from east-1's client: it must answer 403, and
# a sidecar of EXPECT's echo, the cluster that serves, must have written
# the audit record of the denial, which is shown.
probe() {
	local phase=$1 want=$2 sent code rec c deadline
	sent=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	code=$(k east-1 -n demo exec client -c curl -- curl -sS -o /dev/null --max-time 2 -w '%{http_code}' "${url}admin" 2>/dev/null) || true
	[ "$code" = 403 ] || die "phase $phase: GET /admin answered ${code:-nothing}, want 403 (denied by demo/deny-admin)"
	# The sidecar writes its audit trail to its stdout, in the background.
	deadline=$((SECONDS + 20))
	rec=$(audit_record "$want" "$sent")
	while [ -z "$rec" ] && [ "$SECONDS" -lt "$deadline" ]; do
		sleep 2
		rec=$(audit_record "$want" "$sent")
	done
	if [ -z "$rec" ]; then
		for c in "${clusters[@]}"; do
			[ "$c" != "$want" ] && [ -n "$(audit_record "$c" "$sent")" ] &&
				die "phase $phase: GET /admin was denied in $c, want $want (the cluster that serves)"
		done
		die "phase $phase: GET /admin answered 403 but no echo sidecar of $want recorded it"
	fi
	case "$rec" in
	*'"decision":"deny"'*'"policy":"demo/deny-admin"'* | *'"policy":"demo/deny-admin"'*'"decision":"deny"'*) ;;
	*) die "phase $phase: GET /admin: the audit record is not a deny by demo/deny-admin: $rec" ;;
	esac
	log "  GET /admin: 403 by $want's echo sidecar; its audit record: $rec"
}

# audit_record CLUSTER SINCE prints the first audit record since SINCE
# of east-1's client's GET /admin in CLUSTER's echo sidecars' logs.
audit_record() {
	k "$1" -n demo logs -l app=echo -c fedmesh-sidecar --since-time="$2" --tail=-1 2>/dev/null |
		grep -F '"path":"/admin"' | grep -F "\"source_principal\":\"spiffe://$trust_domain/ns/demo/sa/client\"" |
		grep -F '"source_cluster":"east-1"' | head -n 1 || true
}

# failover PHASE EXPECT FORBID...: after the action, east-1's client is
# served by EXPECT (settled, then 50 requests of which EXPECT serves 95%
# and the FORBID clusters none), and GET /admin is denied there.
failover() {
	local phase=$1 expect=$2
	shift 2
	settle "$phase" east-1 mostly
	log "phase $phase: served by $expect"
	requests east-1 50 >"$work/east-1"
	judge_served "$phase" "$expect" 95 "$@" <"$work/east-1"
	probe "$phase" "$expect"
}

# traffic_phase PHASE PREDICATE VARIANT V2 ABORT DELAY, after the route
# cluster's traffic objects changed: both clients follow (PREDICATE holds
# for their requests, with x-variant VARIANT), then 200 requests of each
# are judged against the split (VARIANT's: V2 ABORT DELAY; with a VARIANT
# also 200 requests without one, echo-v2 none). The requests of east-1's
# client are left in $work/east-1 for the phase's served-by judgment.
traffic_phase() {
	local phase=$1 pred=$2 variant=$3 v2=$4 abort=$5 delay=$6 c h=() what=""
	[ -n "$variant" ] && h=(-H "x-variant: $variant") && what=" [x-variant: $variant]"
	for c in "${callers[@]}"; do
		settle "$phase" "$c" "$pred" "${h[@]}"
	done
	log "phase $phase: both clients follow"
	for c in "${callers[@]}"; do
		requests "$c" 200 "${h[@]}" >"$work/$c"
		judge_split "$phase" "$c" "$what" "$v2" "$abort" "$delay" <"$work/$c"
		if [ -n "$variant" ]; then
			requests "$c" 200 >"$work/$c-other"
			judge_split "$phase" "$c" "" 0 0 0 <"$work/$c-other"
			cat "$work/$c-other" >>"$work/$c"
		fi
	done
}

scale() { k "$1" -n demo scale deployment/echo --replicas="$2" >/dev/null; }

failover "1 (steady)" east-1 west-1
scale east-1 0
failover "2 (east-1 echo killed)" east-2 west-1
scale east-2 0
failover "3 (east-2 echo killed too)" west-1
scale east-1 2
scale east-2 2
failover "4 (both restored)" east-1

# The traffic phases: east-1 holds the routes (one producer route, in
# echo's namespace, obeyed by every caller in every cluster), with the
# ResiliencePolicy, as in the local demo; west-1's client calls too.
log "phase 5: east-1 applies $(basename "$routes")/resilience.yaml and canary.yaml"
k east-1 apply -f "$routes/resilience.yaml" -f "$routes/canary.yaml" >/dev/null
traffic_phase "5 (canary 10% to echo-v2)" from_v2 "" 10 0 0
judge_served "5 (canary 10% to echo-v2)" east-1 0 east-2 <"$work/east-1"

log "phase 6: east-1 replaces canary.yaml with faults.yaml"
k east-1 delete -f "$routes/canary.yaml" >/dev/null
k east-1 apply -f "$routes/faults.yaml" >/dev/null
traffic_phase "6 (fault injection)" from_fault "" 0 20 10
judge_served "6 (fault injection)" east-1 0 east-2 west-1 <"$work/east-1"

log "phase 7: east-1 replaces faults.yaml with ab.yaml"
k east-1 delete -f "$routes/faults.yaml" >/dev/null
k east-1 apply -f "$routes/ab.yaml" >/dev/null
traffic_phase "7 (a/b on x-variant)" from_v2 b 100 0 0
judge_served "7 (a/b on x-variant)" east-1 0 east-2 <"$work/east-1"
probe "7 (a/b on x-variant)" east-1

log "phase 8: east-1 removes ab.yaml and resilience.yaml"
k east-1 delete -f "$routes/ab.yaml" -f "$routes/resilience.yaml" >/dev/null
traffic_phase "8 (routes removed)" from_v1 b 0 0 0
judge_served "8 (routes removed)" east-1 95 east-2 west-1 <"$work/east-1"
probe "8 (routes removed)" east-1

# The clusterset quota phase (docs/quota.md): one quota for demo/echo in
# every cluster; the clients of east-1 and west-1 together ask for more,
# first mostly east-1's, then mostly west-1's. Judged as the local demo
# judges it (internal/demo/quota.go): in a window of w seconds at most
# (w+2)·quota admitted and at least half of w·quota, some refused (429),
# and the busy client gets at least 60% of what is admitted.
quota=$(sed -n 's/.*requests: *\([0-9][0-9]*\).*/\1/p' "$manifests/quota.yaml")
log "phase 9: the clusterset quota demo/echo-quota/shared, $quota requests/s, in every cluster"
for c in "${clusters[@]}"; do
	k "$c" apply -f "$manifests/quota.yaml" >/dev/null
done
for c in "${callers[@]}"; do
	settle "9 (clusterset quota)" "$c" refused --rate "$((2 * quota))/s"
done
for busy in "${callers[@]}"; do
	phase="9 (quota: $busy's client busy)"
	settle_s=6 measure_s=8
	for part in settle measure; do
		secs=$settle_s
		[ "$part" = measure ] && secs=$measure_s
		start=$SECONDS
		for c in "${callers[@]}"; do
			rate=$((quota / 4 > 1 ? quota / 4 : 1))
			[ "$c" = "$busy" ] && rate=$((2 * quota))
			requests "$c" $((rate * secs)) --rate "$rate/s" >"$work/quota-$c" &
		done
		wait
	done
	w=$((SECONDS - start > measure_s ? SECONDS - start : measure_s))
	admitted=0 refused=0 busy_admitted=0 byc=""
	for c in "${callers[@]}"; do
		a=$(count answered <"$work/quota-$c")
		r=$(count 429 <"$work/quota-$c")
		admitted=$((admitted + a)) refused=$((refused + r)) byc="$byc $c=$a/$r"
		[ "$c" = "$busy" ] && busy_admitted=$a
	done
	log "phase $phase: in ${w}s admitted/refused by client:$byc"
	why=()
	[ "$admitted" -le $(((w + 2) * quota)) ] || why+=("$admitted admitted in ${w}s, more than $(((w + 2) * quota))")
	[ "$refused" -gt 0 ] || why+=("no request refused: the quota did not bind")
	[ "$admitted" -ge $((w * quota / 2)) ] || why+=("$admitted admitted in ${w}s, less than half the quota")
	if [ "$admitted" = 0 ] || [ $((busy_admitted * 100)) -lt $((admitted * 60)) ]; then
		why+=("the busy client got $busy_admitted of $admitted admitted, less than 60%")
	fi
	[ "${#why[@]}" = 0 ] || die "phase $phase: $(IFS=';'; echo "${why[*]}" | sed 's/;/; /g')"
done
for c in "${clusters[@]}"; do
	k "$c" delete -f "$manifests/quota.yaml" >/dev/null
done
log "all phases passed"
