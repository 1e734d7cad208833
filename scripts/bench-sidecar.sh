#!/usr/bin/env bash
# Comparative benchmark of the sidecar data plane, in one run on one
# machine so that ratios are the figures (method: bench/sidecar.md).
#
#   scripts/bench-sidecar.sh            # writes bench/sidecar-results.md
#
# Load: fortio at RATE requests/s over CONNS connections with 1 KiB bodies
# (p50/p90/p99), then the most it can do in MAX_SECONDS, for
#   direct   fortio -> app
#   fedmesh  fortio -> client sidecar -> mTLS (h2) -> server sidecar -> app
#   haproxy  fortio -> haproxy -> mTLS (h2) -> haproxy -> app
# over HTTP/1.1 and gRPC. The client sidecar holds SERVICES services. It
# also records CPU seconds per 1,000 requests and resident memory of the
# proxies. Every address is on 127.0.77.0/24; every load is bounded by -t.
#
# Environment: RATE (1000), CONNS (16), SECONDS_AT_RATE (10), MAX_SECONDS
# (5), SERVICES (1000), OUT (bench/sidecar-results.md), TOOLS (where fortio
# is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

rate=${RATE:-1000}
conns=${CONNS:-16}
at_rate=${SECONDS_AT_RATE:-10}
max_seconds=${MAX_SECONDS:-5}
services=${SERVICES:-1000}
out=${OUT:-bench/sidecar-results.md}
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

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

# --- certificates from fedmesh's own CA ----------------------------------------
td=bench.local
"$bin/fedmesh" ca init --trust-domain "$td" --dir "$work/root" >/dev/null
"$bin/fedmesh" ca issue-cluster --root-dir "$work/root" --cluster east-1 --dir "$work/east-1" >/dev/null
bundle=$work/east-1/bundle.crt
http_sni=8080.echo.demo.svc.clusterset.local
grpc_sni=8079.echo-grpc.demo.svc.clusterset.local
"$bin/meshxds" issue -ca-dir "$work/east-1" -ns demo -sa client -out "$work/hap-client"
"$bin/meshxds" issue -ca-dir "$work/east-1" -ns demo -sa echo -dns "$http_sni" -dns "$grpc_sni" -out "$work/hap-server"

# --- the app, the control plane stand-in and the sidecars ------------------------
net=127.0.77
app=$net.2
start app "$fortio" server -http-port "$app:18080" -grpc-port "$app:18079" \
	-redirect-port disabled -tcp-port disabled -udp-port disabled -loglevel warning
start xds "$bin/meshxds" sidecar -listen "$net.1:15010" -ca-dir "$work/east-1" \
	-client-node client -server-node server -inbound "$net.3:15006" \
	-http-app "$app:18080" -grpc-app "$app:18079" -services "$services"
sidecar_flags=(--insecure-xds --xds-address "$net.1:15010" --trust-domain "$td" --cluster east-1
	--namespace demo --dns none --log-level warn)
start server "$bin/fedmesh" sidecar "${sidecar_flags[@]}" --node-id server \
	--service-account echo --workload echo --address "$net.3" --service-ip none
pid_server=$last_pid
start client "$bin/fedmesh" sidecar "${sidecar_flags[@]}" --node-id client \
	--service-account client --workload client --address "$net.4" --service-ip "$net.5"
pid_client=$last_pid

# --- the HAProxy pair --------------------------------------------------------------
cat >"$work/haproxy-client.cfg" <<EOF
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
frontend out_grpc
	bind $net.6:8079 proto h2
	default_backend mtls_grpc
backend mtls_http
	server s $net.7:15006 ssl crt $work/hap-client.pem ca-file $bundle verify required sni str($http_sni) alpn h2
backend mtls_grpc
	server s $net.7:15006 ssl crt $work/hap-client.pem ca-file $bundle verify required sni str($grpc_sni) alpn h2
EOF
cat >"$work/haproxy-server.cfg" <<EOF
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
	use_backend app_grpc if { ssl_fc_sni -i $grpc_sni }
	default_backend app_http
backend app_http
	server a $app:18080
backend app_grpc
	server a $app:18079 proto h2
EOF
start hap_server haproxy -db -f "$work/haproxy-server.cfg"
pid_hap_server=$last_pid
start hap_client haproxy -db -f "$work/haproxy-client.cfg"
pid_hap_client=$last_pid

wait_for "server sidecar" curl -fsS "http://$net.3:15000/ready"
wait_for "client sidecar" curl -fsS "http://$net.4:15000/ready"
wait_for "route through the sidecars" curl -fsS -H "Host: echo.demo.svc.clusterset.local:8080" "http://$net.5:8080/echo"
wait_for "gRPC through the sidecars" "$fortio" load -quiet -grpc -ping -n 1 -c 1 "$net.5:8079"
wait_for "route through haproxy" curl -fsS "http://$net.6:8080/echo"
wait_for "gRPC through haproxy" "$fortio" load -quiet -grpc -ping -n 1 -c 1 "$net.6:8079"
# The client sidecar has its configuration; let the heap settle.
sleep 2
rss_client_idle=$(rss_kib "$pid_client")
rss_server_idle=$(rss_kib "$pid_server")
rss_hap_client_idle=$(rss_kib "$pid_hap_client")
for p in "$pid_client" "$pid_server" "$pid_hap_client" "$pid_hap_server"; do reset_hwm "$p"; done

# --- measurements --------------------------------------------------------------------
results=$work/results.tsv
: >"$results"
load() { # load NAME PROTO TARGET [CLIENT_PROXY_PID SERVER_PROXY_PID]; one row of results.tsv
	local name=$1 proto=$2 target=$3 cp=${4:-} sp=${5:-}
	local args=(-quiet -c "$conns" -payload-size 1024 -p "50,90,99" -nocatchup)
	local hdr=()
	if [ "$proto" = grpc ]; then
		args+=(-grpc -ping -s 1)
	else
		hdr=(-H "Host: echo.demo.svc.clusterset.local:8080")
	fi
	local c0=0 s0=0 c1=0 s1=0
	if [ -n "$cp" ]; then c0=$(cpu_ticks "$cp") s0=$(cpu_ticks "$sp"); fi
	"$fortio" load "${args[@]}" "${hdr[@]}" -qps "$rate" -t "${at_rate}s" "$target" >"$work/$name-$proto-rate.txt" 2>&1
	if [ -n "$cp" ]; then c1=$(cpu_ticks "$cp") s1=$(cpu_ticks "$sp"); fi
	"$fortio" load "${args[@]}" "${hdr[@]}" -qps 0 -t "${max_seconds}s" "$target" >"$work/$name-$proto-max.txt" 2>&1
	awk -v name="$name" -v proto="$proto" -v ct=$((c1 - c0)) -v st=$((s1 - s0)) -v hz="$hz" -v maxf="$work/$name-$proto-max.txt" '
		/^# target 50%/ {p50 = $4 * 1000}
		/^# target 90%/ {p90 = $4 * 1000}
		/^# target 99%/ {p99 = $4 * 1000}
		/^All done/ {n = $3; qps = $(NF-1)}
		/^(Code 200|Ping SERVING) :/ {ok = $4}
		END {
			while ((getline line < maxf) > 0) {
				split(line, f, " ")
				if (line ~ /^All done/) {maxn = f[3]; maxqps = f[length(f)-1]}
				if (line ~ /^(Code 200|Ping SERVING) :/) {maxok = f[4]}
			}
			k = n / 1000
			printf "%s\t%s\t%.3f\t%.3f\t%.3f\t%.0f\t%d\t%d\t%.0f\t%d\t%d\t%.3f\t%.3f\t%.3f\n", name, proto, p50, p90, p99, qps, n, ok, maxqps, maxn, maxok, (ct / hz) / k, (st / hz) / k, ((ct + st) / hz) / k
		}' "$work/$name-$proto-rate.txt" >>"$results"
}
for proto in http grpc; do
	if [ "$proto" = grpc ]; then port=8079 app_port=18079 url_pre="" url_post=""; else port=8080 app_port=18080 url_pre="http://" url_post="/echo"; fi
	load direct "$proto" "$url_pre$app:$app_port$url_post"
	load fedmesh "$proto" "$url_pre$net.5:$port$url_post" "$pid_client" "$pid_server"
	load haproxy "$proto" "$url_pre$net.6:$port$url_post" "$pid_hap_client" "$pid_hap_server"
done
rss_client_load=$(hwm_kib "$pid_client")
rss_server_load=$(hwm_kib "$pid_server")
rss_hap_client_load=$(hwm_kib "$pid_hap_client")

# --- report ------------------------------------------------------------------------
{
	echo "# Sidecar benchmark results"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
		"$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))," \
		"$(free -g | awk '/Mem:/ {print $2}') GiB, $(go version | cut -d' ' -f3), fortio $fortio_version," \
		"$(haproxy -v | awk 'NR==1 {print "HAProxy " $3}'), kernel $(uname -r)."
	echo
	echo "Load: ${rate} requests/s for ${at_rate} s over ${conns} connections, 1 KiB request bodies" \
		"(HTTP/1.1 POST echoed by the app; gRPC ping with a 1 KiB payload); max rate: as fast as" \
		"possible for ${max_seconds} s over ${conns} connections. Client sidecar configuration: ${services} services."
	echo
	echo "| path | protocol | p50 ms | p90 ms | p99 ms | achieved /s | ok/sent | max rate /s | max: ok/sent | CPU s/1k req, client proxy | server proxy | both |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' '{
		cpu = ($1 == "direct") ? "- | - | -" : sprintf("%.3f | %.3f | %.3f", $12, $13, $14)
		printf "| %s | %s | %.3f | %.3f | %.3f | %d | %d/%d | %d | %d/%d | %s |\n", $1, $2, $3, $4, $5, $6, $8, $7, $9, $11, $10, cpu
	}' "$results"
	echo
	echo "Ratios to direct (p50, p99) and of max rate:"
	echo
	echo "| path | protocol | p50 x | p99 x | max rate x |"
	echo "|---|---|---:|---:|---:|"
	awk -F'\t' '$1 == "direct" {d50[$2] = $3; d99[$2] = $5; dmax[$2] = $9; next}
		{printf "| %s | %s | %.2f | %.2f | %.2f |\n", $1, $2, $3 / d50[$2], $5 / d99[$2], $9 / dmax[$2]}' "$results"
	echo
	echo "Resident memory (KiB): idle after configuration, and peak over all the loads above:"
	echo
	echo "| process | idle | under load (peak) |"
	echo "|---|---:|---:|"
	echo "| fedmesh client sidecar (${services} services) | $rss_client_idle | $rss_client_load |"
	echo "| fedmesh server sidecar (2 inbound ports) | $rss_server_idle | $rss_server_load |"
	echo "| haproxy client side | $rss_hap_client_idle | $rss_hap_client_load |"
} >"$out"
cat "$out"
