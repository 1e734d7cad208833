#!/usr/bin/env bash
# Comparative benchmark of the sidecar data plane, in one run on one
# machine so that ratios are the figures (method: bench/sidecar.md).
#
#   scripts/bench-sidecar.sh            # writes bench/sidecar-results.md
#   BASELINE_PROXY=/path/to/old/fedmesh-proxy scripts/bench-sidecar.sh
#
# Paths, measured in ROUNDS interleaved rounds (the order rotates every
# round, so a machine whose load changes affects every path alike):
#   direct   httpload -> app
#   haproxy  httpload -> haproxy -> mTLS -> haproxy -> app
#   fedmesh  httpload -> client sidecar -> mTLS -> server sidecar -> app
#   before   the same with BASELINE_PROXY (an older fedmesh-proxy), when set
# In every round and for every path: the latency of GETs of 1 KiB at a
# fixed RATE from an open-loop generator (bench/cmd/httpload rate) and the
# proxies' CPU time over it, then the maximum rate of keep-alive GETs and
# of 1 KiB POSTs over CONNS connections (httpload max). The client
# sidecar holds SERVICES services; resident memory of the client proxies
# is read idle and at peak. Every address is on 127.0.77.0/24; every load
# is bounded by its duration.
#
# Environment: ROUNDS (3), RATE (1000), SECONDS_AT_RATE (10), CONNS (32),
# MAX_SECONDS (5), SERVICES (1000), OUT (bench/sidecar-results.md),
# BASELINE_PROXY (unset), PATHS (the paths to measure besides before:
# "direct haproxy fedmesh"), TOOLS (where fortio, the app, is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

rounds=${ROUNDS:-3}
rate=${RATE:-1000}
at_rate=${SECONDS_AT_RATE:-10}
conns=${CONNS:-32}
max_seconds=${MAX_SECONDS:-5}
services=${SERVICES:-1000}
out=${OUT:-bench/sidecar-results.md}
baseline=${BASELINE_PROXY:-}
tools=${TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/fedmesh/tools/bin}
fortio_version=v1.68.2

# --- tools -------------------------------------------------------------------
apt_updated=
need_apt() { # need_apt COMMAND PACKAGE
	command -v "$1" >/dev/null && return
	if [ -z "$apt_updated" ]; then
		apt-get update -qq
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need_apt haproxy haproxy
need_apt curl curl
fortio=$tools/fortio
if [ ! -x "$fortio" ] || ! "$fortio" version 2>/dev/null | grep -qx "${fortio_version#v}"; then
	mkdir -p "$tools"
	GOBIN=$tools go install "fortio.org/fortio@$fortio_version"
fi

# The commit the binaries are built from, named in the report.
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
go build -tags grpcnotrace -o "$bin/fedmesh-proxy" ./cmd/fedmesh-proxy
go build -o "$bin/httpload" ./bench/cmd/httpload
if [ -n "$baseline" ] && [ ! -x "$baseline" ]; then
	echo "BASELINE_PROXY=$baseline is not an executable" >&2
	exit 1
fi

# --- certificates from fedmesh's own CA ----------------------------------------
td=bench.local
"$bin/fedmesh" ca init --trust-domain "$td" --dir "$work/root" >/dev/null
"$bin/fedmesh" ca issue-cluster --root-dir "$work/root" --cluster east-1 --dir "$work/east-1" >/dev/null
bundle=$work/east-1/bundle.crt
http_sni=8080.echo.demo.svc.clusterset.local
"$bin/meshxds" issue -ca-dir "$work/east-1" -ns demo -sa client -out "$work/hap-client"
"$bin/meshxds" issue -ca-dir "$work/east-1" -ns demo -sa echo -dns "$http_sni" -out "$work/hap-server"

# --- the app, the control plane stand-ins and the sidecars ------------------------
net=127.0.77
app=$net.2
host=echo.demo.svc.clusterset.local:8080
start app "$fortio" server -http-port "$app:18080" -grpc-port "$app:18079" \
	-redirect-port disabled -tcp-port disabled -udp-port disabled -loglevel warning
pair() { # pair NAME BINARY BASE: xDS at .BASE+1, server sidecar at .BASE+3, client at .BASE+4, its service IP .BASE+5
	local name=$1 binary=$2 b=$3
	start "xds-$name" "$bin/meshxds" sidecar -listen "$net.$((b + 1)):15010" -ca-dir "$work/east-1" \
		-client-node client -server-node server -inbound "$net.$((b + 3)):15006" \
		-http-app "$app:18080" -grpc-app "$app:18079" -services "$services" -lifetime 2h
	local flags=(--insecure-xds --xds-address "$net.$((b + 1)):15010" --trust-domain "$td" --cluster east-1
		--namespace demo --dns none --log-level warn)
	start "server-$name" "$binary" sidecar "${flags[@]}" --node-id server \
		--service-account echo --workload echo --address "$net.$((b + 3))" --service-ip none
	server_pid[$name]=$last_pid
	start "client-$name" "$binary" sidecar "${flags[@]}" --node-id client \
		--service-account client --workload client --address "$net.$((b + 4))" --service-ip "$net.$((b + 5))"
	client_pid[$name]=$last_pid
	url[$name]="http://$net.$((b + 5)):8080"
	wait_for "$name server sidecar" curl -fsS "http://$net.$((b + 3)):15000/ready"
	wait_for "$name client sidecar" curl -fsS "http://$net.$((b + 4)):15000/ready"
	wait_for "a route through the $name pair" curl -fsS -H "Host: $host" "${url[$name]}/echo"
}
declare -A server_pid client_pid url
url[direct]="http://$app:18080"
read -r -a paths <<<"${PATHS:-direct haproxy fedmesh}"
pair fedmesh "$bin/fedmesh-proxy" 0
if [ -n "$baseline" ]; then
	pair before "$baseline" 10
	paths+=(before)
fi

# --- the HAProxy pair --------------------------------------------------------------
cat >"$work/haproxy-client.cfg" <<HAP
global
	maxconn 4096
defaults
	mode http
	timeout connect 5s
	timeout client 30s
	timeout server 30s
	http-reuse always
frontend out_http
	bind $net.6:8080
	default_backend mtls_http
backend mtls_http
	server s $net.7:15006 ssl crt $work/hap-client.pem ca-file $bundle verify required sni str($http_sni) alpn h2
HAP
cat >"$work/haproxy-server.cfg" <<HAP
global
	maxconn 4096
defaults
	mode http
	timeout connect 5s
	timeout client 30s
	timeout server 30s
	http-reuse always
frontend in_mtls
	bind $net.7:15006 ssl crt $work/hap-server.pem ca-file $bundle verify required alpn h2,http/1.1
	default_backend app_http
backend app_http
	server a $app:18080
HAP
start hap_server haproxy -db -f "$work/haproxy-server.cfg"
server_pid[haproxy]=$last_pid
start hap_client haproxy -db -f "$work/haproxy-client.cfg"
client_pid[haproxy]=$last_pid
url[haproxy]="http://$net.6:8080"
wait_for "route through haproxy" curl -fsS "${url[haproxy]}/echo"

# Every client proxy has its configuration; let the heap settle.
sleep 2
results=$work/results.tsv
: >"$results"
for p in "${paths[@]}"; do
	[ "$p" = direct ] && continue
	printf '1\t%s\trss_idle\t%s\n' "$p" "$(rss_kib "${client_pid[$p]}")" >>"$results"
	printf '1\t%s\tserver_rss_idle\t%s\n' "$p" "$(rss_kib "${server_pid[$p]}")" >>"$results"
	reset_hwm "${client_pid[$p]}"
	reset_hwm "${server_pid[$p]}"
done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# --- measurements --------------------------------------------------------------------
cpu_of() { # cpu_of PATH: CPU ticks of both proxies of PATH so far (0 for direct)
	if [ "$1" = direct ]; then echo 0; else echo $(($(cpu_ticks "${client_pid[$1]}") + $(cpu_ticks "${server_pid[$1]}"))); fi
}
kv() { # kv KEY LINE: the value of KEY in httpload's key=value line
	tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k {print $2}'
}
cpu_per_1k() { # cpu_per_1k TICKS REQUESTS
	awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN {printf "%.4f", (t / hz) / (n / 1000)}'
}
measure() { # measure ROUND PATH: rows of results.tsv
	local r=$1 p=$2 u="${url[$2]}/echo" line c0 c1 sent ok
	c0=$(cpu_of "$p")
	line=$("$bin/httpload" rate -url "$u?size=1024" -host "$host" -rate "$rate" -duration "${at_rate}s" -conns 64)
	c1=$(cpu_of "$p")
	sent=$(kv sent "$line") ok=$(kv ok "$line")
	echo "round $r $p at $rate/s: $line" >&2
	printf '%s\t%s\tp50\t%s\n%s\t%s\tp90\t%s\n%s\t%s\tp99\t%s\n' "$r" "$p" "$(kv p50_ms "$line")" "$r" "$p" "$(kv p90_ms "$line")" "$r" "$p" "$(kv p99_ms "$line")" >>"$results"
	printf '%s\t%s\trate_failed\t%s\n' "$r" "$p" $((sent - ok)) >>"$results"
	[ "$p" != direct ] && printf '%s\t%s\tcpu_rate\t%s\n' "$r" "$p" "$(cpu_per_1k $((c1 - c0)) "$sent")" >>"$results"
	c0=$(cpu_of "$p")
	line=$("$bin/httpload" max -url "$u?size=1024" -host "$host" -conns "$conns" -duration "${max_seconds}s")
	c1=$(cpu_of "$p")
	sent=$(kv sent "$line") ok=$(kv ok "$line")
	echo "round $r $p max GET: $line" >&2
	printf '%s\t%s\tget_max\t%s\n' "$r" "$p" "$(kv rate "$line")" >>"$results"
	printf '%s\t%s\tget_max_failed\t%s\n' "$r" "$p" $((sent - ok)) >>"$results"
	[ "$p" != direct ] && printf '%s\t%s\tcpu_max\t%s\n' "$r" "$p" "$(cpu_per_1k $((c1 - c0)) "$sent")" >>"$results"
	line=$("$bin/httpload" max -url "$u" -host "$host" -body 1024 -conns "$conns" -duration "${max_seconds}s")
	sent=$(kv sent "$line") ok=$(kv ok "$line")
	echo "round $r $p max POST: $line" >&2
	printf '%s\t%s\tpost_max\t%s\n' "$r" "$p" "$(kv rate "$line")" >>"$results"
	printf '%s\t%s\tpost_max_failed\t%s\n' "$r" "$p" $((sent - ok)) >>"$results"
	return 0
}
# Warm up every path with as many connections as the loads use, so that
# no round pays for opening them (HTTP/1.1 between sidecars pools one
# connection per request in flight).
for p in "${paths[@]}"; do
	"$bin/httpload" max -url "${url[$p]}/echo?size=1024" -host "$host" -conns 64 -duration 1s >/dev/null
done
n=${#paths[@]}
for r in $(seq "$rounds"); do
	for i in $(seq 0 $((n - 1))); do
		measure "$r" "${paths[$(((i + r - 1) % n))]}"
	done
done
for p in "${paths[@]}"; do
	[ "$p" = direct ] && continue
	printf '1\t%s\trss_peak\t%s\n' "$p" "$(hwm_kib "${client_pid[$p]}")" >>"$results"
	printf '1\t%s\tserver_rss_peak\t%s\n' "$p" "$(hwm_kib "${server_pid[$p]}")" >>"$results"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
failed=$(awk -F'\t' '$3 ~ /_failed$/ {s += $4} END {print s + 0}' "$results")

# --- report ------------------------------------------------------------------------
{
	echo "# Sidecar benchmark results"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit," \
		"$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))," \
		"$(free -g | awk '/Mem:/ {print $2}') GiB, $(go version | cut -d' ' -f3)," \
		"$(haproxy -v | awk 'NR==1 {print "HAProxy " $3}'), kernel $(uname -r)." \
		"Load average (1, 5, 15 min) before the loads: $load_before; after: $load_after."
	if [ -n "$baseline" ]; then
		echo "\`before\` is BASELINE_PROXY: $("$baseline" version 2>/dev/null | head -n1 || echo 'version unknown')."
	fi
	echo
	echo "$rounds interleaved rounds. Each round and path: GETs of 1 KiB at $rate/s for $at_rate s from an open-loop" \
		"generator (latency from when each request was due), then as many keep-alive GETs (1 KiB answers) and" \
		"1 KiB POSTs (echoed) as $conns connections carry in $max_seconds s each. CPU is both proxies' user and" \
		"system time. The client sidecar holds $services services. Requests not answered 200: $failed."
	echo
	"$bin/httpload" report -in "$results"
	echo
	echo "Server side proxies' RSS (KiB), idle and peak:"
	awk -F'\t' '$3 == "server_rss_idle" {i[$2] = $4} $3 == "server_rss_peak" {k[$2] = $4}
		END {for (p in i) printf "%s %s / %s; ", p, i[p], k[p]; print ""}' "$results"
} >"$out"
cat "$out"
