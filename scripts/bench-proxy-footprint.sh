#!/usr/bin/env bash
# Footprint of the lean data-plane binary: size of bin/fedmesh-proxy and
# bin/fedmesh (built as make build does, stripped), and the idle RSS of
# `fedmesh-proxy sidecar` and `fedmesh sidecar` (and of the two gateways)
# with the same flags, in ROUNDS interleaved rounds, min/median/max.
#
# Idle means started, listening and not yet configured: the xDS address is
# 127.0.0.1:1, where nothing answers, so both retry with backoff. It shows
# what the binary itself costs (its pages, package init, the runtime), not
# the cost of a configuration, which is the same code in both.
#   ROUNDS=n   rounds (default 3)
#   SETTLE=s   seconds to wait after the admin listener answers (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
settle=${SETTLE:-5}
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

go build -trimpath -tags grpcnotrace -ldflags '-s -w' -o "$work/" ./cmd/fedmesh ./cmd/fedmesh-proxy

# rss BIN ROLE: start BIN ROLE on port-0 listeners, wait until its admin
# listener answers, wait SETTLE seconds, print VmRSS in KiB.
rss() {
	local bin=$1 role=$2 log="$work/$RANDOM.log" args
	case $role in
	sidecar) args=(sidecar --cluster east-1 --namespace demo --workload client --insecure-xds --trust-domain fedmesh.local
		--xds-address 127.0.0.1:1 --address 127.0.0.1 --outbound 127.0.0.1:0 --admin 127.0.0.1:0 --dns none
		--service-ip none --audit-log none) ;;
	gateway) args=(gateway --cluster east-1 --insecure-xds --xds-address 127.0.0.1:1 --listen 127.0.0.1:0 --admin 127.0.0.1:0) ;;
	esac
	"$bin" "${args[@]}" >"$log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	local admin="" i
	for i in $(seq 100); do
		admin=$(sed -n 's/.* started.*admin=\([0-9.:]*\).*/\1/p' "$log" | head -1)
		if [ -n "$admin" ] && curl -fsS -o /dev/null "http://$admin/stats/prometheus"; then
			break
		fi
		kill -0 "$pid" 2>/dev/null || { echo "$bin $role exited:" >&2; cat "$log" >&2; exit 1; }
		admin=""
		sleep 0.1
	done
	[ -n "$admin" ] || { echo "$bin $role: admin listener never answered" >&2; cat "$log" >&2; exit 1; }
	sleep "$settle"
	awk '/^VmRSS:/{print $2}' "/proc/$pid/status"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}

# stats: min/median/max of the numbers on stdin, KiB in, MiB out.
stats() { sort -n | awk '{a[NR]=$1} END {printf "%.1f / %.1f / %.1f MiB", a[1]/1024, a[int((NR+1)/2)]/1024, a[NR]/1024}'; }

declare -A got
for r in $(seq "$rounds"); do
	for role in sidecar gateway; do
		for bin in fedmesh-proxy fedmesh; do
			got[$bin-$role]+="$(rss "$work/$bin" "$role") "
		done
	done
done
echo "# commit $(git rev-parse --short HEAD), $(go version | cut -d' ' -f3-), $(nproc) cores, $rounds rounds, idle RSS min / median / max"
printf '%-30s %s\n' "binary size fedmesh-proxy" "$(stat -c %s "$work/fedmesh-proxy" | awk '{printf "%.1f MiB", $1/1048576}')"
printf '%-30s %s\n' "binary size fedmesh" "$(stat -c %s "$work/fedmesh" | awk '{printf "%.1f MiB", $1/1048576}')"
for role in sidecar gateway; do
	for bin in fedmesh-proxy fedmesh; do
		printf '%-30s %s\n' "$bin $role RSS" "$(tr ' ' '\n' <<<"${got[$bin-$role]}" | grep . | stats)"
	done
done
