#!/usr/bin/env bash
# Idle RSS of a configured client sidecar (`fedmesh-proxy sidecar`) holding
# SERVICES services, served by bench/cmd/meshxds (the scene the sidecar
# driver uses), in ROUNDS interleaved rounds, min/median/max. With
# BASELINE=path/to/fedmesh-proxy the same is measured for that binary in
# the same rounds (for before/after figures).
#
# Configured means: the sidecar has ACKed its endpoints (its
# fedmesh_xds_responses_total{type="endpoint",result="ack"} is set), then
# SETTLE seconds pass, /stats/prometheus is scraped once (an idle sidecar
# is scraped; the scrape's code is part of its resident set) and VmRSS is
# read.
#   SERVICES=n  services (default 1000)
#   ROUNDS=n    rounds (default 3)
#   SETTLE=s    seconds after the endpoints are ACKed (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
services=${SERVICES:-1000}
rounds=${ROUNDS:-3}
settle=${SETTLE:-5}
baseline=${BASELINE:-}
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

go build -trimpath -tags grpcnotrace -ldflags '-s -w' -o "$work/" ./cmd/fedmesh ./cmd/fedmesh-proxy ./bench/cmd/meshxds
td=bench.local
"$work/fedmesh" ca init --trust-domain "$td" --dir "$work/root" >/dev/null
"$work/fedmesh" ca issue-cluster --root-dir "$work/root" --cluster east-1 --dir "$work/east-1" >/dev/null

# wait_log FILE SED: print the first match of SED in FILE, waiting up to 10s.
wait_log() {
	local i v
	for i in $(seq 100); do
		v=$(sed -n "$2" "$1" | head -1)
		[ -n "$v" ] && { echo "$v"; return; }
		sleep 0.1
	done
	echo "no match for $2 in $1:" >&2
	cat "$1" >&2
	exit 1
}

"$work/meshxds" sidecar -listen 127.0.0.1:0 -ca-dir "$work/east-1" -client-node client -server-node server \
	-inbound 127.0.0.1:1 -http-app 127.0.0.1:1 -grpc-app 127.0.0.1:1 -services "$services" -lifetime 1h \
	>"$work/xds.log" 2>&1 &
pids+=($!)
xds=$(wait_log "$work/xds.log" 's/.*serving xDS.*addr=\([0-9.:]*\).*/\1/p')

# rss BIN: start BIN as the client sidecar, wait until it has ACKed its
# endpoints, wait SETTLE seconds, print VmRSS in KiB.
rss() {
	local bin=$1 log="$work/$RANDOM.log"
	"$bin" sidecar --insecure-xds --xds-address "$xds" --trust-domain "$td" --cluster east-1 --namespace demo \
		--node-id client --service-account client --workload client --address 127.0.0.1 --outbound 127.0.0.1:0 \
		--admin 127.0.0.1:0 --dns none --service-ip none --audit-log none >"$log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	local admin i ok=""
	admin=$(wait_log "$log" 's/.* started.*admin=\([0-9.:]*\).*/\1/p')
	for i in $(seq 600); do
		if curl -fsS "http://$admin/stats/prometheus" | grep -q 'fedmesh_xds_responses_total{.*result="ack".*type="endpoint"'; then
			ok=1
			break
		fi
		kill -0 "$pid" 2>/dev/null || { echo "$bin exited:" >&2; cat "$log" >&2; exit 1; }
		sleep 0.1
	done
	[ -n "$ok" ] || { echo "$bin never ACKed its endpoints" >&2; cat "$log" >&2; exit 1; }
	sleep "$settle"
	curl -fsS "http://$admin/stats/prometheus" >/dev/null
	awk '/^VmRSS:/{print $2}' "/proc/$pid/status"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}

stats() { sort -n | awk '{a[NR]=$1} END {printf "%.1f / %.1f / %.1f MiB", a[1]/1024, a[int((NR+1)/2)]/1024, a[NR]/1024}'; }

cur="" base=""
for r in $(seq "$rounds"); do
	cur+="$(rss "$work/fedmesh-proxy") "
	if [ -n "$baseline" ]; then
		base+="$(rss "$baseline") "
	fi
done
echo "# commit $(git rev-parse --short HEAD), $(go version | cut -d' ' -f3-), $(nproc) cores, $rounds rounds, $services services, client sidecar RSS configured and idle, min / median / max"
printf '%-30s %s\n' "fedmesh-proxy (this tree)" "$(tr ' ' '\n' <<<"$cur" | grep . | stats)"
if [ -n "$baseline" ]; then
	printf '%-30s %s\n' "baseline" "$(tr ' ' '\n' <<<"$base" | grep . | stats)"
fi
