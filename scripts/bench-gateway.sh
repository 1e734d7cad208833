#!/usr/bin/env bash
# Comparative benchmark of the east-west gateway, in one run on one machine
# so that ratios are the figures (method: bench/gateway.md).
#
#   scripts/bench-gateway.sh            # writes bench/gateway-results.md
#
# One mutual-TLS server (bench/cmd/tlsload serve) stands for a workload's
# sidecar; the same client reaches it
#   direct   client -> server
#   fedmesh  client -> fedmesh gateway (SNI, splice) -> server
#   haproxy  client -> haproxy (mode tcp, req_ssl_sni) -> server
# and measures throughput (MB/s), round-trip latency of 1 KiB, new TLS
# connections per second, and the hop's resident memory with HOLD spliced
# connections open. Every address is on 127.0.78.0/24; every load is bounded
# in time and count.
#
# Environment: SECONDS_EACH (3), ROUNDS (3), HOLD (10000, lowered to what the open-file
# limit allows), ROUTES (1000 routes in each hop's table), OUT
# (bench/gateway-results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

seconds=${SECONDS_EACH:-3}
rounds=${ROUNDS:-3}
hold=${HOLD:-10000}
routes=${ROUTES:-1000}
out=${OUT:-bench/gateway-results.md}

# --- tools and limits --------------------------------------------------------------
if ! command -v haproxy >/dev/null; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
fi
# The hop holds two sockets per spliced connection. Raise the soft limit
# to the hard one; HOLD shrinks when the hard limit cannot take it.
ulimit -n "$(ulimit -Hn)"
fd_limit=$(ulimit -n)
hold_requested=$hold
if [ $((2 * hold + 500)) -gt "$fd_limit" ]; then
	hold=$(((fd_limit - 500) / 2))
fi

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
go build -o "$bin/tlsload" ./bench/cmd/tlsload

# --- certificates from fedmesh's own CA ----------------------------------------------
td=bench.local
sni=9000.sink.demo.svc.clusterset.local
"$bin/fedmesh" ca init --trust-domain "$td" --dir "$work/root" >/dev/null
"$bin/fedmesh" ca issue-cluster --root-dir "$work/root" --cluster east-1 --dir "$work/east-1" >/dev/null
bundle=$work/east-1/bundle.crt
"$bin/meshxds" issue -ca-dir "$work/east-1" -ns demo -sa sink -dns "$sni" -out "$work/server"
"$bin/meshxds" issue -ca-dir "$work/east-1" -ns demo -sa client -out "$work/client"

# --- the server, the hops --------------------------------------------------------------
net=127.0.78
backend=$net.2:19000
gw=$net.3:15443
hap=$net.4:15443
start server "$bin/tlsload" serve -listen "$backend" -cert "$work/server.crt" -key "$work/server.key" -ca "$bundle"
start xds "$bin/meshxds" gateway -listen "$net.1:15010" -node "gateway~$gw~east-1" -gateway-listen "$gw" \
	-route "$sni=$backend" -extra-routes $((routes - 1))
start gateway "$bin/fedmesh" gateway --insecure-xds --xds-address "$net.1:15010" --cluster east-1 \
	--listen "$gw" --admin "$net.3:15021" --max-connections-per-source $((hold + 1000)) \
	--idle-timeout 5m --log-level warn
pid_gateway=$last_pid
{
	echo "global"
	echo "	maxconn $((hold + 100))"
	echo "defaults"
	echo "	mode tcp"
	echo "	timeout connect 5s"
	echo "	timeout client 5m"
	echo "	timeout server 5m"
	echo "frontend gw"
	echo "	bind $hap"
	echo "	maxconn $((hold + 100))"
	echo "	tcp-request inspect-delay 5s"
	echo "	tcp-request content accept if { req_ssl_hello_type 1 }"
	echo "	use_backend sink if { req_ssl_sni -i $sni }"
	for i in $(seq 0 $((routes - 2))); do
		printf '\tuse_backend other%04d if { req_ssl_sni -i 9000.svc-%04d.bench.svc.clusterset.local }\n' "$i" "$i"
	done
	echo "backend sink"
	echo "	server s $backend"
	for i in $(seq 0 $((routes - 2))); do
		printf 'backend other%04d\n\tserver s %s\n' "$i" "$backend"
	done
} >"$work/haproxy.cfg"
start haproxy haproxy -db -f "$work/haproxy.cfg"
pid_haproxy=$last_pid

client=(-sni "$sni" -cert "$work/client.crt" -key "$work/client.key" -ca "$bundle")
probe() { "$bin/tlsload" connrate -addr "$1" "${client[@]}" -duration 100ms -workers 1 -max 1 | grep -q 'connections=1 '; }
wait_for "server" probe "$backend"
wait_for "gateway route" probe "$gw"
wait_for "haproxy" probe "$hap"
sleep 1

# --- measurements -------------------------------------------------------------------------
# ROUNDS rounds of every short measurement, paths taking turns, so that a
# burst of other work on the machine hits all paths alike; the report
# gives the median of the rounds.
raw=$work/raw.tsv
: >"$raw"
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" "$2"; }
addr_of() {
	case $1 in
	direct) echo "$backend" ;;
	fedmesh) echo "$gw" ;;
	haproxy) echo "$hap" ;;
	esac
}
pid_of() {
	case $1 in
	direct) echo "" ;;
	fedmesh) echo "$pid_gateway" ;;
	haproxy) echo "$pid_haproxy" ;;
	esac
}
for round in $(seq "$rounds"); do
	for path in direct fedmesh haproxy; do
		addr=$(addr_of "$path")
		pid=$(pid_of "$path")
		f=$work/$path-$round
		before=0
		if [ -n "$pid" ]; then before=$(cpu_ticks "$pid"); fi
		"$bin/tlsload" throughput -addr "$addr" "${client[@]}" -duration "${seconds}s" -conns 1 >"$f-tput1.txt"
		"$bin/tlsload" throughput -addr "$addr" "${client[@]}" -duration "${seconds}s" -conns 8 >"$f-tput8.txt"
		cpu_gb=0
		if [ -n "$pid" ]; then
			cpu_gb=$(awk -v t=$(($(cpu_ticks "$pid") - before)) -v hz="$hz" \
				-v b=$(($(kv bytes "$f-tput1.txt") + $(kv bytes "$f-tput8.txt"))) 'BEGIN {printf "%.3f", (t / hz) / (b / 1e9)}')
		fi
		"$bin/tlsload" latency -addr "$addr" "${client[@]}" -duration "${seconds}s" >"$f-lat.txt"
		before=0
		if [ -n "$pid" ]; then before=$(cpu_ticks "$pid"); fi
		"$bin/tlsload" connrate -addr "$addr" "${client[@]}" -duration "${seconds}s" -workers 16 >"$f-conn.txt"
		cpu=0
		if [ -n "$pid" ]; then
			cpu=$(awk -v t=$(($(cpu_ticks "$pid") - before)) -v hz="$hz" -v n="$(kv connections "$f-conn.txt")" \
				'BEGIN {printf "%.3f", (t / hz) / (n / 1000)}')
		fi
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$path" \
			"$(kv mbps "$f-tput1.txt")" "$(kv mbps "$f-tput8.txt")" \
			"$(kv p50_us "$f-lat.txt")" "$(kv p90_us "$f-lat.txt")" "$(kv p99_us "$f-lat.txt")" \
			"$(kv per_second "$f-conn.txt")" "$(kv failed "$f-conn.txt")" "$cpu" "$cpu_gb" >>"$raw"
	done
done
median() { # median PATH COLUMN
	awk -F'\t' -v p="$1" -v c="$2" '$1 == p {print $c}' "$raw" | sort -g |
		awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
results=$work/results.tsv
: >"$results"
for path in direct fedmesh haproxy; do
	row=$path
	for col in 2 3 4 5 6 7; do row+=$'\t'$(median "$path" "$col"); done
	row+=$'\t'$(awk -F'\t' -v p="$path" '$1 == p {s += $8} END {print s}' "$raw")
	if [ "$path" = direct ]; then
		row+=$'\t-\t-'
	else
		row+=$'\t'$(median "$path" 9)$'\t'$(median "$path" 10)
	fi
	results_hold="-\t-\t-"
	pid=$(pid_of "$path")
	if [ -n "$pid" ]; then
		"$bin/tlsload" hold -addr "$(addr_of "$path")" "${client[@]}" -n "$hold" -watch-pid "$pid" >"$work/$path-hold.txt"
		results_hold="$(kv rss_before_kib "$work/$path-hold.txt")\t$(kv rss_held_kib "$work/$path-hold.txt")\t$(kv per_conn_kib "$work/$path-hold.txt")"
		# Let the held connections close before the next hop.
		sleep 1
	fi
	printf '%s\t%b\n' "$row" "$results_hold" >>"$results"
done

# --- report ------------------------------------------------------------------------------
{
	echo "# Gateway benchmark results"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
		"$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))," \
		"$(free -g | awk '/Mem:/ {print $2}') GiB, $(go version | cut -d' ' -f3)," \
		"$(haproxy -v | awk 'NR==1 {print "HAProxy " $3}'), kernel $(uname -r), open-file limit $fd_limit."
	echo
	echo "Each measurement runs ${seconds} s, ${rounds} rounds with the paths taking turns; medians of the rounds (failures: the sum). All over TLS 1.3 with client certificates (ECDSA P-256)," \
		"end to end between client and server; the hop reads only the SNI. Each hop has ${routes} routes."
	echo
	echo "| path | MB/s, 1 conn | MB/s, 8 conns | 1 KiB RTT p50 µs | p90 µs | p99 µs | new TLS conns/s (16 workers) | failed (all rounds) | hop CPU s per 1k conns | hop CPU s per GB |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}' "$results"
	echo
	echo "Added by the hop, against direct:"
	echo
	echo "| hop | throughput, 1 conn | throughput, 8 conns | added p50 µs | added p99 µs | conns/s |"
	echo "|---|---:|---:|---:|---:|---:|"
	awk -F'\t' '$1 == "direct" {t1 = $2; t8 = $3; p50 = $4; p99 = $6; c = $7; next}
		{printf "| %s | %.2fx | %.2fx | %+.1f | %+.1f | %.2fx |\n", $1, $2 / t1, $3 / t8, $4 - p50, $6 - p99, $7 / c}' "$results"
	echo
	if [ "$hold" -lt "$hold_requested" ]; then
		echo "Held connections: $hold (asked for $hold_requested; the open-file hard limit here is $fd_limit and the hop holds two sockets per connection)."
	else
		echo "Held connections: $hold."
	fi
	echo
	echo "| hop | RSS before KiB | RSS with $hold spliced KiB | KiB per connection |"
	echo "|---|---:|---:|---:|"
	awk -F'\t' '$1 != "direct" {printf "| %s | %s | %s | %s |\n", $1, $11, $12, $13}' "$results"
} >"$out"
cat "$out"
